"""`gridflex bench study`'s measurement: one scenario-year of the Schutterwald study, timed by phase.

The phases are timed apart because they scale differently: the inputs (region,
households, a year of profiles) are built once per study, the per-step OPF runs once per
scenario, and the AC check is a batch power flow over the whole year.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass

__all__ = ["StudyBenchFigures", "run_study_bench"]


@dataclass(frozen=True)
class StudyBenchFigures:
    """One scenario-year of the study, timed by phase, with the AC check's deviation from DC."""

    scenario: str
    steps: int
    households: int
    inputs_s: float  # region + households + year profiles
    run_s: float  # per-step OPF over the year, including the engine build
    solve_s: float  # of which solves (by site or HiGHS) and updates
    steps_by_site: int  # steps answered site by site (certified, no HiGHS)
    ac_check_s: float  # power-grid-model batch over the year
    ac_dc_mean_rel_pct: float
    ac_dc_max_rel_pct: float
    rss_mb: float  # peak of this process

    @property
    def solve_ms_per_step(self) -> float:
        """Mean solve time per step (NaN for an empty run)."""
        return self.solve_s / self.steps * 1e3 if self.steps else float("nan")


def run_study_bench(scenario: str = "stor", stress: str = "critical") -> StudyBenchFigures:
    """Build the study's inputs, run `scenario` over the year, check it with an AC power flow.

    `scenario` runs at `stress` unless it is `stor`; each phase is timed.
    """
    from cloud_controller.study import StudyConfig, load_inputs, run_scenario, validate_run

    t0 = time.perf_counter()
    inputs = load_inputs(StudyConfig(), quick=False)
    t_inputs = time.perf_counter() - t0
    t1 = time.perf_counter()
    run = run_scenario(inputs, scenario, None if scenario == "stor" else stress)
    t_run = time.perf_counter() - t1
    t2 = time.perf_counter()
    ac = validate_run(inputs, run)
    t_pf = time.perf_counter() - t2
    return StudyBenchFigures(
        scenario=scenario,
        steps=inputs.prof.n_steps,
        households=inputs.pop.n,
        inputs_s=t_inputs,
        run_s=t_run,
        solve_s=run.solve_s,
        steps_by_site=run.steps_by_site,
        ac_check_s=t_pf,
        ac_dc_mean_rel_pct=float(ac["ac_dc_mean_rel_pct"]),
        ac_dc_max_rel_pct=float(ac["ac_dc_max_rel_pct"]),
        rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
