"""A year (or the --quick weeks) of 15-min profiles for every household, from the shared `profiles` generators.

Reuses the `profiles` package (H0 standard load profile with fluctuations and time shifts,
Zhou PV model on seeded clear-sky × clouds, agent-based EV sessions, degree-day heat
demand, time-dependent COP) so the study and the hardware-in-the-loop test bed see the
same physics. Seeded: same config, same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from cloud_controller.study.config import StudyConfig
from cloud_controller.study.population import Population
from profiles import (
    ambient_temperature_c,
    ev_demand,
    heat_demand_kw,
    household_load_kw,
    hp_cop,
    time_index,
)
from profiles import pv_kw_per_kwp as pv_profile

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Profiles:
    """Rows are 15-min steps; columns are households unless said otherwise."""

    index: pd.DatetimeIndex
    load_kw: FloatArray  # (T, H) household electric base load
    pv_kw_per_kwp: FloatArray  # (T,) regional PV output per kWp
    ambient_c: FloatArray  # (T,)
    cop: FloatArray  # (T,) heat-pump COP
    ev_site: IntArray  # (n_ev,) household of each EV
    ev_kw: FloatArray  # (T, n_ev) uncontrolled charging at p_max
    hp_site: IntArray  # (n_hp,) household of each heat pump
    heat_kw: FloatArray  # (T, n_hp) thermal demand (space heating + hot water)
    hp_p_max_kw: FloatArray  # (n_hp,) electric rating, sized on the whole year

    @property
    def dt_h(self) -> float:
        """Step length in hours."""
        return float((self.index[1] - self.index[0]).total_seconds() / 3600.0)

    @property
    def n_steps(self) -> int:
        """Number of time steps."""
        return len(self.index)


def quick_mask(cfg: StudyConfig, full: pd.DatetimeIndex) -> npt.NDArray[np.bool_]:
    """Steps of `full` inside the quick weeks (each 7 days from its MM-DD start)."""
    keep = np.zeros(len(full), dtype=bool)
    for mmdd in cfg.quick_weeks:
        start = pd.Timestamp(f"{cfg.year}-{mmdd}", tz="UTC")
        keep |= (full >= start) & (full < start + pd.Timedelta(days=7))
    return keep


def build_profiles(cfg: StudyConfig, pop: Population, *, quick: bool = False) -> Profiles:
    """Generate on the full year, then cut the quick weeks out, so --quick sees the same days."""
    full = time_index(cfg.year)
    seed = cfg.seed
    ambient = ambient_temperature_c(full, seed=seed)
    load = household_load_kw(
        full,
        annual_kwh=pop.annual_kwh,
        seed=seed + 1,
        max_shift_steps=cfg.demand.max_shift_steps,
        noise_pct=cfg.demand.noise_pct,
    )
    pv = pv_profile(
        full, lat_deg=cfg.latitude_deg, lon_deg=cfg.longitude_deg, seed=seed + 2, ambient_t_c=ambient
    )
    ev_site = np.flatnonzero(pop.ev).astype(np.int64)
    fleet = ev_demand(full, n_ev=len(ev_site), seed=seed + 3, p_max_kw=cfg.sizes.ev_p_max_kw)
    hp_site = np.flatnonzero(pop.hp).astype(np.int64)
    heat = heat_demand_kw(
        full,
        ambient_t_c=ambient,
        annual_kwh=pop.heat_annual_kwh[hp_site],
        seed=seed + 4,
        max_shift_steps=cfg.demand.max_shift_steps,
        noise_pct=cfg.demand.noise_pct,
    )
    cop = hp_cop(ambient)
    need = heat / cop[:, None]
    hp_max = cfg.sizes.hp_sizing_factor * need.max(axis=0) if need.size else np.zeros(0)
    keep = quick_mask(cfg, full) if quick else np.ones(len(full), dtype=bool)
    index = full[keep]
    return Profiles(
        index=index,
        load_kw=np.ascontiguousarray(load[keep]),
        pv_kw_per_kwp=pv[keep],
        ambient_c=ambient[keep],
        cop=cop[keep],
        ev_site=ev_site,
        ev_kw=np.ascontiguousarray(fleet.uncontrolled_kw[keep]),
        hp_site=hp_site,
        heat_kw=np.ascontiguousarray(heat[keep]),
        hp_p_max_kw=hp_max,
    )
