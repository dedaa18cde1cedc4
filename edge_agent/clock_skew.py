"""Clock skew between the agent and the cloud, measured from the `ts` of what the cloud sends.

Command validity is judged on the agent's clock, so an agent whose clock is off
refuses good commands (behind: "not yet valid"; ahead: "expired") and nobody can tell
why. Every live (not retained) `stored` watermark and every command carries the
cloud's time of sending; `local - ts` is the agent's lead plus the transit delay.
Delays are never negative, so the smallest of the recent measurements is the best
estimate of the lead. A lead beyond the tolerance is announced once per episode,
and a command refused only because of it gets the reason `clock_skew`.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from protocols.messages import Command

__all__ = ["CLOCK_SKEW", "SkewMonitor"]

#: The reason prefix of a command refused because of clock skew.
CLOCK_SKEW = "clock_skew"
WINDOW = 16  # recent measurements kept: a late delivery or two cannot fake a skew


@dataclass
class SkewMonitor:
    """The agent clock's lead over the cloud's (seconds; negative = behind), from recent messages."""

    tolerance_s: float
    leads_s: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=WINDOW))
    exceeded: bool = False

    @property
    def lead_s(self) -> float | None:
        """Best estimate: the smallest `local - cloud ts` seen recently, None before any message."""
        return min(self.leads_s) if self.leads_s else None

    def observe(self, cloud_ts: datetime, local_now: datetime) -> Literal["exceeded", "cleared"] | None:
        """Record one measurement; say when the skew starts or stops exceeding the tolerance."""
        self.leads_s.append((local_now - cloud_ts).total_seconds())
        lead = self.lead_s
        assert lead is not None
        if not self.exceeded and abs(lead) > self.tolerance_s:
            self.exceeded = True
            return "exceeded"
        if self.exceeded and abs(lead) <= self.tolerance_s / 2:  # hysteresis: no flapping events
            self.exceeded = False
            return "cleared"
        return None

    def explain(self, cmd: Command, local_now: datetime) -> str | None:
        """A `clock_skew` reason if `cmd`, refused on the local clock, would be valid on the cloud's."""
        lead = self.lead_s
        if lead is None or abs(lead) <= self.tolerance_s:
            return None
        cloud_now = local_now - timedelta(seconds=lead)
        if not cmd.valid_from - timedelta(seconds=self.tolerance_s) <= cloud_now < cmd.valid_until:
            return None  # refused on the cloud's clock too: a real expiry, not skew
        side = "ahead of" if lead > 0 else "behind"
        return (
            f"{CLOCK_SKEW}: the agent's clock is {abs(lead):.1f} s {side} the cloud's "
            f"(tolerance {self.tolerance_s:g} s); command valid "
            f"{cmd.valid_from.isoformat()}..{cmd.valid_until.isoformat()} by cloud time; check NTP"
        )
