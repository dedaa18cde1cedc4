"""The chaos suite's verdicts as pure functions: polled vs stored, duplicates after dedupe, order.

No sockets, no files: the scenarios collect what was polled (the agent's poll log) and what
was stored (the controller's SQLite store), and these functions say what was lost,
duplicated or reordered. Unit-tested on hand-made cases (tests/unit/chaos).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "CommandCheck",
    "Polled",
    "SampleCheck",
    "StoredSample",
    "check_commands",
    "check_samples",
    "parse_poll_log",
]


@dataclass(frozen=True, slots=True)
class Polled:
    """One line of an agent's poll log: a sample as it was polled, before the queue commit."""

    site: str
    point: str  # "asset/point"
    ts: float  # POSIX seconds, rounded to the microsecond
    seq: int  # the seq the queue was about to give it


@dataclass(frozen=True, slots=True)
class StoredSample:
    """One sample row of the controller's store."""

    seq: int
    point: str  # "asset/point"
    ts: float


def _ts(value: float) -> float:
    return round(value, 6)


def parse_poll_log(text: str) -> list[Polled]:
    """The lines of a poll log (`site,asset/point,ts,seq`); a torn last line (killed mid-write) is skipped."""
    out: list[Polled] = []
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) != 4:
            continue
        site, point, ts, seq = parts
        try:
            out.append(Polled(site, point, _ts(datetime.fromisoformat(ts).timestamp()), int(seq)))
        except ValueError:
            continue
    return out


@dataclass(frozen=True, slots=True)
class SampleCheck:
    """What became of the polled samples."""

    polled: int
    stored: int  # stored rows among the polled ones' points
    lost: int  # polled, never stored
    duplicates: int  # the same reading stored under more than one seq (dedupe is by seq)
    out_of_order: int  # stored rows whose seq order disagrees with their poll order (per point)

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing doubled, order kept."""
        return self.lost == 0 and self.duplicates == 0 and self.out_of_order == 0


def check_samples(polled: Sequence[Polled], stored: Iterable[StoredSample]) -> SampleCheck:
    """Compare what was polled with what was stored, by reading (point, ts), not by seq.

    Why by reading: a seq is a promise of the queue, and a queue that renumbers (or a commit
    that failed and reused seqs) would hide a loss behind a matching number. Order is checked
    per point: sorted by seq, a point's timestamps must rise.
    """
    rows = list(stored)
    keys = Counter((r.point, r.ts) for r in rows)
    wanted = {(p.point, p.ts) for p in polled}
    lost = sum(1 for k in wanted if k not in keys)
    duplicates = sum(n - 1 for k, n in keys.items() if n > 1 and k in wanted)
    by_point: dict[str, list[StoredSample]] = defaultdict(list)
    for r in rows:
        by_point[r.point].append(r)
    out_of_order = 0
    for series in by_point.values():
        series.sort(key=lambda r: r.seq)
        out_of_order += sum(1 for a, b in itertools.pairwise(series) if b.ts <= a.ts)
    n_stored = sum(n for k, n in keys.items() if k in wanted)
    return SampleCheck(len(wanted), n_stored, lost, duplicates, out_of_order)


@dataclass(frozen=True, slots=True)
class CommandCheck:
    """Acks of a stream of commands with replays and expired ones mixed in."""

    sent: int
    acked: int
    applied_twice: int  # a cmd_id acked applied/clamped more than once: a replay got through
    expired_applied: int  # a command sent already expired, acked applied/clamped

    @property
    def ok(self) -> bool:
        """Every command answered, no id applied twice, nothing expired applied."""
        return self.acked == self.sent and self.applied_twice == 0 and self.expired_applied == 0


_APPLIED = frozenset({"applied", "clamped"})


def check_commands(sent: int, expired_ids: Iterable[str], acks: Iterable[tuple[str, str]]) -> CommandCheck:
    """`acks` as (cmd_id, status), one per command sent; `expired_ids`: ids sent past their TTL."""
    acks = list(acks)
    applied = Counter(cid for cid, status in acks if status in _APPLIED)
    twice = sum(1 for n in applied.values() if n > 1)
    expired_applied = sum(1 for cid in set(expired_ids) if applied[cid] > 0)
    return CommandCheck(sent, len(acks), twice, expired_applied)
