"""A seeded fleet of simulated sites: which assets each has, and their profile windows.

Profiles come from `profiles` at 15-min resolution for a window starting at
the configured start (so an evening in January shows the H0 peak and heat demand).
All sites share one neighbourhood: the same weather and clouds, their own household
load, heat demand and EV sessions (decorrelated by the profile generators).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from profiles import (
    ambient_temperature_c,
    clear_sky_index,
    ev_sessions,
    heat_demand_kw,
    household_load_kw,
    poa_irradiance,
)
from profiles.ev import EvSession

__all__ = ["AssetMix", "SiteProfiles", "SiteSpec", "draw_specs", "fleet_profiles", "site_id"]

PROFILE_STEP_S = 900.0
LAT_DEG, LON_DEG = 48.45, 7.88  # Schutterwald (the Schutterwald study)


@dataclass(frozen=True)
class AssetMix:
    """Shares of sites with each asset (every site has a meter and a BMS zone)."""

    pv_share: float = 0.5
    battery_share_of_pv: float = 0.6
    ev_share: float = 0.4
    hp_share: float = 0.4
    pv_kwp: float = 8.0
    battery_kwh: float = 16.0
    battery_kw: float = 5.0
    ev_kw: float = 11.0
    hp_kw: float = 9.0
    tank_l: float = 1000.0


@dataclass(frozen=True)
class SiteSpec:
    """What one simulated site has. None = the site has no such asset."""

    site: str
    index: int
    annual_kwh: float
    heat_annual_kwh: float
    pv_kwp: float | None = None
    battery_kwh: float | None = None
    battery_kw: float | None = None
    ev_kw: float | None = None
    hp_kw: float | None = None
    tank_l: float = 1000.0


def site_id(i: int) -> str:
    """`b001`, `b002`, … (1-based)."""
    return f"b{i + 1:03d}"


def draw_specs(n_sites: int, *, seed: int, mix: AssetMix | None = None) -> list[SiteSpec]:
    """Seeded asset mix: every site a meter; PV ~50 %, battery ~60 % of PV, EV ~40 %, HP ~40 %."""
    mix = mix or AssetMix()
    rng = np.random.default_rng(seed)
    u = rng.random((n_sites, 4))
    annual = np.clip(rng.normal(4000.0, 1000.0, n_sites), 1500.0, 8000.0)
    heat = np.clip(rng.normal(12000.0, 3000.0, n_sites), 5000.0, 25000.0)
    out: list[SiteSpec] = []
    for i in range(n_sites):
        has_pv = bool(u[i, 0] < mix.pv_share)
        out.append(
            SiteSpec(
                site=site_id(i),
                index=i,
                annual_kwh=float(round(annual[i])),
                heat_annual_kwh=float(round(heat[i])),
                pv_kwp=mix.pv_kwp if has_pv else None,
                battery_kwh=mix.battery_kwh if has_pv and u[i, 1] < mix.battery_share_of_pv else None,
                battery_kw=mix.battery_kw if has_pv and u[i, 1] < mix.battery_share_of_pv else None,
                ev_kw=mix.ev_kw if u[i, 2] < mix.ev_share else None,
                hp_kw=mix.hp_kw if u[i, 3] < mix.hp_share else None,
                tank_l=mix.tank_l,
            )
        )
    return out


@dataclass(frozen=True)
class SiteProfiles:
    """15-min profile window of one site, starting at `t0` (UTC); values repeat after the window."""

    t0: datetime
    step_s: float
    load_kw: np.ndarray
    heat_kw: np.ndarray
    poa_w_m2: np.ndarray
    t_amb_c: np.ndarray
    ev_sessions: tuple[EvSession, ...]

    @property
    def window_s(self) -> float:
        """Length of the profile window in seconds; `at` wraps around it."""
        return self.step_s * len(self.load_kw)

    def at(self, t_rel_s: float) -> tuple[float, float, float, float]:
        """(load kW, heat kW, POA W/m², ambient °C) at `t_rel_s` into the window, linearly interpolated."""
        x = (t_rel_s % self.window_s) / self.step_s
        i = int(x)
        f = x - i
        j = (i + 1) % len(self.load_kw)
        return (
            float(self.load_kw[i] * (1 - f) + self.load_kw[j] * f),
            float(self.heat_kw[i] * (1 - f) + self.heat_kw[j] * f),
            float(self.poa_w_m2[i] * (1 - f) + self.poa_w_m2[j] * f),
            float(self.t_amb_c[i] * (1 - f) + self.t_amb_c[j] * f),
        )


def window_index(start: datetime, days: float) -> pd.DatetimeIndex:
    """15-min UTC index from `start` (floored to 15 min) for `days`."""
    t0 = pd.Timestamp(start).tz_convert(UTC).floor("15min")
    return pd.date_range(t0, periods=max(2, int(days * 96)), freq="15min")


def fleet_profiles(
    specs: list[SiteSpec], *, start: datetime, seed: int, days: float = 14.0
) -> list[SiteProfiles]:
    """Profiles for every site, vectorised over the fleet (one pvlib call for the neighbourhood)."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC)")
    index = window_index(start, days)
    n = len(specs)
    t_amb = ambient_temperature_c(index, seed=seed)
    k = clear_sky_index(index, seed=seed + 7919)
    poa = poa_irradiance(index, lat_deg=LAT_DEG, lon_deg=LON_DEG, k=k)
    load = household_load_kw(index, annual_kwh=np.array([s.annual_kwh for s in specs]), seed=seed + 1)
    heat = heat_demand_kw(
        index, ambient_t_c=t_amb, annual_kwh=np.array([s.heat_annual_kwh for s in specs]), seed=seed + 2
    )
    sessions = ev_sessions(index, n_ev=max(n, 1), seed=seed + 3)
    t0 = index[0].to_pydatetime()
    return [
        SiteProfiles(
            t0=t0,
            step_s=PROFILE_STEP_S,
            load_kw=np.ascontiguousarray(load[:, i]),
            heat_kw=np.ascontiguousarray(heat[:, i]),
            poa_w_m2=poa,
            t_amb_c=t_amb,
            ev_sessions=tuple(s for s in sessions if s.ev == i),
        )
        for i in range(n)
    ]


def elapsed_s(t0: datetime, now: datetime) -> float:
    return (now - t0) / timedelta(seconds=1)
