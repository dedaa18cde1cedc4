"""The PostgreSQL store's telemetry reads: latest values, one series, bucket means from the samples, history.

Each function reads through the store's `query` (one statement in its own transaction on
the store's connection, `PostgresStore._tx`); the rows are shaped after it. The ISP-rollup
path of `read_bucket_means` stays in `postgres.py` (`postgres_rollups.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cloud_controller.store.buckets import FloatArray, bucket_count
from cloud_controller.store.postgres_schema import BUCKET_MEANS
from cloud_controller.store.results import history
from protocols.assets import PointKey

__all__ = ["Query", "latest", "raw_bucket_means", "read_history", "read_series", "utc"]

#: One statement with its arguments (positional or named), in one transaction: every row it returns.
Query = Callable[[str, Sequence[Any] | Mapping[str, Any]], list[Any]]


def utc(when: datetime) -> datetime:
    """`when` in UTC: what the store writes and what its reads return."""
    return when.astimezone(UTC)


def latest(query: Query) -> dict[str, dict[str, tuple[datetime, float]]]:
    """Newest good value of every point: site -> "asset/point" -> (ts, value)."""
    rows = query("SELECT site, asset, point, ts, value FROM latest", ())
    out: dict[str, dict[str, tuple[datetime, float]]] = {}
    for site, asset, point, ts, value in rows:
        out.setdefault(site, {})[f"{asset}/{point}"] = (utc(ts), float(value))
    return out


def read_series(
    query: Query, site: str, asset: str, point: str, start: datetime, end: datetime
) -> list[tuple[datetime, float]]:
    """Good, non-null values of one point in [start, end), oldest first."""
    rows = query(
        "SELECT ts, value FROM samples WHERE site = %s AND asset = %s AND point = %s AND ts >= %s "
        "AND ts < %s AND value IS NOT NULL AND quality = 'good' ORDER BY ts, seq",
        (site, asset, point, utc(start), utc(end)),
    )
    return [(utc(ts), float(v)) for ts, v in rows]


def raw_bucket_means(
    query: Query, sites: Sequence[str], point: PointKey, start: datetime, end: datetime, step_s: float
) -> FloatArray:
    """The bucket means from the samples (any step and window).

    One statement for all sites: `GROUP BY` site and bucket (the exact epoch offset from
    `start` divided by `step_s`, floored) over the `samples_series` index, so only one
    row per site and bucket crosses the socket.
    """
    n = bucket_count(start, end, step_s)
    out = np.full((len(sites), n), np.nan)
    if not sites:
        return out
    args = {
        "sites": list(sites),
        "asset": point.asset,
        "point": point.point,
        "start": utc(start),
        "end": utc(end),
        "step": step_s,
    }
    rows = query(BUCKET_MEANS, args)
    if rows:
        got = np.array(rows, dtype=np.float64)
        out[got[:, 0].astype(np.int64) - 1, got[:, 1].astype(np.int64)] = got[:, 2]
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

    `points=None` means every point the site reported in the window; `max_rows` bounds
    one request (the newest rows are dropped), as in SqliteStore.
    """
    sql = (
        "SELECT asset, point, ts, value FROM samples WHERE site = %(site)s AND ts >= %(start)s "
        "AND ts < %(end)s AND value IS NOT NULL AND quality = 'good'"
    )
    args: dict[str, object] = {"site": site, "start": utc(start), "end": utc(end), "limit": max_rows}
    if points:
        sql += " AND (asset, point) IN (SELECT * FROM unnest(%(assets)s::text[], %(points)s::text[]))"
        args["assets"] = [k.asset for k in points]
        args["points"] = [k.point for k in points]
    sql += " ORDER BY ts, seq LIMIT %(limit)s"
    rows = query(sql, args)
    return history(rows, points, utc)
