"""Capped exponential backoff with full jitter: one helper for MQTT, Modbus and BACnet reconnects.

Full jitter (a uniform draw in [0, cap]) spreads a thousand gateways that lost the
broker at the same instant, instead of having them all knock again together.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays min_s, 2*min_s, 4*min_s, ... capped at max_s, each drawn with jitter."""

    def __init__(
        self,
        *,
        min_s: float = 0.1,
        max_s: float = 30.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"need 0 < min_s <= max_s, got {min_s}, {max_s}")
        if factor < 1:
            raise ValueError("factor must be >= 1")
        self.min_s = min_s
        self.max_s = max_s
        self.factor = factor
        self.attempt = 0
        self._rng = rng or random.Random()

    def ceiling_s(self) -> float:
        """Upper bound of the next delay (before jitter)."""
        return min(self.max_s, self.min_s * self.factor**self.attempt)

    def next_delay_s(self) -> float:
        """The next delay; grows until max_s. Never below min_s / 2, so we never spin."""
        ceiling = self.ceiling_s()
        self.attempt += 1
        return max(self.min_s / 2, self._rng.uniform(0, ceiling))

    def reset(self) -> None:
        """Call after a success, so the next failure starts from min_s again."""
        self.attempt = 0
