"""What the stores share for a batched write: the input's shape and its per-point newest values.

Ingest hands a store several agents' messages at once (`Store.write_batches`) so that
one transaction, one lock turn and one commit carry them all; SQLite and PostgreSQL
prepare the same two things from such a batch, here, so that they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from protocols.messages import Sample

__all__ = ["SiteSamples", "newest_good"]

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
