"""Command tracking: every command sent is matched to its ack by `cmd_id`, or counted missing.

A site whose commands failed or went unanswered in the last period is marked
uncontrollable, so the next plan does not count on its flexibility (it is fixed at its
forecast) until it acknowledges again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from protocols.messages import Ack, Command

__all__ = ["CommandTracker", "Tracked"]

ACK_GRACE_S = 30.0  # simulated seconds after valid_until before an unanswered command counts missing


@dataclass
class Tracked:
    """One command sent and what became of it: its ack (or "missing") and the round trip's host times."""

    command: Command
    status: str | None = None  # None until acked
    ack: Ack | None = None
    #: Host monotonic seconds when the plan decided it and when its ack arrived: the command
    #: round trip a utility cares about (plan -> broker -> agent -> device -> ack), in wall time
    #: even when the controller runs on a simulated clock.
    decided_mono: float | None = None
    acked_mono: float | None = None

    @property
    def ack_latency_ms(self) -> float | None:
        """Host milliseconds from the plan's decision to the ack, or None while unanswered."""
        if self.decided_mono is None or self.acked_mono is None:
            return None
        return (self.acked_mono - self.decided_mono) * 1000.0


@dataclass
class CommandTracker:
    """Every command sent, matched to its ack; counts per status and the sites currently uncontrollable."""

    sent: dict[str, Tracked] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"sent": 0})
    missing: int = 0
    unknown_acks: int = 0
    uncontrollable: set[str] = field(default_factory=set)
    max_kept: int = 50_000
    host_clock: Callable[[], float] = time.monotonic

    def on_sent(self, cmd: Command, *, decided_mono: float | None = None) -> None:
        """Register `cmd` as sent (pending) BEFORE it is published, so an early ack finds it.

        An agent may answer before the publisher has handled the broker's PUBACK; registering
        afterwards lost that ack (the command then counted missing). `decided_mono`: host time
        the plan decided it (default: now).
        """
        self.sent[cmd.cmd_id] = Tracked(cmd, decided_mono=decided_mono or self.host_clock())
        self.counts["sent"] = self.counts.get("sent", 0) + 1
        if len(self.sent) > self.max_kept:  # forget the oldest answered ones
            for cmd_id in [k for k, t in self.sent.items() if t.status is not None][: self.max_kept // 10]:
                del self.sent[cmd_id]

    def on_publish_failed(self, cmd: Command) -> bool:
        """Roll back a command registered by `on_sent` whose publish raised; counted `publish_failed`.

        A command already acked did reach its agent (the publish failed after delivery, e.g.
        a PUBACK timeout): it is kept and False is returned.
        """
        tracked = self.sent.get(cmd.cmd_id)
        if tracked is None or tracked.status is not None:
            return False
        del self.sent[cmd.cmd_id]
        self.counts["sent"] = self.counts.get("sent", 0) - 1
        self.counts["publish_failed"] = self.counts.get("publish_failed", 0) + 1
        return True

    def on_ack(self, ack: Ack) -> bool:
        """Record an ack; False if it answers no command we sent (logged by the caller)."""
        tracked = self.sent.get(ack.cmd_id)
        if tracked is None or tracked.command.site != ack.site:
            self.unknown_acks += 1
            return False
        if tracked.status is None:
            self.counts[ack.status] = self.counts.get(ack.status, 0) + 1
            tracked.acked_mono = self.host_clock()
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

    def ack_latencies_ms(self) -> list[float]:
        """Decision-to-ack times of the answered commands still kept, sorted."""
        return sorted(v for t in self.sent.values() if (v := t.ack_latency_ms) is not None)

    def recent(self, limit: int = 200) -> list[Tracked]:
        """The `limit` most recently sent commands still kept, oldest first."""
        return list(self.sent.values())[-limit:]
