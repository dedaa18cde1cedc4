"""Per-site baselines from history: seasonal naive (same time yesterday) plus a smoothed level shift.

Why this method: a household's load repeats daily far better than it trends, and the
controller needs a forecast that is cheap, explainable and needs no weather feed.
Yesterday's value at the same time of day is the baseline; the recent gap between what
was measured and what "yesterday" predicted for the last hours is exponentially smoothed
and added, fading out within the first hour (`LEVEL_FADE_H`). Quantiles come from yesterday-as-forecast errors
over the available history (empirical, so they widen where the site is erratic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

__all__ = ["LEVEL_FADE_H", "Baseline", "resample_mean", "seasonal_naive_smoothing"]

FloatArray = npt.NDArray[np.float64]
DAY_S = 86_400.0
#: How fast the level shift fades (h). A household's gap to yesterday does not persist: the
#: year-long backtest (docs/forecast-quality.md) put a 6 h fade at -9.2 % pinball skill
#: against plain "same period yesterday" and a 0.5 h fade at 0.0 %, with the first hour better too.
LEVEL_FADE_H = 0.5


def resample_mean(
    rows: Sequence[tuple[datetime, float]], start: datetime, period_s: float, n: int
) -> FloatArray:
    """Mean of the samples in each of `n` bins of `period_s` from `start`; NaN where a bin is empty.

    Samples are sample-and-hold (deadband reporting), so an empty bin after a sample takes
    the last value seen rather than NaN, as long as a value was seen at all.
    """
    out = np.full(n, np.nan)
    if not rows or n <= 0:
        return out
    t0 = start.timestamp()
    t = np.array([r[0].timestamp() for r in rows])
    v = np.array([r[1] for r in rows], dtype=float)
    k = np.floor((t - t0) / period_s).astype(np.int64)
    inside = (k >= 0) & (k < n)
    sums = np.bincount(k[inside], weights=v[inside], minlength=n)
    counts = np.bincount(k[inside], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    # hold the last value (reported on change) into following empty bins
    before = v[t < t0]
    last = float(before[-1]) if before.size else np.nan
    for i in range(n):
        if np.isnan(out[i]):
            out[i] = last
        else:
            last = float(v[inside][k[inside] == i][-1])
    return out


@dataclass(frozen=True)
class Baseline:
    """Forecast of one quantity over the horizon (bins of period_s from `start`)."""

    start: datetime
    period_s: float
    p50: FloatArray
    p10: FloatArray
    p90: FloatArray
    method: str  # "seasonal+smoothing", "persistence" (no day-old history) or "zero" (no history)


def seasonal_naive_smoothing(
    rows: Sequence[tuple[datetime, float]],
    *,
    now: datetime,
    period_s: float,
    horizon: int,
    alpha: float = 0.5,
    fade_h: float = LEVEL_FADE_H,
) -> Baseline:
    """Forecast bins [now, now + horizon·period) from rows covering (ideally) the last two days.

    p50[k] = y(t_k − 1 day) + level · exp(−k·period/fade), with `level` the exponentially
    smoothed (alpha) error of "yesterday" over the bins before `now`.
    """
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    per_day = round(DAY_S / period_s)
    hist_start = now - timedelta(seconds=2 * DAY_S)
    hist = resample_mean(rows, hist_start, period_s, 2 * per_day)  # the last two days
    yesterday_bins = np.concatenate([hist[per_day:], np.full(per_day, np.nan)])  # index k -> t_k - 1 day
    if horizon > per_day:  # beyond a day: repeat yesterday again
        reps = int(np.ceil(horizon / per_day))
        yesterday_bins = np.tile(hist[per_day:], reps + 1)
    seasonal = yesterday_bins[:horizon]
    if np.all(np.isnan(hist)):
        z = np.zeros(horizon)
        return Baseline(now, period_s, z, z.copy(), z.copy(), "zero")
    last = float(hist[~np.isnan(hist)][-1])
    if np.all(np.isnan(seasonal)):
        p = np.full(horizon, last)
        return Baseline(now, period_s, p, p.copy(), p.copy(), "persistence")
    seasonal = np.where(np.isnan(seasonal), last, seasonal)
    # errors of "same time yesterday" over the last day (what the seasonal rule would have said)
    errors = hist[per_day:] - hist[:per_day]
    errors = errors[~np.isnan(errors)]
    level = 0.0
    recent = (hist[per_day:] - hist[:per_day])[-max(1, round(4 * 3600 / period_s)) :]
    for e in recent[~np.isnan(recent)]:
        level = alpha * float(e) + (1 - alpha) * level
    k = np.arange(horizon)
    p50 = seasonal + level * np.exp(-k * period_s / (fade_h * 3600.0))
    if errors.size >= 4:
        lo, hi = np.quantile(errors - errors.mean(), [0.1, 0.9])
    else:
        lo = hi = 0.0
    return Baseline(now, period_s, p50, p50 + lo, p50 + hi, "seasonal+smoothing")
