"""Means per time bucket as arrays: what `Store.read_bucket_means` returns, and the per-sample path it replaces.

Why: settling a month for 1,000 sites through `read_series` builds a `datetime` and a
tuple per sample and a dict per ISP (issue 21 measured ~50 ms per site-month, ~51 s for
the fleet). The array read lets the store bucket the samples on its timestamp column and
hands back one float array (sites x buckets).

The meaning, the same in every store: bucket k of a site is
[start + k * step_s, start + (k + 1) * step_s); its value is the arithmetic mean of the
good, non-null samples of the point in it, NaN where it has none (never a zero). With
`start` on an ISP boundary and `step_s` = 900 that is `market.batch.isp_means`, number
for number. The array has the point's unit (kW for `meter/p_kw`: the mean power of the
ISP, which is its energy divided by its duration).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np

__all__ = ["FloatArray", "bucket_count", "bucket_means", "series_bucket_means"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def bucket_count(start: datetime, end: datetime, step_s: float) -> int:
    """How many buckets of `step_s` cover [start, end) (the last may be cut short by `end`)."""
    if step_s <= 0:
        raise ValueError(f"step_s must be > 0, got {step_s}")
    span_s = (end - start).total_seconds()
    if span_s <= 0:
        raise ValueError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    return math.ceil(span_s / step_s)


def bucket_means(bucket: Any, values: Any, n_buckets: int) -> FloatArray:
    """Mean of `values` per bucket index (0 <= index < n_buckets), NaN where a bucket has no value.

    The sums run in the order given (numpy's bincount), as `isp_means` does, so samples
    given oldest first give the same floats as the per-sample path.
    """
    idx = np.asarray(bucket, dtype=np.int64)
    count = np.bincount(idx, minlength=n_buckets)
    total = np.bincount(idx, weights=np.asarray(values, dtype=np.float64), minlength=n_buckets)
    if count.shape[0] != n_buckets:
        raise ValueError(f"a bucket index is outside 0..{n_buckets - 1}")
    out = np.full(n_buckets, np.nan)
    seen = count > 0
    out[seen] = total[seen] / count[seen]
    return out


def series_bucket_means(
    rows: Iterable[tuple[datetime, float]], start: datetime, step_s: float, n_buckets: int
) -> FloatArray:
    """The per-sample path: `read_series` rows (oldest first) as bucket means; the array reads' reference."""
    listed = list(rows)
    if not listed:
        return np.full(n_buckets, np.nan)
    start_s = start.timestamp()
    ts = np.fromiter((t.timestamp() for t, _ in listed), float, len(listed))
    values = np.fromiter((v for _, v in listed), float, len(listed))
    return bucket_means(np.floor((ts - start_s) / step_s), values, n_buckets)
