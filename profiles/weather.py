"""Time axis and a seeded synthetic climate (south-west Germany by default), offline.

No weather files are downloaded: the ambient temperature is a seasonal and a daily
cosine plus a multi-day weather anomaly (AR(1)) and small hour-scale noise. Good
enough to drive COP, heat demand and PV module temperature with realistic spreads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profiles._common import ar1, day_of_year_frac, hour_of_day_utc, step_h

__all__ = ["ambient_temperature_c", "time_index"]

COLDEST_DAY = 15.0  # mid-January
WARMEST_HOUR_UTC = 14.0  # ≈ 15:00 CET


def time_index(year: int, *, step_min: int = 15) -> pd.DatetimeIndex:
    """Every step of `year`, UTC, left-labelled (00:00 is the first interval)."""
    if step_min <= 0 or (24 * 60) % step_min:
        raise ValueError(f"step_min must divide a day, got {step_min}")
    return pd.date_range(
        pd.Timestamp(year=year, month=1, day=1, tz="UTC"),
        pd.Timestamp(year=year + 1, month=1, day=1, tz="UTC"),
        freq=f"{step_min}min",
        inclusive="left",
    )


def ambient_temperature_c(
    index: pd.DatetimeIndex,
    *,
    seed: int,
    mean_c: float = 10.5,
    seasonal_amp_c: float = 9.5,
    daily_amp_c: float = 4.0,
    anomaly_sd_c: float = 3.0,
) -> np.ndarray:
    """(T,) outdoor air temperature in °C: seasonal + daily cycle + seeded weather anomaly."""
    rng = np.random.default_rng(seed)
    doy = day_of_year_frac(index)
    hour = hour_of_day_utc(index)
    seasonal = -seasonal_amp_c * np.cos(2 * np.pi * (doy - COLDEST_DAY) / 365.25)
    # Daily swing is larger in summer (clear, long days) than in winter.
    daily_scale = 1.0 + 0.35 * np.cos(2 * np.pi * (doy - 196.0) / 365.25)
    daily = daily_amp_c * daily_scale * np.cos(2 * np.pi * (hour - WARMEST_HOUR_UTC) / 24.0)
    steps_per_day = 24.0 / step_h(index)
    anomaly = ar1(rng, len(index), tau_steps=3.0 * steps_per_day, sigma=anomaly_sd_c)
    jitter = ar1(rng, len(index), tau_steps=steps_per_day / 12.0, sigma=0.4)
    out: np.ndarray = mean_c + seasonal + daily + anomaly + jitter
    return out
