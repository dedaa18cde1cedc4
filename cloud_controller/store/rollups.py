"""ISP rollups: per site, point and 15-min ISP, the count and sum of the good samples, kept at write time.

Why: settling a month of 1,000 sites read every sample of the month through the series
index (4.9 M rows at one sample per ISP; 26.8 s wall on SQLite, issue 21). The rollups
hold what `read_bucket_means` computes per ISP, so an ISP-aligned read touches one row
per site, point and UTC day instead of one per sample.

Layout (the same in SQLite and PostgreSQL): one row per (site, asset, point, day), day =
the UTC epoch day, holding three little-endian arrays of the day's 96 ISPs: `n` (int32,
good non-null samples), `total` (float64, their sum) and `last_ts` (float64, the newest
counted sample's epoch s, 0 where none). A row a day rather than a row an ISP: 96x fewer
rows to step through and hand to Python, which is where a read's time goes.

Exactness: the raw path sums an ISP's values in index order (ts, then value) from 0.0,
one addition after another (`buckets.bucket_means`). A sample newer than the ISP's
`last_ts` is added to `total` the same way, so an in-order write gives the raw path's
float bit for bit; a sample at or before `last_ts` (late, out of order) makes the store
recompute that ISP from its samples in index order (`recompute`), which gives it too.
Duplicates never reach here: the stores pass only the rows their insert actually added.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from cloud_controller.store.buckets import FloatArray, bucket_count

__all__ = [
    "ISPS_PER_DAY",
    "ISP_S",
    "DayRow",
    "Fresh",
    "Recompute",
    "RollupKey",
    "SeriesKey",
    "aligned_isps",
    "apply_fresh",
    "day_rows",
    "isp_of",
    "means_from_days",
    "pack",
    "series_sums",
    "touched_keys",
    "unpack",
]

ISP_S = 900
ISPS_PER_DAY = 96

#: (site, asset, point): one series.
SeriesKey = tuple[str, str, str]
#: (site, asset, point, day): one rollup row.
RollupKey = tuple[str, str, str, int]


@dataclass
class DayRow:
    """One rollup row's arrays (the day's 96 ISPs): count, sum and newest counted ts."""

    n: np.ndarray[Any, np.dtype[np.int32]]
    total: FloatArray
    last_ts: FloatArray

    @classmethod
    def empty(cls) -> DayRow:
        """A day without samples."""
        return cls(
            np.zeros(ISPS_PER_DAY, np.int32), np.zeros(ISPS_PER_DAY, np.float64), np.zeros(ISPS_PER_DAY)
        )


def pack(row: DayRow) -> tuple[bytes, bytes, bytes]:
    """The three column values (n, total, last_ts) as stored."""
    return (
        row.n.astype("<i4").tobytes(),
        row.total.astype("<f8").tobytes(),
        row.last_ts.astype("<f8").tobytes(),
    )


def unpack(n: bytes, total: bytes, last_ts: bytes) -> DayRow:
    """A stored row's arrays (writable copies)."""
    return DayRow(
        np.frombuffer(n, "<i4").astype(np.int32),
        np.frombuffer(total, "<f8").astype(np.float64),
        np.frombuffer(last_ts, "<f8").astype(np.float64),
    )


def isp_of(ts_s: float) -> int:
    """The epoch ISP index of a timestamp (floor of ts / 900, exact in float: Python's // is)."""
    return int(ts_s // ISP_S)


#: A fresh (newly inserted) good sample: (site, asset, point, ts epoch s, value).
Fresh = tuple[str, str, str, float, float]
#: Recompute one ISP from the stored samples: (series, epoch ISP) -> (n, total, last_ts).
Recompute = Callable[[SeriesKey, int], tuple[int, float, float]]


def touched_keys(fresh: Iterable[Fresh]) -> set[RollupKey]:
    """The rollup rows a write changes."""
    return {(site, a, p, isp_of(ts) // ISPS_PER_DAY) for site, a, p, ts, _ in fresh}


def apply_fresh(rows: dict[RollupKey, DayRow], fresh: Sequence[Fresh], recompute: Recompute) -> None:
    """Add the fresh samples to `rows` (updated in place; missing rows are created).

    Per ISP: samples all newer than its `last_ts` are added in (ts, value) order, the
    raw path's order; otherwise the ISP is recomputed from the store (`recompute`, after
    the samples are in) so that late and out-of-order samples give the same floats.
    """
    per_isp: dict[tuple[SeriesKey, int], list[tuple[float, float]]] = defaultdict(list)
    for site, a, p, ts, v in fresh:
        per_isp[((site, a, p), isp_of(ts))].append((ts, v))
    for (series, isp), got in per_isp.items():
        day, k = divmod(isp, ISPS_PER_DAY)
        row = rows.setdefault((*series, day), DayRow.empty())
        got.sort()
        if row.n[k] == 0 or got[0][0] > row.last_ts[k]:
            total = float(row.total[k])
            for _, v in got:
                total += v
            row.n[k] += len(got)
            row.total[k] = total
            row.last_ts[k] = got[-1][0]
        else:
            n, total, last = recompute(series, isp)
            row.n[k], row.total[k], row.last_ts[k] = n, total, last


def series_sums(ts_s: FloatArray, values: FloatArray) -> dict[int, DayRow]:
    """Day rows of one series from its good samples in index order (the backfill; the raw path's sums)."""
    if ts_s.size == 0:
        return {}
    isp = np.floor_divide(ts_s, ISP_S).astype(np.int64)
    first = int(isp.min())
    rel = isp - first
    size = int(rel.max()) + 1
    n = np.bincount(rel, minlength=size)
    total = np.bincount(rel, weights=values, minlength=size)  # sequential, in the given order
    last = np.zeros(size)
    np.maximum.at(last, rel, ts_s)
    return day_rows(np.flatnonzero(n) + first, n[n > 0], total[n > 0], last[n > 0])


def day_rows(isp: Any, n: Any, total: Any, last_ts: Any) -> dict[int, DayRow]:
    """Per-ISP (epoch ISP index, count, sum, newest ts) as day rows (ISPs without samples stay 0)."""
    isp_a = np.asarray(isp, np.int64)
    if isp_a.size == 0:
        return {}
    days, where = np.unique(isp_a // ISPS_PER_DAY, return_inverse=True)
    k = isp_a % ISPS_PER_DAY
    count = np.zeros((days.size, ISPS_PER_DAY), np.int32)
    sums = np.zeros((days.size, ISPS_PER_DAY))
    last = np.zeros((days.size, ISPS_PER_DAY))
    count[where, k] = np.asarray(n, np.int64)
    sums[where, k] = np.asarray(total, np.float64)
    last[where, k] = np.asarray(last_ts, np.float64)
    return {int(d): DayRow(count[j], sums[j], last[j]) for j, d in enumerate(days.tolist())}


def aligned_isps(start: datetime, end: datetime, step_s: float) -> tuple[int, int, int] | None:
    """(first ISP, end ISP, ISPs per bucket) if the read can use the rollups, else None.

    It can when `start` and `end` are ISP boundaries and `step_s` is a whole number of ISPs.
    """
    start_s, end_s = start.timestamp(), end.timestamp()
    per = step_s / ISP_S
    if start_s % ISP_S or end_s % ISP_S or per != int(per) or per < 1:
        return None
    return int(start_s // ISP_S), int(end_s // ISP_S), int(per)


def means_from_days(
    n_sites: int,
    rows: Sequence[tuple[int, int, bytes, bytes]],
    isps: tuple[int, int, int],
    start: datetime,
    end: datetime,
) -> FloatArray:
    """(n_sites, buckets) means from the rollup rows read: (site position, day, n, total) each.

    `isps` is `aligned_isps`' answer. A bucket of several ISPs sums their counts and
    totals; NaN where its count is 0.
    """
    first_isp, end_isp, per = isps
    n_buckets = bucket_count(start, end, per * ISP_S)
    d0 = first_isp // ISPS_PER_DAY
    n_days = (end_isp - 1) // ISPS_PER_DAY - d0 + 1
    count = np.zeros((n_sites, n_days, ISPS_PER_DAY), np.int64)
    total = np.zeros((n_sites, n_days, ISPS_PER_DAY))
    if rows:
        i = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        d = np.fromiter((r[1] for r in rows), np.int64, len(rows)) - d0
        count[i, d] = np.frombuffer(b"".join(r[2] for r in rows), "<i4").reshape(-1, ISPS_PER_DAY)
        total[i, d] = np.frombuffer(b"".join(r[3] for r in rows), "<f8").reshape(-1, ISPS_PER_DAY)
    lo = first_isp - d0 * ISPS_PER_DAY
    span = end_isp - first_isp
    count_isp = count.reshape(n_sites, -1)[:, lo : lo + span]
    total_isp = total.reshape(n_sites, -1)[:, lo : lo + span]
    if per > 1:
        pad = n_buckets * per - span
        count_isp = np.pad(count_isp, ((0, 0), (0, pad))).reshape(n_sites, n_buckets, per).sum(axis=2)
        total_isp = np.pad(total_isp, ((0, 0), (0, pad))).reshape(n_sites, n_buckets, per).sum(axis=2)
    out = np.full((n_sites, n_buckets), np.nan)
    seen = count_isp > 0
    out[seen] = total_isp[seen] / count_isp[seen]
    return out
