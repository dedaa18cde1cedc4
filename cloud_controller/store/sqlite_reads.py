"""The SQLite store's telemetry reads: latest values, one series, bucket means from the samples, history.

Each function reads through the store's `query` (one statement under the store's lock), so
a read of many sites takes the lock once per site and ingest's writes interleave with it;
the rows are shaped outside the lock. The ISP-rollup path of `read_bucket_means` stays in
`sqlite.py` beside the write that keeps the rollups (`sqlite_rollups.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import numpy as np

from cloud_controller.store.buckets import FloatArray, bucket_count, bucket_means
from cloud_controller.store.results import history
from protocols.assets import PointKey

__all__ = ["Query", "latest", "raw_bucket_means", "read_history", "read_series"]

#: One statement with its arguments, run under the store's lock: every row it returns.
Query = Callable[[str, Sequence[object]], list[Any]]


def latest(query: Query) -> dict[str, dict[str, tuple[datetime, float]]]:
    """Newest good value of every point: site -> "asset/point" -> (ts, value)."""
    rows = query("SELECT site, asset, point, ts, value FROM latest", ())
    out: dict[str, dict[str, tuple[datetime, float]]] = {}
    for site, asset, point, ts, value in rows:
        out.setdefault(site, {})[f"{asset}/{point}"] = (datetime.fromtimestamp(ts, tz=UTC), float(value))
    return out


def read_series(
    query: Query, site: str, asset: str, point: str, start: datetime, end: datetime
) -> list[tuple[datetime, float]]:
    """Good, non-null values of one point in [start, end), oldest first."""
    rows = query(
        "SELECT ts, value FROM samples WHERE site = ? AND asset = ? AND point = ? AND ts >= ? AND ts < ? "
        "AND value IS NOT NULL AND quality = 'good' ORDER BY ts",
        (site, asset, point, start.timestamp(), end.timestamp()),
    )
    return [(datetime.fromtimestamp(ts, UTC), float(v)) for ts, v in rows]


def raw_bucket_means(
    query: Query, sites: Sequence[str], point: PointKey, start: datetime, end: datetime, step_s: float
) -> FloatArray:
    """The bucket means from the samples (any step and window).

    SQLite computes each sample's bucket from `ts`; the means are a numpy bincount over
    the rows in index order. Not `GROUP BY`: for an expression SQLite sorts every row
    through a temporary b-tree, which costs more than the whole read does this way
    (docs/benchmarks.md, settlement). One query per site, each under the lock, so ingest can
    interleave with a fleet-wide read.
    """
    n = bucket_count(start, end, step_s)
    out = np.full((len(sites), n), np.nan)
    sql = (
        "SELECT CAST((ts - ?1) / ?2 AS INTEGER), value FROM samples WHERE site = ?3 AND asset = ?4 "
        "AND point = ?5 AND ts >= ?1 AND ts < ?6 AND value IS NOT NULL AND quality = 'good' ORDER BY ts"
    )
    start_s, end_s = start.timestamp(), end.timestamp()
    for i, site in enumerate(sites):
        rows = query(sql, (start_s, step_s, site, point.asset, point.point, end_s))
        if rows:  # fromiter over the flattened rows: cheaper than np.array's shape discovery
            got = np.fromiter(chain.from_iterable(rows), np.float64, 2 * len(rows)).reshape(-1, 2)
            out[i] = bucket_means(got[:, 0], got[:, 1], n)
    return out


def read_history(
    query: Query,
    site: str,
    start: datetime,
    end: datetime,
    points: Sequence[PointKey] | None,
    max_rows: int,
) -> dict[PointKey, list[tuple[datetime, float]]]:
    """Good, non-null values of several points of one site in [start, end), oldest first.

    `points=None` means every point the site reported in the window. `max_rows` bounds
    what one dashboard request can pull out of the file (the newest rows are dropped).
    """
    sql = (
        "SELECT asset, point, ts, value FROM samples WHERE site = ? AND ts >= ? AND ts < ? "
        "AND value IS NOT NULL AND quality = 'good'"
    )
    args: list[object] = [site, start.timestamp(), end.timestamp()]
    if points:
        sql += " AND (" + " OR ".join("(asset = ? AND point = ?)" for _ in points) + ")"
        for key in points:
            args += [key.asset, key.point]
    sql += " ORDER BY ts LIMIT ?"
    args.append(max_rows)
    rows = query(sql, args)
    return history(rows, points, lambda ts: datetime.fromtimestamp(ts, UTC))
