"""What every run of the study reads: `StudyInputs` and the household assets it implies.

Why separate: the rolling-horizon OPF (`runner.py`), the MPC (`mpc.py`), the AC check
(`validate.py`) and the study driver (`study.py`) all take the same inputs; keeping them
apart from any one of those runs lets each import them without the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from cloud_controller.dispatch import SiteAssets
from cloud_controller.grid.region import Region
from cloud_controller.study.config import STRESS_LEVELS, StudyConfig
from cloud_controller.study.population import Population
from cloud_controller.study.profiles import Profiles

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class StudyInputs:
    """Everything a run needs: the configuration, region, household population and profiles."""

    cfg: StudyConfig
    region: Region
    pop: Population
    prof: Profiles

    @property
    def steps_per_day(self) -> int:
        """Time steps per day."""
        return round(24.0 / self.prof.dt_h)

    def pv_kw(self, year: int) -> FloatArray:
        """(T, H) PV output of the 2024 or 2030 roofs."""
        s = self.cfg.sizes
        kwp = (
            np.where(self.pop.pv_2024, s.pv_2024_kwp, 0.0)
            if year == 2024
            else np.where(self.pop.pv_2030, s.pv_2030_kwp, 0.0)
        )
        return self.prof.pv_kw_per_kwp[:, None] * kwp[None, :]

    def ev_by_site(self, ev_kw: FloatArray) -> FloatArray:
        """(T, H) EV charging summed per household, from the per-EV (T, n_ev) powers."""
        out = np.zeros((self.prof.n_steps, self.pop.n))
        np.add.at(out.T, self.prof.ev_site, ev_kw.T)
        return out

    def hp_direct_kw(self, heat_kw: FloatArray) -> FloatArray:
        """(T, H) heat-pump electric load when heat is made as it is needed (no thermal store)."""
        out = np.zeros((self.prof.n_steps, self.pop.n))
        np.add.at(out.T, self.prof.hp_site, (heat_kw / self.prof.cop[:, None]).T)
        return out

    def status_quo_site_kw(self) -> FloatArray:
        """(T, H) household grid exchange in the status quo: load minus the 2024 PV."""
        return self.prof.load_kw - self.pv_kw(2024)

    def no_control_site_kw(self) -> FloatArray:
        """(T, H) household grid exchange in 2030 without control: load, EVs, direct heat pumps minus PV."""
        return (
            self.prof.load_kw
            + self.ev_by_site(self.prof.ev_kw)
            + self.hp_direct_kw(self.prof.heat_kw)
            - self.pv_kw(2030)
        )

    @cached_property
    def status_quo_peak_kw(self) -> float:
        """Peak HV/MV load of the status quo (lossless sum of the households)."""
        return float(self.status_quo_site_kw().sum(axis=1).max())

    def limit_kw(self, stress: str) -> float:
        """The status-quo peak HV/MV load is `stress` × the limit (the Schutterwald study §3.1)."""
        return self.status_quo_peak_kw / STRESS_LEVELS[stress]


def _assets(inp: StudyInputs) -> SiteAssets:
    s = inp.cfg.sizes
    n = inp.pop.n
    hp = np.zeros(n)
    hp[inp.prof.hp_site] = inp.prof.hp_p_max_kw
    ts = np.where(inp.pop.thermal_store & inp.pop.hp, s.thermal_store_kwh, 0.0)
    return SiteAssets(
        bat_e_kwh=np.where(inp.pop.battery, s.battery_kwh, 0.0),
        bat_p_kw=np.where(inp.pop.battery, s.battery_kw, 0.0),
        hp_p_max_kw=hp,
        ts_e_kwh=ts,
    )
