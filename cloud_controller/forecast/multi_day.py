"""A quantity's same-time-of-day mean and spread over several past days (pure).

Why: "same period yesterday" (`baseline.py`) is a good median for a household that repeats
its day, but one day says nothing about how far the next day may differ. A station's
background (the households outside the fleet, `live/station_load.py`) is dominated by
uncontrolled EV arrivals and heat pumps on a cold evening: in the demo's region its
17:00-18:00 level moves by 70-120 kW from one day to the next while the night moves by
15 kW. A planner that holds a transformer against `median + z·σ` needs σ per time of day,
measured, not one band for the whole day.

For each horizon step at time t the values at t − 1 day, t − 2 days, … t − D days give

    p50(t) = their mean,   σ(t) = sqrt(mean over ±`window` steps of their variance)

(the variance is pooled over neighbouring steps because an arrival at 17:15 one day and at
17:45 the next is the same uncertainty; with a handful of days a single step's variance is
itself noisy). Needs at least `min_days` days with a value at every step of the horizon,
else None: the caller keeps its one-day method. Weekdays and weekends are not told apart
(a week of history holds two weekend days; their difference shows in σ).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

__all__ = ["MIN_DAYS", "SIGMA_WINDOW_STEPS", "MultiDayProfile", "multi_day_profile"]

FloatArray = npt.NDArray[np.float64]
DAY_S = 86_400.0
#: Fewest past days with a value at every step for a mean and a spread worth the name.
MIN_DAYS = 3
#: The variance is pooled over this many steps either side (±30 min at 15-min periods).
SIGMA_WINDOW_STEPS = 2


@dataclass(frozen=True)
class MultiDayProfile:
    """Mean and σ per horizon step from `days_used` past days (the fewest any step had)."""

    p50: FloatArray  # (horizon,)
    sigma: FloatArray  # (horizon,)
    days_used: int


def _day_bins(rows: Sequence[tuple[datetime, float]], start: datetime, period_s: float, n: int) -> FloatArray:
    """Mean of the samples in each of `n` bins from `start`; NaN where a bin has none (no hold).

    No sample-and-hold here, unlike `baseline.resample_mean`: a day missing from the history
    must count as missing, not as a copy of the last value before it.
    """
    out = np.full(n, np.nan)
    if not rows or n <= 0:
        return out
    t = np.fromiter((r[0].timestamp() for r in rows), dtype=float, count=len(rows))
    v = np.fromiter((r[1] for r in rows), dtype=float, count=len(rows))
    k = np.floor((t - start.timestamp()) / period_s).astype(np.int64)
    inside = (k >= 0) & (k < n) & np.isfinite(v)
    sums = np.bincount(k[inside], weights=v[inside], minlength=n)
    counts = np.bincount(k[inside], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), dtype=float)


def multi_day_profile(
    rows: Sequence[tuple[datetime, float]],
    *,
    now: datetime,
    period_s: float,
    horizon: int,
    days: int,
    min_days: int = MIN_DAYS,
    window: int = SIGMA_WINDOW_STEPS,
) -> MultiDayProfile | None:
    """Same-time mean and pooled σ over the last `days` days for bins [now, now + horizon·period).

    `now` should be a period start. None when some step has fewer than `min_days` past days
    with a value (a young history): the caller falls back to its one-day forecast.
    """
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    if days < 1 or min_days < 2 or window < 0:
        raise ValueError("need days >= 1, min_days >= 2 and window >= 0")
    per_day = round(DAY_S / period_s)
    if not math.isclose(per_day * period_s, DAY_S):
        raise ValueError(f"period_s {period_s} does not divide a day")
    if days < min_days:
        return None
    start = now - timedelta(days=days)
    by_day = _day_bins(rows, start, period_s, days * per_day).reshape(days, per_day)
    # Step k of the horizon is time-of-day bin (k mod per_day) of each past day.
    finite = np.isfinite(by_day)
    counts = finite.sum(axis=0)
    values = np.where(finite, by_day, 0.0)
    mean = values.sum(axis=0) / np.maximum(counts, 1)
    dev2 = np.where(finite, (by_day - mean) ** 2, 0.0).sum(axis=0)
    var = np.where(counts >= 2, dev2 / np.maximum(counts - 1, 1), np.nan)
    # Pool the variance over ±window bins, wrapping round midnight.
    stack = np.stack([np.roll(var, -int(o)) for o in range(-window, window + 1)])
    ok = np.isfinite(stack)
    pooled = np.where(ok, stack, 0.0).sum(axis=0) / np.maximum(ok.sum(axis=0), 1)
    pooled = np.where(ok.any(axis=0), pooled, np.nan)
    steps = np.arange(horizon) % per_day
    if int(counts[steps].min()) < min_days or not np.all(np.isfinite(pooled[steps])):
        return None
    return MultiDayProfile(
        p50=np.asarray(mean[steps], dtype=float),
        sigma=np.asarray(np.sqrt(pooled[steps]), dtype=float),
        days_used=int(counts[steps].min()),
    )
