"""What the stores share for a batched write: the input's shape and its per-point newest values.

Ingest hands a store several agents' messages at once (`Store.write_batches`) so that
one transaction, one lock turn and one commit carry them all; SQLite and PostgreSQL
prepare the same two things from such a batch, here, so that they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from protocols.messages import Sample

__all__ = ["SiteSamples", "fresh_good", "newest_good"]

#: One agent message's samples: (site, samples in the order sent).
SiteSamples = tuple[str, Sequence[Sample]]


def newest_good(batches: Sequence[SiteSamples]) -> dict[tuple[str, str, str], tuple[datetime, float]]:
    """(site, asset, point) -> (ts, value) of the newest good, non-null sample in `batches`.

    A tie in ts goes to the later sample, as the `latest` upserts (`excluded.ts >= ts`) do.
    """
    newest: dict[tuple[str, str, str], tuple[datetime, float]] = {}
    for site, samples in batches:
        for s in samples:
            if s.value is None or s.quality != "good":
                continue
            key = (site, s.asset, s.point)
            seen = newest.get(key)
            if seen is None or s.ts >= seen[0]:
                newest[key] = (s.ts, float(s.value))
    return newest


def fresh_good(
    batches: Sequence[SiteSamples], stored: dict[str, set[int]]
) -> list[tuple[str, str, str, float, float]]:
    """(site, asset, point, ts epoch s, value) of the good, non-null samples the write adds.

    `stored`: per site, the seqs already in the store before the write (duplicates). A seq
    sent twice in the batch counts once, the first time, as the store's insert keeps it.
    What the ISP rollups are fed (`rollups.py`), so a resent sample is never counted twice.
    """
    seen = {site: set(seqs) for site, seqs in stored.items()}
    out: list[tuple[str, str, str, float, float]] = []
    for site, samples in batches:
        taken = seen.setdefault(site, set())
        for s in samples:
            if s.seq in taken:
                continue
            taken.add(s.seq)
            if s.value is not None and s.quality == "good":
                out.append((site, s.asset, s.point, s.ts.timestamp(), float(s.value)))
    return out
