"""What a run of the study returns: `ScenarioRun`, and the `Recorder` that fills one step by step.

Why separate: the rolling-horizon OPF (`runner.py`) and the MPC (`mpc.py`) record their
steps the same way, and the AC check and the study driver read the result;
none of them needs the OPF loop to do so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud_controller.dispatch import Schedule

FloatArray = npt.NDArray[np.float64]

# scenarios whose result does not depend on the stress level (`ScenarioRun.stress` is None)
STRESS_FREE = ("status_quo", "no_control", "stor")


@dataclass
class ScenarioRun:
    """One scenario's result: per-household and HV/MV powers, per-step aggregates and energy totals."""

    scenario: str
    stress: str | None  # None: the run does not depend on the stress level
    p_site_kw: npt.NDArray[np.float32]  # (T, H) household grid exchange, load positive
    p_root_kw: FloatArray  # (T,) HV/MV load as the OPF's lossless model sees it
    extras: dict[str, FloatArray] = field(default_factory=dict)  # per-step aggregates
    energy_kwh: dict[str, float] = field(default_factory=dict)
    solve_s: float = 0.0
    ac: dict[str, Any] | None = None  # AC power-flow check (study.validate), when run
    # Steps taken over from the Stor run instead of solved (see `StorReference`); None: all solved.
    reused: npt.NDArray[np.bool_] | None = None
    # What a later run needs to reuse this one (kept for Stor only): the storage state at the
    # start of each step and the per-step AC results.
    state_kwh: tuple[FloatArray, FloatArray] | None = None
    ac_steps: Any = None
    steps_by_site: int = 0  # steps answered without the whole LP (dispatch/sites.py, repair.py)


class Recorder:
    """Per-step bookkeeping shared by the rolling-horizon OPF and the MPC: one row per applied step."""

    def __init__(self, n_steps: int, n_sites: int, dt_h: float) -> None:
        self.dt_h = dt_h
        self.p_site = np.zeros((n_steps, n_sites), dtype=np.float32)
        self.root = np.zeros(n_steps)
        self.extras = {
            k: np.zeros(n_steps)
            for k in (
                "e_bat_kwh",
                "e_ts_kwh",
                "p_bat_kw",
                "p_hp_kw",
                "curtail_kw",
                "bat_discharged_kwh",  # energy per step
                "heat_unmet_kwh",
            )
        }

    def record(self, t: int, sch: Schedule, k: int, p_site_kw: FloatArray) -> None:
        """Step t of the study is period k of the schedule; `p_site_kw` is what the sites drew."""
        self.p_site[t] = p_site_kw
        self.root[t] = float(p_site_kw.sum())
        self.extras["e_bat_kwh"][t] = sch.e_bat_kwh[k].sum()
        self.extras["e_ts_kwh"][t] = sch.e_ts_kwh[k].sum()
        self.extras["p_bat_kw"][t] = sch.p_bat_kw[k].sum()
        self.extras["p_hp_kw"][t] = sch.p_hp_kw[k].sum()
        self.extras["curtail_kw"][t] = sch.curtail_kw[k].sum()
        self.extras["bat_discharged_kwh"][t] = float(sch.p_bat_dis_kw[k].sum()) * self.dt_h
        self.extras["heat_unmet_kwh"][t] = (
            sum(v.amount for v in sch.violations if v.kind == "heat_unmet" and v.t == k) * self.dt_h
        )

    def copy_steps(self, other: ScenarioRun, steps: npt.NDArray[np.bool_]) -> None:
        """Take `steps` over from another run of the same sites and year."""
        self.p_site[steps] = other.p_site_kw[steps]
        self.root[steps] = other.p_root_kw[steps]
        for k, v in self.extras.items():
            v[steps] = other.extras[k][steps]

    def run(self, scenario: str, stress: str | None, solve_s: float, **energy_kwh: float) -> ScenarioRun:
        """The recorded steps as a `ScenarioRun` of `scenario` at `stress`."""
        return ScenarioRun(
            scenario,
            stress,
            self.p_site,
            self.root,
            extras=self.extras,
            energy_kwh={
                "battery_discharged": float(self.extras["bat_discharged_kwh"].sum()),
                "pv_curtailed": float(self.extras["curtail_kw"].sum() * self.dt_h),
                "heat_unmet": float(self.extras["heat_unmet_kwh"].sum()),
                **energy_kwh,
            },
            solve_s=solve_s,
        )
