"""Command tracking: every command sent is matched to its ack by `cmd_id`, or counted missing.

A site whose commands failed or went unanswered in the last period is marked
uncontrollable, so the next plan does not count on its flexibility (it is fixed at its
forecast) until it acknowledges again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from protocols.messages import Ack, Command

__all__ = ["CommandTracker", "Tracked"]

ACK_GRACE_S = 30.0  # simulated seconds after valid_until before an unanswered command counts missing


@dataclass
class Tracked:
    command: Command
    status: str | None = None  # None until acked
    ack: Ack | None = None


@dataclass
class CommandTracker:
    sent: dict[str, Tracked] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"sent": 0})
    missing: int = 0
    unknown_acks: int = 0
    uncontrollable: set[str] = field(default_factory=set)
    max_kept: int = 50_000

    def on_sent(self, cmd: Command) -> None:
        self.sent[cmd.cmd_id] = Tracked(cmd)
        self.counts["sent"] = self.counts.get("sent", 0) + 1
        if len(self.sent) > self.max_kept:  # forget the oldest answered ones
            for cmd_id in [k for k, t in self.sent.items() if t.status is not None][: self.max_kept // 10]:
                del self.sent[cmd_id]

    def on_ack(self, ack: Ack) -> bool:
        """Record an ack; False if it answers no command we sent (logged by the caller)."""
        tracked = self.sent.get(ack.cmd_id)
        if tracked is None or tracked.command.site != ack.site:
            self.unknown_acks += 1
            return False
        if tracked.status is None:
            self.counts[ack.status] = self.counts.get(ack.status, 0) + 1
        tracked.status, tracked.ack = ack.status, ack
        if ack.status in ("failed", "rejected"):
            self.uncontrollable.add(ack.site)
        else:
            self.uncontrollable.discard(ack.site)
        return True

    def expire(self, now: datetime) -> list[Tracked]:
        """Commands past validity (+ grace) without an ack: counted missing, their sites marked."""
        late = [
            t
            for t in self.sent.values()
            if t.status is None and now > t.command.valid_until + timedelta(seconds=ACK_GRACE_S)
        ]
        for t in late:
            t.status = "missing"
            self.missing += 1
            self.uncontrollable.add(t.command.site)
        return late

    def recent(self, limit: int = 200) -> list[Tracked]:
        return list(self.sent.values())[-limit:]
