"""One scenario at one stress level: profiles + policy → rolling-horizon OPF over every step.

The per-step OPF is `cloud_controller.dispatch.DispatchEngine` with horizon 1 (the Schutterwald study's
rolling horizon): built once per run, then only bounds and costs change per step.
Scenarios without storage need no optimisation: their HV/MV load is the sum of the
households' net loads (lossless, as the DC OPF sees it); the AC power flow in `validate`
adds the losses.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud_controller.dispatch import (
    MEND,
    SITE,
    THRESHOLD,
    DispatchEngine,
    Engine,
    EngineOptions,
    Problem,
    Schedule,
    SiteAssets,
    StepInputs,
    StorageState,
    build_problem,
)
from cloud_controller.grid.reduce import station_grid
from cloud_controller.grid.region import Region
from cloud_controller.study import policies
from cloud_controller.study.config import STRESS_LEVELS, StudyConfig
from cloud_controller.study.population import Population
from cloud_controller.study.profiles import Profiles

FloatArray = npt.NDArray[np.float64]

STRESS_FREE = ("status_quo", "no_control", "stor")
TOL_SAME_KW = 1e-6  # Stor's HV/MV power within a policy's limit: its step is the policy's
TOL_SAME_KWH = 1e-6  # storage states this close are the same state


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


def run_fixed(inp: StudyInputs, scenario: str) -> ScenarioRun:
    """Status quo or 2030 without control: no storage, no optimisation."""
    site = inp.status_quo_site_kw() if scenario == "status_quo" else inp.no_control_site_kw()
    return ScenarioRun(scenario, None, site.astype(np.float32), site.sum(axis=1))


@dataclass
class FixedSites:
    """The per-step OPF without the households that have nothing to dispatch.

    A household without battery and heat pump has one decision: curtail its PV. Curtailing
    costs (0.01/kWh) and earns nothing unless a limit on *feed-in* binds, so wherever no
    feed-in limit can bind its grid exchange is its net load, exactly. Such households then
    enter the LP as a fixed load on their bus, and the LP has 43 % fewer sites here.
    `exact[t]` holds that condition per step: no HV/MV feed-in limit, and on every limited
    branch the most any optimal dispatch could feed back within the rating. That most is the
    households' PV surplus; batteries add their full discharge only where exporting could
    pay, i.e. where the HV/MV load limit is set or a branch above another limited branch
    could be overloaded by load (a battery never discharges into the grid for nothing:
    discharging costs, exporting earns 0). Steps where it fails are solved with every
    household, as before.
    """

    problem: Problem
    flex: npt.NDArray[np.bool_]  # households in the small LP (battery or heat pump)
    bus_kw: FloatArray  # (T, n_bus) the others' net load per bus
    exact: npt.NDArray[np.bool_]  # (T,) the small LP is the full LP at this step

    @staticmethod
    def of(
        problem: Problem, base_kw: FloatArray, st_lim_kw: FloatArray, st_feed_kw: FloatArray
    ) -> FixedSites | None:
        """The LP for `problem` with the households that have nothing to dispatch fixed, or None."""
        p = problem
        g = p.grid
        w = p.weights
        flex = np.zeros(p.n_sites, dtype=bool)
        flex[p.bat_site] = True
        flex[p.hp_site] = True
        if flex.all() or w.c_curtail <= 0 or w.c_export < 0 or p.has_shed or p.n_units:
            return None
        n_t = base_kw.shape[0]
        bus_kw = np.zeros((n_t, g.n_bus))
        np.add.at(bus_kw.T, p.site_bus[~flex], base_kw[:, ~flex].T)

        def branch_sum(per_site: FloatArray) -> FloatArray:
            per_bus = np.zeros((n_t, g.n_bus))
            np.add.at(per_bus.T, p.site_bus, per_site.T)
            return g.branch_flows_kw(per_bus)  # (T, K): sum over each branch's subtree

        limited = np.isfinite(g.rating_kw) & p.enforce_branches
        rating = g.rating_kw[limited]
        surplus = np.maximum(-base_kw, 0.0)
        pv_back_ok = (branch_sum(surplus)[:, limited] <= rating).all(axis=1)
        with_bat = surplus.copy()
        with_bat[:, p.bat_site] += p.bat_p_max_kw[None, :]
        bat_back_ok = (branch_sum(with_bat)[:, limited] <= rating).all(axis=1)
        # branches above another limited branch, and the most load they could carry
        above = np.zeros(g.n_branch, dtype=bool)
        into = {int(c): k for k, c in enumerate(g.child)}
        for k in np.flatnonzero(limited):
            bus = int(g.parent[k])
            while bus in into:
                above[into[bus]] = True
                bus = int(g.parent[into[bus]])
        most_load = np.maximum(base_kw, 0.0)
        most_load[:, p.bat_site] += p.bat_p_max_kw[None, :]
        most_load[:, p.hp_site] += p.hp_p_max_kw[None, :]
        upper = above & limited
        load_ok = (branch_sum(most_load)[:, upper] <= g.rating_kw[upper]).all(axis=1)
        export_pays = np.isfinite(st_lim_kw) | ~load_ok
        exact = ~np.isfinite(st_feed_kw) & pv_back_ok & (bat_back_ok | ~export_pays)
        site_pv = None if p.site_pv is None else p.site_pv[flex]
        small = replace(
            p,
            site_bus=p.site_bus[flex],
            bat_site=np.searchsorted(np.flatnonzero(flex), p.bat_site),
            hp_site=np.searchsorted(np.flatnonzero(flex), p.hp_site),
            site_pv=site_pv,
        )
        return FixedSites(small, flex, bus_kw, exact)

    def inputs(self, x: StepInputs, t: int) -> StepInputs:
        """The step's inputs for the small LP (the others' load moved to their bus)."""
        return replace(
            x,
            base_kw=x.base_kw[:, self.flex],
            pv_kw=None if x.pv_kw is None else x.pv_kw[:, self.flex],
            bus_fixed_kw=self.bus_kw[t : t + 1],
        )


def _differs(a: FloatArray, b: object, n_t: int) -> npt.NDArray[np.bool_]:
    """Per step: does array `a` (T, ...) differ from `b` (same shape or broadcastable)?"""
    diff = np.asarray(a) != np.broadcast_to(np.asarray(b), np.shape(a))
    out: npt.NDArray[np.bool_] = diff.reshape(n_t, -1).any(axis=1)
    return out


def _curtailment(
    inp: StudyInputs, parts: set[str], onsets: policies.IntArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """EV, heat demand and heat-pump caps after the curtailment policies in `parts` (CurA, CurB)."""
    cfg = inp.cfg
    prof = inp.prof
    dt = prof.dt_h
    spd = inp.steps_per_day
    ev = prof.ev_kw
    heat = prof.heat_kw
    hp_cap = np.ones_like(heat)
    if "cura" in parts:
        ev = policies.cur_a(
            ev, onsets, spd, cap_kw=cfg.cura.ev_cap_kw, p_max_kw=cfg.sizes.ev_p_max_kw, dt_h=dt
        )
    if "curb" in parts:
        cb = policies.cur_b(
            heat,
            prof.cop,
            prof.hp_p_max_kw,
            onsets,
            share=cfg.curb.hp_share,
            duration_steps=round(cfg.curb.duration_h / dt),
            recovery_steps=round(cfg.curb.recovery_h / dt),
            dt_h=dt,
        )
        heat, hp_cap = cb.heat_kw, cb.hp_cap_frac
    return ev, heat, hp_cap


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
