"""Beyond the Schutterwald study: a multi-period MPC that plans a whole horizon at once.

Every `replan_h` hours the engine (the same pyomo/HiGHS formulation, horizon > 1) plans
the next `horizon_h` hours with the HV/MV limit as a soft constraint, and the first
`replan_h` hours of the plan are applied. The forecast is the realised profiles (an
"oracle"): this mode measures what planning can achieve at best, not what a forecast
delivers; the live controller (cloud_controller.live) is where forecast error is met.

A 96-step plan on the full 631-bus LV model has ~0.5 M columns; the MPC plans on a
station-level reduction instead (HV/MV and the three MV/LV transformers, households on
their station's bus), which keeps the limits the study counts and the transformer limits.
"""

from __future__ import annotations

import time

import numpy as np

from cloud_controller.dispatch import (
    DispatchEngine,
    Engine,
    EngineOptions,
    StepInputs,
    StorageState,
    build_problem,
)
from cloud_controller.grid.reduce import station_grid
from cloud_controller.study.inputs import StudyInputs, _assets
from cloud_controller.study.results import Recorder, ScenarioRun


def run_mpc(
    inp: StudyInputs,
    stress: str,
    *,
    horizon_h: float = 24.0,
    replan_h: float = 6.0,
) -> ScenarioRun:
    """Plan `horizon_h` ahead every `replan_h`; apply the plan's storage and heat-pump moves."""
    cfg = inp.cfg
    prof = inp.prof
    dt = prof.dt_h
    horizon = round(horizon_h / dt)
    replan = round(replan_h / dt)
    limit = inp.limit_kw(stress) * (1.0 - cfg.grid_aware.margin)
    grid, site_bus = station_grid(inp.region)
    problem = build_problem(
        grid,
        site_bus,
        _assets(inp),
        horizon=horizon,
        dt_h=dt,
        eta_c=cfg.sizes.battery_eta_charge,
        eta_d=cfg.sizes.battery_eta_discharge,
        ts_loss_per_step=1.0 - (1.0 - cfg.sizes.thermal_store_loss_per_day) ** (dt / 24.0),
        enforce_voltage=False,
        site_pv=inp.pop.pv_2030,
    )
    engine: Engine = DispatchEngine(problem, EngineOptions(cop_rtol=cfg.cop_rtol))
    pv = inp.pv_kw(2030)
    base_real = prof.load_kw + inp.ev_by_site(prof.ev_kw) - pv
    heat_real = prof.heat_kw
    n_t = prof.n_steps
    state = StorageState(0.5 * problem.bat_e_max_kwh, 0.5 * problem.ts_e_max_kwh)
    rec = Recorder(n_t, inp.pop.n, dt)
    t_solve = time.perf_counter()

    def window(arr: np.ndarray, t: int) -> np.ndarray:
        """Rows t .. t+horizon, padded with the last row past the end of the data."""
        idx = np.minimum(np.arange(t, t + horizon), n_t - 1)
        return arr[idx]

    for t in range(0, n_t, replan):
        x = StepInputs(
            base_kw=window(base_real, t),
            pv_kw=window(pv, t),
            heat_kw=window(heat_real, t),
            cop=window(prof.cop, t),
            station_limit_kw=np.full(horizon, limit),
            station_feed_limit_kw=np.full(horizon, limit),
        )
        if t:
            engine.shift_basis(replan)  # the window moved `replan` periods: so does the basis
        sch = engine.answer(x, state).schedule
        # Apply the first `replan` steps of the plan.
        n_apply = min(replan, n_t - t)
        for k in range(n_apply):
            s = t + k
            bat = np.zeros(inp.pop.n)
            np.add.at(bat, problem.bat_site, sch.p_bat_kw[k])
            hp = np.zeros(inp.pop.n)
            np.add.at(hp, problem.hp_site, sch.p_hp_kw[k])
            rec.record(s, sch, k, base_real[s] + bat + hp + sch.curtail_kw[k])
        last = n_apply - 1
        state = StorageState(sch.e_bat_kwh[last].copy(), sch.e_ts_kwh[last].copy())
    return rec.run("mpc", stress, time.perf_counter() - t_solve, ev_shifted=0.0, heat_deferred=0.0)
