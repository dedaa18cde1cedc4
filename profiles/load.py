"""Household electric and thermal load profiles (the Schutterwald study §2.2), vectorised and seeded.

Electric: the BDEW H0 standard load profile (demandlib, shipped with the package, no
download) normalised to 1 kWh/a, scaled to each household's annual consumption, then
decorrelated between households by a random time shift and a multiplicative
fluctuation, as the Schutterwald study does "to reduce cross-correlation effects between households".
Thermal: degree-day space heating on the daily mean temperature plus a hot-water draw
profile, shifted and fluctuated per household the same way.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd

from profiles._common import (
    ar1,
    hour_of_day_utc,
    per_column_shift,
    rescale_energy,
    step_h,
)

__all__ = ["h0_kw_per_kwh", "heat_demand_kw", "household_load_kw"]

HEATING_LIMIT_C = 15.0  # no space heating above this daily mean outdoor temperature
HOT_WATER_SHARE = 0.18  # share of the annual heat demand that is domestic hot water


@lru_cache(maxsize=8)
def _h0_year(year: int) -> pd.Series:
    """BDEW H0 for one year, 15-min average kW per kWh/a (sums to 4 per year)."""
    from demandlib import bdew

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slp = bdew.ElecSlp(year).get_scaled_power_profiles({"h0": 1.0})
    s = slp["h0"].astype(float)
    s.index = pd.DatetimeIndex(s.index).tz_localize(None)
    out: pd.Series = s
    return out


def h0_kw_per_kwh(index: pd.DatetimeIndex) -> np.ndarray:
    """(T,) H0 average power in kW per kWh of annual demand, at `index` (any step).

    demandlib labels local (German) time without a zone; we read it as the wall-clock
    hour of the stamp, which is what the profile describes.
    """
    local = index.tz_convert("Europe/Berlin").tz_localize(None) if index.tz is not None else index
    years = sorted({int(y) for y in local.year} | {int(local[-1].year)})
    full = pd.concat([_h0_year(y) for y in years])
    full = full[~full.index.duplicated()]
    dt_min = step_h(index) * 60.0
    if dt_min > 15.0:
        full = full.resample(f"{round(dt_min)}min").mean()
    keys = local.floor("15min") if dt_min <= 15.0 else local.floor(f"{round(dt_min)}min")
    values = full.reindex(keys, method="ffill").to_numpy(dtype=float)
    out: np.ndarray = np.nan_to_num(
        values, nan=float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
    )
    return out


def _decorrelate(
    base: np.ndarray,
    *,
    h: int,
    rng: np.random.Generator,
    max_shift_steps: int,
    noise_pct: float,
    tau_steps: float,
) -> np.ndarray:
    shifts = (
        rng.integers(-max_shift_steps, max_shift_steps + 1, size=h)
        if max_shift_steps > 0
        else np.zeros(h, int)
    )
    shifted = per_column_shift(base, shifts)
    if noise_pct > 0:
        noise = ar1(rng, base.shape[0], tau_steps=tau_steps, sigma=noise_pct / 100.0, cols=h)
        shifted = shifted * np.clip(1.0 + noise, 0.0, None)
    return shifted


def household_load_kw(
    index: pd.DatetimeIndex,
    *,
    annual_kwh: np.ndarray,
    seed: int,
    max_shift_steps: int = 4,
    noise_pct: float = 10.0,
) -> np.ndarray:
    """(T, H) electric load per household in kW; each column's energy ≈ its `annual_kwh`.

    The energy is matched exactly to `annual_kwh` × (the H0 profile's share of the year
    that `index` covers), so a full year sums to `annual_kwh`.
    """
    annual = np.atleast_1d(np.asarray(annual_kwh, dtype=float))
    rng = np.random.default_rng(seed)
    dt_h = step_h(index)
    base = h0_kw_per_kwh(index)
    share = float(base.sum() * dt_h)  # energy per kWh/a over the index (1 for a full year)
    p = _decorrelate(
        base, h=annual.size, rng=rng, max_shift_steps=max_shift_steps, noise_pct=noise_pct, tau_steps=1.0
    )
    return rescale_energy(p, annual * share, dt_h)


def _hot_water_shape(index: pd.DatetimeIndex) -> np.ndarray:
    """Relative daily hot-water draw: morning and evening peaks (local ≈ UTC+1)."""
    hour = (hour_of_day_utc(index) + 1.0) % 24.0
    morning = np.exp(-0.5 * ((hour - 7.0) / 1.2) ** 2)
    evening = 0.8 * np.exp(-0.5 * ((hour - 19.5) / 1.8) ** 2)
    out: np.ndarray = 0.08 + morning + evening
    return out


def heat_demand_kw(
    index: pd.DatetimeIndex,
    *,
    ambient_t_c: np.ndarray,
    annual_kwh: np.ndarray,
    seed: int,
    max_shift_steps: int = 4,
    noise_pct: float = 10.0,
) -> np.ndarray:
    """(T, H) thermal demand (space heating + hot water) in kW; column sums ≈ `annual_kwh`.

    Space heating follows heating degrees on the 24 h running mean of ambient temperature
    (the building's inertia); hot water is a fixed share with a daily draw shape. Over a
    partial year the energy is the annual figure times the index's share of a typical
    year's degree-days plus hot water, estimated from the same model.
    """
    annual = np.atleast_1d(np.asarray(annual_kwh, dtype=float))
    t_amb = np.asarray(ambient_t_c, dtype=float)
    if t_amb.shape != (len(index),):
        raise ValueError(f"ambient_t_c must have shape ({len(index)},), got {t_amb.shape}")
    if annual.size == 0:  # no heat pump in the fleet: no columns (not a broadcasting error)
        return np.zeros((len(index), 0))
    rng = np.random.default_rng(seed)
    dt_h = step_h(index)
    steps_per_day = max(1, round(24.0 / dt_h))
    daily_mean = pd.Series(t_amb).rolling(steps_per_day, min_periods=1, center=True).mean().to_numpy()
    # Weight by the 15 °C heating limit, with a small hour-scale part so nights heat a bit more.
    degrees = np.clip(HEATING_LIMIT_C - (0.8 * daily_mean + 0.2 * t_amb), 0.0, None)
    hw = _hot_water_shape(index)
    hours = len(index) * dt_h
    year_h = 8760.0
    # Reference: a typical year has ≈ 2,900 K·d of heating degrees (15 °C limit, SW Germany).
    sh_energy_ref = 2900.0 * 24.0
    sh = degrees / sh_energy_ref
    hw_norm = hw / (hw.mean() * year_h)
    base = (1.0 - HOT_WATER_SHARE) * sh + HOT_WATER_SHARE * hw_norm  # kW per kWh/a, roughly
    share = 1.0 if hours >= year_h * 0.99 else float(base.sum() * dt_h)
    p = _decorrelate(
        base, h=annual.size, rng=rng, max_shift_steps=max_shift_steps, noise_pct=noise_pct, tau_steps=2.0
    )
    return rescale_energy(p, annual * share, dt_h)
