"""One scenario at one stress level: profiles + policy → rolling-horizon OPF over every step.

The per-step OPF is `cloud_controller.dispatch.DispatchEngine` with horizon 1 (the Schutterwald study's
rolling horizon): built once per run, then only bounds and costs change per step.
Scenarios without storage need no optimisation: their HV/MV load is the sum of the
households' net loads (lossless, as the DC OPF sees it); the AC power flow in `validate`
adds the losses.

This module holds the loop and the choice of run; what it reads and returns is in
`inputs.py` and `results.py`, the fixed-household LP in `fixed_sites.py`, and the
curtailment policies' profiles in `curtailment.py`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

from cloud_controller.dispatch import (
    MEND,
    SITE,
    THRESHOLD,
    DispatchEngine,
    Engine,
    EngineOptions,
    StepInputs,
    StorageState,
    build_problem,
)
from cloud_controller.grid.reduce import station_grid
from cloud_controller.study import policies
from cloud_controller.study.curtailment import _curtailment
from cloud_controller.study.fixed_sites import FixedSites
from cloud_controller.study.inputs import StudyInputs, _assets
from cloud_controller.study.results import STRESS_FREE, Recorder, ScenarioRun

FloatArray = npt.NDArray[np.float64]

TOL_SAME_KW = 1e-6  # Stor's HV/MV power within a policy's limit: its step is the policy's
TOL_SAME_KWH = 1e-6  # storage states this close are the same state


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a hot loop.

    Why: the loop allocates a few small objects per step, which triggers collections of the
    whole heap (region, profiles, pandapower net): 5 % of a scenario-year in `perf`. The loop
    makes no reference cycles, so nothing is left uncollected; collection resumes after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_fixed(inp: StudyInputs, scenario: str) -> ScenarioRun:
    """Status quo or 2030 without control: no storage, no optimisation."""
    site = inp.status_quo_site_kw() if scenario == "status_quo" else inp.no_control_site_kw()
    return ScenarioRun(scenario, None, site.astype(np.float32), site.sum(axis=1))


def _differs(a: FloatArray, b: object, n_t: int) -> npt.NDArray[np.bool_]:
    """Per step: does array `a` (T, ...) differ from `b` (same shape or broadcastable)?"""
    diff = np.asarray(a) != np.broadcast_to(np.asarray(b), np.shape(a))
    out: npt.NDArray[np.bool_] = diff.reshape(n_t, -1).any(axis=1)
    return out


def run_opf(
    inp: StudyInputs,
    scenario: str,
    stress: str | None,
    reference: ScenarioRun | None = None,
    *,
    fixed_sites: bool = True,
) -> ScenarioRun:
    """Storage scenarios: the rolling-horizon OPF, step by step, carrying storage state.

    With `reference` (the Stor run of the same inputs, with its state history), a step is
    taken over from Stor instead of solved when this run's LP at that step is Stor's LP:
    the same inputs (the policy is idle there), Stor's solution within this run's station
    limits (so adding them changes nothing: a constraint the optimum already satisfies),
    and the same storage state at the start of the step (to 1e-6 kWh). Policies act around
    congestion only, so most of a year is taken over; `ScenarioRun.reused` says which steps.
    """
    import time

    cfg = inp.cfg
    prof = inp.prof
    dt = prof.dt_h
    spd = inp.steps_per_day
    limit = inp.limit_kw(stress) if stress else float("inf")
    forecast = inp.no_control_site_kw().sum(axis=1)  # the Schutterwald study's pseudo-forecast
    onsets = policies.congestion_onsets(forecast, limit, spd)
    # "grid_opf" (beyond the paper) = ProA + ProB with the HV/MV limit in every step's OPF.
    parts = {"proa", "prob"} if scenario == "grid_opf" else set(scenario.split("_")[1:])
    ev, heat, hp_cap = _curtailment(inp, parts, onsets)
    assets = _assets(inp)
    eta_c, eta_d = cfg.sizes.battery_eta_charge, cfg.sizes.battery_eta_discharge
    ts_loss = 1.0 - (1.0 - cfg.sizes.thermal_store_loss_per_day) ** (dt / 24.0)
    if cfg.opf_network == "station":
        grid, site_bus = station_grid(inp.region)
    else:
        grid, site_bus = inp.region.grid, inp.region.site_bus
    problem = build_problem(
        grid,
        site_bus,
        assets,
        horizon=1,
        dt_h=dt,
        eta_c=eta_c,
        eta_d=eta_d,
        ts_loss_per_step=ts_loss,
        enforce_voltage=cfg.enforce_lv_limits and cfg.opf_network == "full",
        site_pv=inp.pop.pv_2030,
    )
    w = problem.weights
    pro = policies.pro_ab(
        forecast,
        onsets,
        pro_a="proa" in parts,
        pro_b="prob" in parts,
        window_steps=round(cfg.proa.window_h / dt),
        search_steps=round(cfg.proa.search_h / dt),
        c_import_base=w.c_import,
        c_import_low=cfg.proa.c_import_low,
        bat_w_discharge_base=w.bat_w_discharge,
        ts_w_discharge_base=w.ts_w_discharge,
        w_discharge_hold=cfg.prob.w_discharge_hold,
    )
    grid_aware = scenario == "grid_opf"
    options = EngineOptions(cop_rtol=cfg.cop_rtol, by_site=cfg.opf_by_site)
    engine: Engine = DispatchEngine(problem, options)
    pv = inp.pv_kw(2030)
    base = prof.load_kw + inp.ev_by_site(ev) - pv
    n_t = prof.n_steps
    state = StorageState(e_bat_kwh=0.5 * problem.bat_e_max_kwh, e_ts_kwh=0.5 * problem.ts_e_max_kwh)
    rec = Recorder(n_t, inp.pop.n, dt)
    # The Schutterwald study's OPF optimises self-consumption; the HV/MV limit binds only while ProA
    # pre-charges (so charging fills the headroom, not more) and in the grid-aware mode.
    st_lim = np.where(pro.precharge, cfg.proa.headroom * limit, np.inf)
    if grid_aware:
        st_lim = np.full(n_t, limit * (1.0 - cfg.grid_aware.margin))
    st_feed = np.full(n_t, limit * (1.0 - cfg.grid_aware.margin) if grid_aware else np.inf)
    use_fixed = fixed_sites and cfg.opf_network == "station"
    fixed = FixedSites.of(problem, base, st_lim, st_feed) if use_fixed else None
    small: Engine | None = None if fixed is None else DispatchEngine(fixed.problem, options)
    same = np.zeros(n_t, dtype=bool)
    ref_bat = ref_ts = np.zeros((n_t + 1, 0))
    if reference is not None and reference.state_kwh is not None:
        ref_bat, ref_ts = reference.state_kwh
        same = ~(
            _differs(ev, prof.ev_kw, n_t)
            | _differs(heat, prof.heat_kw, n_t)
            | _differs(hp_cap, 1.0, n_t)
            | _differs(pro.c_import, w.c_import, n_t)
            | _differs(pro.bat_w_discharge, w.bat_w_discharge, n_t)
            | _differs(pro.ts_w_discharge, w.ts_w_discharge, n_t)
        )
        same &= (reference.p_root_kw <= st_lim + TOL_SAME_KW) & (
            -reference.p_root_kw <= st_feed + TOL_SAME_KW
        )
    keep_state = scenario == "stor"
    hist_bat = np.zeros((n_t + 1, problem.n_bat)) if keep_state else None
    hist_ts = np.zeros((n_t + 1, problem.n_hp)) if keep_state else None
    reused = np.zeros(n_t, dtype=bool)
    steps_by_site = 0  # answered without the whole LP: routes site, threshold, mend
    t_solve = time.perf_counter()
    with gc_paused():
        for t in range(n_t):
            if hist_bat is not None and hist_ts is not None:
                hist_bat[t] = state.e_bat_kwh
                hist_ts[t] = state.e_ts_kwh
            if (
                same[t]
                and np.abs(state.e_bat_kwh - ref_bat[t]).max(initial=0.0) <= TOL_SAME_KWH
                and np.abs(state.e_ts_kwh - ref_ts[t]).max(initial=0.0) <= TOL_SAME_KWH
            ):
                reused[t] = True
                state = StorageState(e_bat_kwh=ref_bat[t + 1], e_ts_kwh=ref_ts[t + 1])
                continue
            sl = slice(t, t + 1)
            x = StepInputs(
                base_kw=base[sl],
                pv_kw=pv[sl],
                heat_kw=heat[sl],
                cop=prof.cop[sl],
                c_import=pro.c_import[sl],
                bat_w_discharge=pro.bat_w_discharge[sl],
                ts_w_discharge=pro.ts_w_discharge[sl],
                hp_cap_frac=hp_cap[sl],
                station_limit_kw=st_lim[sl],
                station_feed_limit_kw=st_feed[sl],
            )
            if fixed is not None and small is not None and fixed.exact[t]:
                ans = small.answer(fixed.inputs(x, t), state)
                sch = ans.schedule
                p_site = base[t].copy()
                p_site[fixed.flex] = sch.p_site_kw[0]
            else:
                ans = engine.answer(x, state)
                sch = ans.schedule
                p_site = sch.p_site_kw[0]
            steps_by_site += ans.route in (SITE, THRESHOLD, MEND)
            state = StorageState(e_bat_kwh=sch.e_bat_kwh[0].copy(), e_ts_kwh=sch.e_ts_kwh[0].copy())
            rec.record(t, sch, 0, p_site)
    if reference is not None and reused.any():
        rec.copy_steps(reference, reused)
    solve_s = time.perf_counter() - t_solve
    out = rec.run(
        scenario,
        stress if scenario not in STRESS_FREE else None,
        solve_s,
        ev_shifted=float(np.abs(ev - prof.ev_kw).sum() * dt / 2.0),
        heat_deferred=float(np.abs(heat - prof.heat_kw).sum() * dt / 2.0),
    )
    if reference is not None:
        out.reused = reused
    out.steps_by_site = steps_by_site
    if hist_bat is not None and hist_ts is not None:
        hist_bat[n_t] = state.e_bat_kwh
        hist_ts[n_t] = state.e_ts_kwh
        out.state_kwh = (hist_bat, hist_ts)
    return out


def run_scenario(
    inp: StudyInputs, scenario: str, stress: str | None, reference: ScenarioRun | None = None
) -> ScenarioRun:
    """One run; `reference` (the Stor run, see `run_opf`) lets policy runs skip Stor's steps."""
    if scenario in ("status_quo", "no_control"):
        return run_fixed(inp, scenario)
    return run_opf(inp, scenario, stress, None if scenario == "stor" else reference)
