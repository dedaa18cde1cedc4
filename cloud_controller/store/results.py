"""What the stores' calls return, the same on SQLite and PostgreSQL: a write's result, a lease's state, a history.

Their own module so each back end and the `Store` interface share them without importing
one another; `sqlite.py` re-exports both (their first home, where importers still find them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from protocols.assets import PointKey

__all__ = ["LeaseState", "WriteResult", "history"]


class WriteResult:
    """What one message's samples did: new rows, duplicates, the site's watermark before and after.

    In a batched write (`write_batches`) `previous` and `watermark` are the site's before
    and after the whole transaction: ingest's gap and "publish again" checks compare them.
    """

    __slots__ = ("duplicates", "inserted", "previous", "watermark")

    def __init__(self, inserted: int, duplicates: int, watermark: int, previous: int | None = None) -> None:
        self.inserted = inserted
        self.duplicates = duplicates
        self.watermark = watermark
        self.previous = watermark if previous is None else previous


@dataclass(frozen=True)
class LeaseState:
    """A lease as the store holds it after an acquire/renew: who holds it, its fencing token, until when."""

    name: str
    holder: str
    token: int  # incremented on every change of holder (and re-acquisition after a release)
    expires_at: float  # POSIX seconds of the injected clock; 0 after a release
    held: bool  # whether the caller holds it now


def history(
    rows: Iterable[Sequence[Any]], points: Sequence[PointKey] | None, when: Callable[[Any], datetime]
) -> dict[PointKey, list[tuple[datetime, float]]]:
    """`read_history`'s answer from its (asset, point, ts, value) rows: every asked point, even one without rows.

    `when` turns a row's `ts` into an aware datetime (epoch seconds on SQLite, a timestamp on PostgreSQL).
    """
    out: dict[PointKey, list[tuple[datetime, float]]] = {key: [] for key in points or ()}
    for asset, point, ts, value in rows:
        out.setdefault(PointKey(asset, point), []).append((when(ts), float(value)))
    return out
