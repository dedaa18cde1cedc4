"""Helpers shared by the profile generators: step length, calendar features, AR(1) noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter

__all__ = ["ar1", "day_of_year_frac", "hour_of_day_utc", "per_column_shift", "rescale_energy", "step_h"]


def step_h(index: pd.DatetimeIndex) -> float:
    """Step length in hours: the index's `freq`, else the median spacing (needs ≥ 2 stamps)."""
    if index.freq is not None:
        return float(pd.to_timedelta(index.freq.nanos, unit="ns").total_seconds()) / 3600.0
    if len(index) < 2:
        return 0.25
    diffs = np.diff(index.asi8)
    return float(np.median(diffs)) / 3.6e12


def _utc(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")


def hour_of_day_utc(index: pd.DatetimeIndex) -> np.ndarray:
    """Fractional UTC hour of each stamp, at the middle of its (left-labelled) interval."""
    idx = _utc(index)
    mid_h = step_h(index) / 2.0
    return np.asarray(idx.hour + idx.minute / 60.0 + idx.second / 3600.0, dtype=float) + mid_h


def day_of_year_frac(index: pd.DatetimeIndex) -> np.ndarray:
    """Day of year (0-based, fractional) at the middle of each interval."""
    idx = _utc(index)
    return np.asarray(idx.dayofyear - 1, dtype=float) + hour_of_day_utc(index) / 24.0


def ar1(rng: np.random.Generator, n: int, *, tau_steps: float, sigma: float, cols: int = 0) -> np.ndarray:
    """Stationary AR(1) noise with correlation time `tau_steps` and standard deviation `sigma`.

    Shape (n,) or (n, cols). Vectorised through `lfilter`; the first sample is drawn
    from the stationary distribution so there is no warm-up transient.
    """
    phi = float(np.exp(-1.0 / max(tau_steps, 1e-9)))
    innov_sd = sigma * np.sqrt(1.0 - phi * phi)
    shape = (n,) if cols == 0 else (n, cols)
    e = rng.standard_normal(shape) * innov_sd
    e[0] = rng.standard_normal(shape[1:]) * sigma
    out: np.ndarray = lfilter([1.0], [1.0, -phi], e, axis=0)
    return out


def per_column_shift(base: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """(T,) base → (T, H) matrix whose column h is `base` rolled by `shifts[h]` steps (cyclic)."""
    t = np.arange(base.shape[0])[:, None]
    out: np.ndarray = base[(t - shifts[None, :]) % base.shape[0]]
    return out


def rescale_energy(p_kw: np.ndarray, target_kwh: np.ndarray, dt_h: float) -> np.ndarray:
    """Scale each column of `p_kw` so that its energy (sum × dt) equals `target_kwh`."""
    e_kwh = p_kw.sum(axis=0) * dt_h
    factor = np.divide(target_kwh, e_kwh, out=np.zeros_like(e_kwh, dtype=float), where=e_kwh > 0)
    scaled: np.ndarray = p_kw * factor[None, :]
    return scaled
