"""When to fall back (pure): no valid command or no broker for `after_s`, and commands whose validity ended.

The agent's supervisor asks `reason()` every tick (at most one poll interval apart),
so the safe state is written within one poll interval of the deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from protocols.messages import Command

__all__ = ["FallbackPolicy"]


@dataclass
class FallbackPolicy:
    """Monotonic-time bookkeeping of the last valid command and the broker connection."""

    after_s: float
    last_valid_mono: float
    broker_down_since: float | None = None
    active: dict[str, Command] = field(default_factory=dict)  # asset -> command in force

    def on_valid(self, cmd: Command, mono: float) -> None:
        self.last_valid_mono = mono
        self.active[cmd.asset] = cmd

    def on_broker(self, connected: bool, mono: float) -> None:
        if connected:
            self.broker_down_since = None
        elif self.broker_down_since is None:
            self.broker_down_since = mono

    def reason(self, mono: float) -> str | None:
        """Why the site must be in fallback now, or None."""
        if mono - self.last_valid_mono >= self.after_s:
            return f"no valid command for {self.after_s:g} s"
        if self.broker_down_since is not None and mono - self.broker_down_since >= self.after_s:
            return f"no broker connection for {self.after_s:g} s"
        return None

    def pop_expired(self, now: datetime) -> list[Command]:
        """Commands whose validity ended without a successor for the same asset."""
        ended = [cmd for cmd in self.active.values() if now >= cmd.valid_until]
        for cmd in ended:
            del self.active[cmd.asset]
        return ended
