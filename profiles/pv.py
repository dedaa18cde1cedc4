"""PV: O'Connell & Keane's module model (Zhou et al.) on pvlib clear-sky irradiance × seeded clouds.

`module_power_w` is the physics (also used by the live PV inverter simulator);
`clear_sky_index` is the stochastic cloud process; `pv_kw_per_kwp` puts them together
for a whole index, vectorised. Everything offline: pvlib ships its Linke turbidity table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from profiles._common import ar1, step_h

__all__ = ["ZHOU_250WP", "ZhouModule", "clear_sky_index", "module_power_w", "poa_irradiance", "pv_kw_per_kwp"]

K_B = 1.380649e-23
Q_E = 1.602176634e-19


@dataclass(frozen=True)
class ZhouModule:
    """O'Connell & Keane's PV module parameters (Zhou et al. [47]), with the 60-cell module they fit."""

    alpha: float = 1.21
    beta: float = 0.058
    gamma: float = 1.15
    n_mpp: float = 1.17
    rs_ohm: float = 0.012
    p_stc_w: float = 250.0
    voc0_v: float = 37.8
    isc0_a: float = 8.28
    g0_w_m2: float = 1000.0
    t0_c: float = 25.0
    cells: int = 60
    noct_c: float = 45.0


ZHOU_250WP = ZhouModule()


def module_power_w(
    g_w_m2: np.ndarray | float, t_module_c: np.ndarray | float, m: ZhouModule = ZHOU_250WP
) -> np.ndarray:
    """Maximum power of one module (W) at irradiance G and module temperature T (O'Connell & Keane 2021 eq.).

    Isc = Isc0 (G/G0)^α; Voc = Voc0 / (1 + β ln(G0/G)) · (T0/T)^γ;
    voc = Voc / (n k T / q · cells); PM = (voc − ln(voc + 0.72)) / (1 + voc) · (1 − Rs Isc/Voc) · Voc · Isc.
    Zero where G ≤ 1 W/m² (night).
    """
    g = np.asarray(g_w_m2, dtype=float)
    t_k = np.asarray(t_module_c, dtype=float) + 273.15
    t0_k = m.t0_c + 273.15
    lit = g > 1.0
    g_safe = np.where(lit, g, m.g0_w_m2)
    isc = m.isc0_a * (g_safe / m.g0_w_m2) ** m.alpha
    denom = 1.0 + m.beta * np.log(m.g0_w_m2 / g_safe)
    voc_v = m.voc0_v / np.maximum(denom, 0.05) * (t0_k / t_k) ** m.gamma
    vt = m.n_mpp * K_B * t_k / Q_E * m.cells
    voc_n = np.maximum(voc_v / vt, 1.0)
    ff = (voc_n - np.log(voc_n + 0.72)) / (1.0 + voc_n) * np.clip(1.0 - m.rs_ohm * isc / voc_v, 0.0, 1.0)
    out: np.ndarray = np.where(lit, ff * voc_v * isc, 0.0)
    return out


def _stc_w(m: ZhouModule) -> float:
    return float(module_power_w(m.g0_w_m2, m.t0_c, m))


def module_temperature_c(poa_w_m2: np.ndarray, t_amb_c: np.ndarray, m: ZhouModule = ZHOU_250WP) -> np.ndarray:
    """NOCT model: the module runs (NOCT − 20 K) above ambient at 800 W/m²."""
    out: np.ndarray = np.asarray(t_amb_c) + np.asarray(poa_w_m2) * (m.noct_c - 20.0) / 800.0
    return out


def clear_sky_index(index: pd.DatetimeIndex, *, seed: int) -> np.ndarray:
    """(T,) seeded clear-sky index k ∈ [0.05, 1]: a daily weather Markov chain + intraday AR(1).

    Day types: clear (k≈0.95), mixed (k≈0.6, strongly variable) and overcast (k≈0.25),
    with persistence, and more overcast days in winter.
    """
    rng = np.random.default_rng(seed)
    dt_h = step_h(index)
    idx = index.tz_convert("UTC") if index.tz is not None else index
    day_no = np.asarray((idx.normalize() - idx[0].normalize()).days, dtype=int)
    n_days = int(day_no[-1]) + 1 if len(day_no) else 0
    doy0 = int(idx[0].dayofyear)
    states = np.empty(n_days, dtype=int)
    state = 1
    u = rng.random(n_days)
    for d in range(n_days):
        winter = 0.5 + 0.5 * np.cos(2 * np.pi * (doy0 + d - 15) / 365.25)  # 1 in January, 0 in July
        p_clear = 0.45 - 0.25 * winter
        p_over = 0.15 + 0.35 * winter
        if u[d] < 0.55:  # persistence: keep yesterday's type
            pass
        else:
            v = (u[d] - 0.55) / 0.45
            state = 0 if v < p_clear else (2 if v > 1.0 - p_over else 1)
        states[d] = state
    mean_k = np.array([0.95, 0.6, 0.25])[states][day_no]
    sd_k = np.array([0.04, 0.22, 0.08])[states][day_no]
    steps_per_h = 1.0 / dt_h
    noise = ar1(rng, len(index), tau_steps=max(0.5 * steps_per_h, 1.0), sigma=1.0)
    k: np.ndarray = np.clip(mean_k + sd_k * noise, 0.05, 1.0)
    return k


def poa_irradiance(
    index: pd.DatetimeIndex,
    *,
    lat_deg: float,
    lon_deg: float,
    k: np.ndarray,
    tilt_deg: float = 30.0,
    azimuth_deg: float = 180.0,
) -> np.ndarray:
    """(T,) plane-of-array irradiance (W/m²) at interval midpoints: clear sky × clear-sky index.

    Clouds cut the beam harder than the global: DNI scales with ((k − 0.2)/0.8)^1.5,
    the rest of GHI is diffuse. Isotropic sky transposition.
    """
    import pvlib

    mid = index + pd.Timedelta(hours=step_h(index) / 2.0)
    loc = pvlib.location.Location(lat_deg, lon_deg, tz="UTC")
    sp = loc.get_solarposition(mid)
    cs = loc.get_clearsky(mid, model="ineichen", solar_position=sp)
    ghi = cs["ghi"].to_numpy() * k
    beam = np.clip((k - 0.2) / 0.8, 0.0, 1.0) ** 1.5
    dni = cs["dni"].to_numpy() * beam
    cosz = np.clip(np.cos(np.radians(sp["apparent_zenith"].to_numpy())), 0.0, None)
    dhi = np.clip(ghi - dni * cosz, 0.0, None)
    poa = pvlib.irradiance.get_total_irradiance(
        tilt_deg,
        azimuth_deg,
        sp["apparent_zenith"].to_numpy(),
        sp["azimuth"].to_numpy(),
        dni,
        ghi,
        dhi,
        model="isotropic",
    )["poa_global"]
    out: np.ndarray = np.nan_to_num(np.asarray(poa, dtype=float), nan=0.0).clip(0.0, None)
    out[sp["apparent_elevation"].to_numpy() <= 0.0] = 0.0
    return out


def pv_kw_per_kwp(
    index: pd.DatetimeIndex,
    *,
    lat_deg: float,
    lon_deg: float,
    seed: int,
    ambient_t_c: np.ndarray | None = None,
    tilt_deg: float = 30.0,
    azimuth_deg: float = 180.0,
    inverter_eff: float = 0.96,
) -> np.ndarray:
    """(T,) AC output per kWp installed; 0 at night, ≤ 1.

    Zhou module model at the seeded POA irradiance and NOCT module temperature, times inverter efficiency.
    """
    from profiles.weather import ambient_temperature_c

    t_amb = ambient_temperature_c(index, seed=seed) if ambient_t_c is None else np.asarray(ambient_t_c, float)
    k = clear_sky_index(index, seed=seed + 7919)
    poa = poa_irradiance(
        index, lat_deg=lat_deg, lon_deg=lon_deg, k=k, tilt_deg=tilt_deg, azimuth_deg=azimuth_deg
    )
    t_mod = module_temperature_c(poa, t_amb)
    p_rel = module_power_w(poa, t_mod) / ZHOU_250WP.p_stc_w
    out: np.ndarray = np.clip(p_rel * inverter_eff, 0.0, 1.0)
    return out
