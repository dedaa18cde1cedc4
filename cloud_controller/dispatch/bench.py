"""Dispatch benchmark: prints figures, never a pass/fail timing test.

Three questions, each answered on the machine it runs on:

1. Is the engine faster than pandapower's DC OPF on the same problem, and does it reach the
   same optimum? `steps` consecutive steps of the 319-household Schutterwald region, built as
   in `tests/unit/dispatch/test_vs_rundcopp.py` (controllable sgens and loads with pwl costs, a
   binding MV/LV station limit), plus bidirectional controllable loads standing in for
   batteries. Our engine is built once and re-solved warm; `pp.rundcopp` solves from scratch.
2. How does a single dispatch step scale with the number of controllable buildings (100,
   1,000, 10,000)? The Schutterwald radial grid is replicated K times under one root bus
   (`replicate_radial`) so the feeder grows with the site count, as a real rollout would.
   Each size runs on the full LV network (every LV line and voltage in the LP) and on the
   station-level network the live planner uses (`grid/reduce.py`), and each again by area
   (`DecomposedEngine`, one LP per MV/LV station, 2 threads).
3. Is a 96 x 15 min MPC over 1,000 buildings affordable once per planning cycle? As one LP
   and by area, on both networks.

Sizes 2 and 3 run in a spawned child process with a wall-clock limit (default 120 s) so one
size that takes far too long is recorded as "skipped (reason)" instead of hanging the bench;
whatever the child measured before the limit (e.g. the cold build) is still reported.
Run: `python -m cloud_controller.dispatch.bench`.
"""

from __future__ import annotations

import copy
import math
import multiprocessing as mp
import os
import platform
import queue
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

import numpy as np

from cloud_controller.dispatch.build import SiteAssets, build_problem
from cloud_controller.dispatch.decompose import DecomposedEngine
from cloud_controller.dispatch.engine import DispatchEngine
from cloud_controller.dispatch.problem import FloatArray, IntArray, Problem, StepInputs, StorageState
from cloud_controller.grid.radial import RadialGrid

# Targets set in the issue; printed beside the figures, never asserted.
TARGET_COLD_MS = {1000: 20.0, 10000: 250.0}
TARGET_WARM_MS = {1000: 2.0}
TARGET_MPC_S = {1000: 10.0}
TIME_LIMIT_S = 120.0

BAT_P_KW = 10.0
BAT_E_KWH = 16.0
HP_P_KW = 3.0  # electric
TS_E_KWH = 11.6  # thermal store beside each heat pump: without one the HP has no freedom
DT_H = 0.25
N_RUNDCOPP_BATTERIES = 40
BY_AREA_THREADS = 2  # the machine the targets are for has two cores
BINDING_SHARE = 0.85  # HV/MV threshold as a share of the free peak in the "binding" MPC case
MPC_SOLVERS = (
    ("mpc", "full LP"),
    ("mpc_by_area", "by area"),
    ("mpc_by_area_lazy", "by area, grid rows lazily"),
)


# -- results ----------------------------------------------------------------------------------


@dataclass
class RundcoppComparison:
    """Engine vs `pp.rundcopp` on the same consecutive steps of the Schutterwald region."""

    n_sites: int
    n_bus: int
    steps: int
    engine_build_ms: float  # DispatchEngine(...) once: numpy-built LP passed to HiGHS
    engine_first_ms: float  # first solve (cold basis)
    engine_warm_ms: float  # median of the solves after the first
    engine_warm_max_ms: float
    rundcopp_ms: float  # median over the steps after the first (pandapower's first call warms caches)
    rundcopp_first_ms: float
    ratio: float  # rundcopp_ms / engine_warm_ms
    max_abs_obj_diff: float
    max_rel_obj_diff: float
    station_limit_binding_steps: int  # steps where the MV/LV station limit binds in rundcopp
    rundcopp_failures: int  # steps where rundcopp did not converge (excluded from the diffs)


@dataclass
class SizeResult:
    """Single-step dispatch for `n_sites` buildings on a feeder replicated `copies` times."""

    n_sites: int
    copies: int
    n_bus: int
    n_bat: int = 0
    n_hp: int = 0
    n_cols: int = 0
    n_rows: int = 0
    build_ms: float | None = None  # DispatchEngine(...) (numpy-built LP + passModel + index)
    pyomo_build_ms: float | None = None  # the same LP through pyomo (write + read), for comparison
    first_solve_ms: float | None = None
    first_iterations: int | None = None  # simplex iterations of the first solve (crash basis)
    cold_ms: float | None = None  # build + first solve
    warm_ms: float | None = None  # median re-solve with changed loads/PV/heat/SOC, COP held
    warm_max_ms: float | None = None
    warm_cop_ms: float | None = None  # same, with the heat-pump COP changing every step too
    warm_cop_max_ms: float | None = None
    warm_steps: int = 0
    network: str = "full LV network"
    lazy_cold_ms: float | None = None  # the same steps through HiGHS, grid rows added lazily
    lazy_warm_ms: float | None = None
    lazy_warm_max_ms: float | None = None
    lazy_rows: int | None = None
    areas: int | None = None  # the same steps by area (DecomposedEngine, 2 threads)
    by_area_cold_ms: float | None = None
    by_area_warm_ms: float | None = None
    by_area_full_lp: int | None = None  # solves the full LP had to answer (certificate failed)
    by_area_warm_max_ms: float | None = None
    by_area_site_cold_ms: float | None = None  # by area, each area site by site where certified
    by_area_site_warm_ms: float | None = None
    by_area_site_warm_max_ms: float | None = None
    by_area_site_full_lp: int | None = None
    by_site_cold_ms: float | None = None  # the same steps with `by_site=True` (dispatch/sites.py)
    by_site_warm_ms: float | None = None
    by_site_warm_max_ms: float | None = None
    by_site_certified: int | None = None  # steps answered site by site (HiGHS answered the rest)
    by_site_grid_binds: int = 0  # of the others: a grid limit binds (the rest: a site's check failed)
    by_site_mended: int = 0  # of those: answered by re-solving the subtrees below overloaded branches
    by_site_steps: int = 0
    skipped: str | None = None


@dataclass
class MpcResult:
    """One multi-period MPC problem: `n_sites` buildings over `horizon` periods of 15 min."""

    n_sites: int
    horizon: int
    copies: int
    n_bus: int
    network: str = "full LV network"
    solver: str = "full LP"  # or "by area": DecomposedEngine, one LP per station, 2 threads
    binding: bool = False  # HV/MV threshold at BINDING_SHARE of the free peak
    binding_periods: int | None = None  # periods where the threshold binds in the plan
    areas: int | None = None
    by_area_certified: bool | None = None  # the cold plan came from the areas (no full-LP fallback)
    full_from_areas: bool = False  # the full LP answered, started from the areas' joined bases
    lazy_rows: int | None = None  # grid rows added lazily (all LPs) in the cold solve
    n_cols: int = 0
    n_rows: int = 0
    build_s: float | None = None
    solve_s: float | None = None
    cold_s: float | None = None  # build + first solve
    resolve_s: float | None = None  # re-solve with the profiles shifted by one period
    skipped: str | None = None


@dataclass
class DispatchBenchResult:
    """Everything `format_result` prints."""

    comparison: RundcoppComparison
    sizes: list[SizeResult]
    mpc: list[MpcResult]  # station-level network (as the planner and the study plan), full LV
    machine: dict[str, str] = field(default_factory=dict)
    total_s: float = 0.0


# -- grids ------------------------------------------------------------------------------------


def replicate_radial(grid: RadialGrid, copies: int) -> RadialGrid:
    """`copies` copies of `grid` hung from one shared root bus (the copies' roots are merged).

    Why merge roots instead of adding a link branch: each copy already starts with its own
    HV/MV transformer at the root, so merged roots give K parallel substations behind one
    slack, i.e. a larger region with the same per-feeder structure. Internal bus index 0 is
    the root; copy c's non-root buses follow in the original order. `bus_ids` are the
    internal indices (pandapower ids are not unique across copies).
    """
    if copies < 1:
        raise ValueError("copies must be >= 1")
    n = grid.n_bus
    new_index = replicated_bus_index(grid, copies)  # (copies, n)
    parent = np.concatenate([new_index[c, grid.parent] for c in range(copies)])
    child = np.concatenate([new_index[c, grid.child] for c in range(copies)])
    others = np.delete(np.arange(n), grid.root)
    n_new = 1 + copies * (n - 1)
    v_min = np.empty(n_new)
    v_max = np.empty(n_new)
    v_min[0], v_max[0] = grid.v_min_pu[grid.root], grid.v_max_pu[grid.root]
    v_min[1:] = np.tile(grid.v_min_pu[others], copies)
    v_max[1:] = np.tile(grid.v_max_pu[others], copies)
    return RadialGrid(
        bus_ids=np.arange(n_new, dtype=np.int64),
        root=0,
        parent=parent.astype(np.int64),
        child=child.astype(np.int64),
        rating_kw=np.tile(grid.rating_kw, copies),
        r_pu_per_kw=np.tile(grid.r_pu_per_kw, copies),
        branch_names=tuple(f"c{c}/{name}" for c in range(copies) for name in grid.branch_names),
        v_root_pu=grid.v_root_pu,
        v_min_pu=v_min,
        v_max_pu=v_max,
    )


def replicated_bus_index(grid: RadialGrid, copies: int) -> IntArray:
    """(copies, n_bus) map from (copy, original internal bus) to the replicated grid's bus."""
    n = grid.n_bus
    rank = np.arange(n) - (np.arange(n) > grid.root)  # position among the non-root buses
    out = 1 + np.arange(copies)[:, None] * (n - 1) + rank[None, :]
    out[:, grid.root] = 0
    return out.astype(np.int64)


def replicated_sites(grid: RadialGrid, site_bus: IntArray, n_sites: int) -> tuple[RadialGrid, IntArray]:
    """Enough copies of `grid` for `n_sites` households; sites are the first n of copy-major order."""
    copies = max(1, math.ceil(n_sites / len(site_bus)))
    big = replicate_radial(grid, copies)
    idx = replicated_bus_index(grid, copies)
    all_sites = np.concatenate([idx[c, site_bus] for c in range(copies)])
    return big, all_sites[:n_sites].astype(np.int64)


# -- synthetic buildings ----------------------------------------------------------------------


@dataclass
class _Fleet:
    """Buildings with fixed assets and the random per-building scales that shape their profiles."""

    assets: SiteAssets
    load_scale: FloatArray  # kW mean household load
    pv_kwp: FloatArray
    heat_scale: FloatArray  # kW thermal mean demand per heat pump


def _fleet(n: int, rng: np.random.Generator) -> _Fleet:
    """Half the buildings with a 10 kW / 16 kWh battery, a third with a heat pump (every third)."""
    has_bat = np.arange(n) % 2 == 0
    has_hp = np.arange(n) % 3 == 0
    assets = SiteAssets(
        bat_e_kwh=np.where(has_bat, BAT_E_KWH, 0.0),
        bat_p_kw=np.where(has_bat, BAT_P_KW, 0.0),
        hp_p_max_kw=np.where(has_hp, HP_P_KW, 0.0),
        ts_e_kwh=np.where(has_hp, TS_E_KWH, 0.0),
    )
    return _Fleet(
        assets=assets,
        load_scale=rng.uniform(0.3, 1.2, n),
        pv_kwp=rng.choice([0.0, 5.0, 8.0, 10.0], n),
        heat_scale=rng.uniform(0.5, 2.5, int(has_hp.sum())),
    )


def _day_shape(t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Household load, PV (per kWp) and heat shapes over quarter-hour index t (0 = midnight)."""
    h = (t % 96) / 4.0
    load = 0.6 + 0.5 * np.exp(-((h - 7.5) ** 2) / 2.0) + 0.9 * np.exp(-((h - 19.0) ** 2) / 4.0)
    pv = np.clip(np.sin((h - 6.0) / 14.0 * np.pi), 0.0, None) * 0.8
    heat = 1.0 + 0.4 * np.cos((h - 4.0) / 24.0 * 2 * np.pi)
    return load, pv, heat


def _inputs(fleet: _Fleet, t0: int, horizon: int, rng: np.random.Generator) -> StepInputs:
    """Profiles for periods t0..t0+horizon-1 with per-building noise (changes every call)."""
    t = np.arange(t0, t0 + horizon, dtype=float)
    load_s, pv_s, heat_s = _day_shape(t)
    n = len(fleet.load_scale)
    load = fleet.load_scale[None, :] * load_s[:, None] * rng.uniform(0.7, 1.3, (horizon, n))
    pv = fleet.pv_kwp[None, :] * pv_s[:, None] * rng.uniform(0.85, 1.0, (horizon, n))
    n_hp = len(fleet.heat_scale)
    heat = fleet.heat_scale[None, :] * heat_s[:, None] * rng.uniform(0.8, 1.2, (horizon, n_hp))
    cop = 3.0 + 0.5 * np.cos((t / 96.0 - 0.6) * 2 * np.pi)
    return StepInputs(base_kw=load - pv, pv_kw=pv, heat_kw=heat, cop=cop)


def _initial_state(fleet: _Fleet, rng: np.random.Generator) -> StorageState:
    n_bat = int((fleet.assets.bat_e_kwh > 0).sum())
    n_hp = int((fleet.assets.hp_p_max_kw > 0).sum())
    return StorageState(
        e_bat_kwh=rng.uniform(0.2, 0.8, n_bat) * BAT_E_KWH,
        e_ts_kwh=rng.uniform(0.1, 0.6, n_hp) * TS_E_KWH,
    )


PYOMO_BUILD_MAX_SITES = 1000  # the pyomo build is timed for comparison up to this size


def _ms(seconds: float) -> float:
    return seconds * 1e3


# -- size and MPC cases (run in a child process) ----------------------------------------------

Report = Callable[[str, dict[str, Any]], None]


def _run_size(grid: RadialGrid, site_bus: IntArray, steps: int, seed: int, report: Report) -> None:
    """Cold build + first solve, then `steps` warm re-solves rolling the state forward."""
    rng = np.random.default_rng(seed)
    n = len(site_bus)
    fleet = _fleet(n, rng)
    problem = build_problem(grid, site_bus, fleet.assets, horizon=1, dt_h=DT_H)
    state = _initial_state(fleet, rng)
    t_start = 48  # noon: PV surplus at some sites, import at others, batteries both ways
    first = _inputs(fleet, t_start, 1, rng)
    t0 = time.perf_counter()
    engine = DispatchEngine(problem, lazy_grid=False)  # the whole LP; lazily: _run_size_lazy
    t1 = time.perf_counter()
    sched = engine.solve(first, state)
    t2 = time.perf_counter()
    pyomo_ms = None
    if n <= PYOMO_BUILD_MAX_SITES:
        tp = time.perf_counter()
        DispatchEngine(problem, builder="pyomo", lazy_grid=False)
        pyomo_ms = _ms(time.perf_counter() - tp)
    report(
        "cold",
        {
            "pyomo_build_ms": pyomo_ms,
            "first_iterations": int(engine.h.getInfo().simplex_iteration_count),
            "n_bat": problem.n_bat,
            "n_hp": problem.n_hp,
            "n_cols": engine.n_cols,
            "n_rows": engine.n_rows,
            "build_ms": _ms(t1 - t0),
            "first_solve_ms": _ms(t2 - t1),
            "cold_ms": _ms(t2 - t0),
        },
    )
    # Two warm series: the one the target is about (loads, PV, heat, SOC change; COP held), and
    # the same with the COP changing as well, which the engine applies as matrix coefficients.
    k = 0
    held: list[StepInputs] = []  # the warm series the target is about, replayed by area below
    for key, hold_cop in (("warm", True), ("warm_cop", False)):
        times: list[float] = []
        for _ in range(steps):
            k += 1
            x = _inputs(fleet, t_start + k, 1, rng)
            if hold_cop:
                x.cop = first.cop
                held.append(x)
            st = sched.next_state()
            ta = time.perf_counter()
            sched = engine.solve(x, st)
            times.append(time.perf_counter() - ta)
        if times:
            figs: dict[str, Any] = {
                f"{key}_ms": _ms(statistics.median(times)),
                f"{key}_max_ms": _ms(max(times)),
            }
            report(key, figs | {"warm_steps": len(times)})
    _run_size_lazy(problem, first, state, held, report)
    _run_size_by_area(problem, first, state, held, report)
    _run_size_by_site(problem, first, state, held, report)


def _run_size_lazy(
    problem: Problem, first: StepInputs, state: StorageState, warm: list[StepInputs], report: Report
) -> None:
    """The same first step and warm series through HiGHS with the grid rows added lazily."""
    t0 = time.perf_counter()
    engine = DispatchEngine(problem, lazy_grid=True)
    cold, times = _cold_and_warm(engine, first, state, warm, t0)
    assert engine.lazy is not None
    report(
        "lazy",
        {
            "lazy_cold_ms": _ms(cold),
            "lazy_warm_ms": _ms(statistics.median(times)) if times else None,
            "lazy_warm_max_ms": _ms(max(times)) if times else None,
            "lazy_rows": len(engine.lazy.rows.row),
        },
    )


def _cold_and_warm(
    engine: DispatchEngine | DecomposedEngine,
    first: StepInputs,
    state: StorageState,
    warm: list[StepInputs],
    t0: float,
) -> tuple[float, list[float]]:
    """Seconds from `t0` (before the engine was built) to the first answer, and of each
    warm re-solve of the series, rolling the storage state forward."""
    sched = engine.solve(first, state)
    cold = time.perf_counter() - t0
    times: list[float] = []
    for x in warm:
        st = sched.next_state()
        ta = time.perf_counter()
        sched = engine.solve(x, st)
        times.append(time.perf_counter() - ta)
    return cold, times


def _run_size_by_site(
    problem: Problem, first: StepInputs, state: StorageState, warm: list[StepInputs], report: Report
) -> None:
    """The same first step and warm series with `by_site=True`: site by site where that is
    certified optimal, HiGHS where a grid limit binds. Cold includes building the HiGHS LP."""
    t0 = time.perf_counter()
    engine = DispatchEngine(problem, by_site=True)  # HiGHS's LP lazily on an LV network (default)
    cold, times = _cold_and_warm(engine, first, state, warm, t0)
    report(
        "by_site",
        {
            "by_site_cold_ms": _ms(cold),
            "by_site_warm_ms": _ms(statistics.median(times)) if times else None,
            "by_site_warm_max_ms": _ms(max(times)) if times else None,
            "by_site_certified": 0 if engine.sites is None else engine.sites.certified,
            "by_site_grid_binds": 0 if engine.sites is None else engine.sites.declined_by_grid,
            "by_site_mended": engine.mended,
            "by_site_steps": 1 + len(warm),
        },
    )


def _run_size_by_area(
    problem: Problem, first: StepInputs, state: StorageState, warm: list[StepInputs], report: Report
) -> None:
    """The same first step and warm series by area (one LP per station, 2 threads), then the
    same with every area answered site by site where that is certified (`by_site=True`)."""
    for by_site in (False, True):
        key = "by_area_site" if by_site else "by_area"
        t0 = time.perf_counter()
        with DecomposedEngine(problem, threads=BY_AREA_THREADS, by_site=by_site, lazy_grid=False) as engine:
            cold, times = _cold_and_warm(engine, first, state, warm, t0)
            report(
                key,
                {
                    "areas": engine.n_areas,
                    f"{key}_cold_ms": _ms(cold),
                    f"{key}_warm_ms": _ms(statistics.median(times)) if times else None,
                    f"{key}_warm_max_ms": _ms(max(times)) if times else None,
                    f"{key}_full_lp": engine.stats.full_lp + engine.stats.full_lp_direct,
                },
            )


def _run_mpc(
    grid: RadialGrid,
    site_bus: IntArray,
    horizon: int,
    seed: int,
    report: Report,
    *,
    by_area: bool = False,
    binding: bool = False,
    lazy: bool = False,
) -> None:
    """Build + solve one `horizon`-period MPC, then re-solve with the window moved one period.

    `binding`: the HV/MV threshold is set to BINDING_SHARE of the peak the fleet draws
    without it (found by an untimed solve first), so the threshold binds in the evening.
    `lazy` (with `by_area`): every LP without its grid rows, added where broken (lazy.py);
    where the threshold binds, the whole LP starts from the areas' joined bases."""
    rng = np.random.default_rng(seed)
    n = len(site_bus)
    fleet = _fleet(n, rng)
    problem = build_problem(grid, site_bus, fleet.assets, horizon=horizon, dt_h=DT_H)
    state = _initial_state(fleet, rng)
    t_start = 64  # 16:00: the evening peak and the next day's PV both fall in a 24 h window
    x0 = _inputs(fleet, t_start, horizon, rng)
    x1 = _inputs(fleet, t_start + 1, horizon, rng)
    if binding:
        with DecomposedEngine(problem, threads=BY_AREA_THREADS, presolve_first=True) as free:
            peak = float(free.solve(x0, state).p_root_kw.max())
        x0.station_limit_kw = np.full(horizon, peak - (1.0 - BINDING_SHARE) * abs(peak))
        x1.station_limit_kw = x0.station_limit_kw
    t0 = time.perf_counter()
    # as the live planner: presolve on the cold solve (measured, 1,000 buildings x 96 on the
    # station-level network: 10.5 s; without presolve, from the crash basis: 14.1 s)
    engine: DispatchEngine | DecomposedEngine
    if by_area:
        engine = DecomposedEngine(problem, threads=BY_AREA_THREADS, presolve_first=True, lazy_grid=lazy)
        size = {"areas": engine.n_areas, "n_cols": 0, "n_rows": 0}
    else:
        engine = DispatchEngine(problem, presolve_first=True, lazy_grid=False)
        size = {"n_cols": engine.n_cols, "n_rows": engine.n_rows}
    t1 = time.perf_counter()
    # reported before solving so a solve that runs past the limit still leaves the build time
    report("build", size | {"build_s": t1 - t0})
    sched = engine.solve(x0, state)
    t2 = time.perf_counter()
    cold: dict[str, Any] = {"build_s": t1 - t0, "solve_s": t2 - t1, "cold_s": t2 - t0}
    if isinstance(engine, DecomposedEngine):
        cold["by_area_certified"] = engine.last_by_area
        cold["full_from_areas"] = engine.stats.full_from_areas > 0
        if lazy:
            cold["lazy_rows"] = sum(len(s.engine.lazy.rows.row) for s in engine._subs if s.engine.lazy)
            full = engine._full
            if full is not None and full.lazy is not None:
                cold["lazy_rows"] += len(full.lazy.rows.row)
    if binding:
        lim = np.asarray(x0.station_limit_kw)
        cold["binding_periods"] = int((sched.p_root_kw >= lim - 1e-6).sum())
    report("cold", cold)
    ta = time.perf_counter()
    # the window moved one period: the unshifted basis is the better start (see shift_basis)
    engine.solve(x1, sched.next_state())
    report("warm", {"resolve_s": time.perf_counter() - ta})
    if isinstance(engine, DecomposedEngine):
        engine.close()


def _run_mpc_by_area(grid: RadialGrid, site_bus: IntArray, horizon: int, seed: int, report: Report) -> None:
    _run_mpc(grid, site_bus, horizon, seed, report, by_area=True)


def _run_mpc_binding(grid: RadialGrid, site_bus: IntArray, horizon: int, seed: int, report: Report) -> None:
    _run_mpc(grid, site_bus, horizon, seed, report, binding=True)


def _run_mpc_by_area_binding(
    grid: RadialGrid, site_bus: IntArray, horizon: int, seed: int, report: Report
) -> None:
    _run_mpc(grid, site_bus, horizon, seed, report, by_area=True, binding=True)


def _run_mpc_by_area_lazy(
    grid: RadialGrid, site_bus: IntArray, horizon: int, seed: int, report: Report
) -> None:
    _run_mpc(grid, site_bus, horizon, seed, report, by_area=True, lazy=True)


def _run_mpc_by_area_lazy_binding(
    grid: RadialGrid, site_bus: IntArray, horizon: int, seed: int, report: Report
) -> None:
    _run_mpc(grid, site_bus, horizon, seed, report, by_area=True, binding=True, lazy=True)


_CASES: dict[str, Callable[[RadialGrid, IntArray, int, int, Report], None]] = {
    "size": _run_size,
    "mpc": _run_mpc,
    "mpc_by_area": _run_mpc_by_area,
    "mpc_by_area_lazy": _run_mpc_by_area_lazy,
    "mpc_binding": _run_mpc_binding,
    "mpc_by_area_binding": _run_mpc_by_area_binding,
    "mpc_by_area_lazy_binding": _run_mpc_by_area_lazy_binding,
}


def _child(kind: str, grid: RadialGrid, site_bus: IntArray, *, n: int, seed: int, out: Any) -> None:
    """Entry point of the spawned process: run one case, stream partial results to the parent."""
    try:
        _CASES[kind](grid, site_bus, n, seed, lambda tag, data: out.put((tag, data)))
        out.put(("done", {}))
    except BaseException as exc:  # reported to the parent, which records the size as skipped
        out.put(("error", {"error": f"{type(exc).__name__}: {exc}"}))


def _run_limited(
    kind: str, grid: RadialGrid, site_bus: IntArray, *, n: int, seed: int, time_limit_s: float | None
) -> tuple[dict[str, Any], str | None]:
    """Run a case in a spawned child (or in-process if no limit); return its figures and skip reason.

    Why spawn, not fork: HiGHS keeps a worker-thread pool in the parent after its first solve,
    and a forked child inherits its state without the threads.
    """
    figures: dict[str, Any] = {}
    if time_limit_s is None:

        def keep(_tag: str, data: dict[str, Any]) -> None:
            figures.update(data)

        _CASES[kind](grid, site_bus, n, seed, keep)
        return figures, None
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(
        target=_child, args=(kind, grid, site_bus), kwargs={"n": n, "seed": seed, "out": out}, daemon=True
    )
    deadline = time.monotonic() + time_limit_s
    proc.start()
    reason: str | None = None
    try:
        while True:
            try:
                tag, data = out.get(timeout=0.5)
            except queue.Empty:
                if time.monotonic() > deadline:
                    reason = f"over the {time_limit_s:.0f} s limit"
                    break
                if not proc.is_alive() and out.empty():
                    reason = f"child exited with code {proc.exitcode}"
                    break
                continue
            if tag == "done":
                break
            if tag == "error":
                reason = str(data["error"])
                break
            figures.update(data)
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=10)
        out.close()
    return figures, reason


# -- engine vs rundcopp -----------------------------------------------------------------------


def _rundcopp_net(region: Any, rng: np.random.Generator) -> tuple[Any, list[int], int]:
    """The case of test_vs_rundcopp.py plus battery-like loads; returns (net, fixed-load ids, trafo).

    Batteries are controllable loads with a symmetric range: in a single-period DC OPF that is
    all a battery is (its SOC only bounds the range), and pandapower's storage element is
    not mirrored by `problem_from_pandapower`.
    """
    import pandapower as pp

    net = copy.deepcopy(region.net)
    fixed_ids = [int(i) for i in net.load.index]
    under_77 = [int(b) for b, st in zip(net.load.bus, region.site_station, strict=True) if st == "T_idx_77"]
    net.load["p_mw"] = rng.uniform(0.0005, 0.004, len(net.load))
    net.load["controllable"] = False
    net.line["max_loading_percent"] = 100.0
    net.trafo["max_loading_percent"] = 100.0
    st = int(net.trafo.index[net.trafo.name == "T_idx_77"][0])
    buses = net.load.bus.to_numpy()
    for i, bus in enumerate(rng.choice(buses, 25, replace=False)):
        s = pp.create_sgen(net, int(bus), p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=0.008)
        pp.create_pwl_cost(net, s, "sgen", [[0, 1, -1.0 - 0.013 * i]])
    flex = list(rng.choice(buses, 10, replace=False)) + list(rng.choice(under_77, 6, replace=False))
    for i, bus in enumerate(flex):
        ld = pp.create_load(net, int(bus), p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=0.011)
        pp.create_pwl_cost(net, ld, "load", [[0, 1, -1.0 - 0.017 * i]])
    # 40 households get a 10 kW battery; stored energy is worth 0.6..0.8 against an import
    # price of 0.7, so about half charge and half discharge at full power unless a limit binds
    for i, bus in enumerate(rng.choice(buses, N_RUNDCOPP_BATTERIES, replace=False)):
        b = pp.create_load(
            net, int(bus), p_mw=0.0, controllable=True, min_p_mw=-BAT_P_KW / 1e3, max_p_mw=BAT_P_KW / 1e3
        )
        pp.create_pwl_cost(net, b, "load", [[-1, 1, -0.6 - 0.2 * i / (N_RUNDCOPP_BATTERIES - 1)]])
    eg = int(net.ext_grid.index[0])
    pp.create_pwl_cost(net, eg, "ext_grid", [[-100, 100, 0.7]])
    pp.rundcopp(net)
    load_77 = -float(net.res_trafo.p_lv_mw.at[st])
    limit_mw = load_77 - 0.5 * 6 * 0.011
    net.trafo.loc[st, "max_loading_percent"] = 100 * limit_mw / float(net.trafo.sn_mva.at[st])
    return net, fixed_ids, st


def compare_with_rundcopp(
    steps: int, seed: int = 0, progress: Callable[[str], None] | None = None
) -> RundcoppComparison:
    """Engine (built once, warm re-solves) vs `pp.rundcopp` on `steps` consecutive steps.

    Household loads follow a shared daily shape with per-household noise, so consecutive
    steps differ the way a rolling horizon sees them. The engine gets each step's fixed loads
    as `bus_fixed_kw`; pandapower gets them in `net.load.p_mw`.
    """
    import pandapower as pp

    from cloud_controller.dispatch.ppcase import KW_PER_MW, problem_from_pandapower
    from cloud_controller.grid import build_schutterwald_region

    rng = np.random.default_rng(seed)
    region = build_schutterwald_region()
    net, fixed_ids, st = _rundcopp_net(region, rng)
    base_mw = net.load.loc[fixed_ids, "p_mw"].to_numpy(dtype=float).copy()
    problem, inputs = problem_from_pandapower(net)
    bus_of = np.asarray([problem.grid.index_of(int(b)) for b in net.load.loc[fixed_ids, "bus"]], np.int64)

    def bus_kw(p_mw: FloatArray) -> FloatArray:
        return np.bincount(bus_of, p_mw * KW_PER_MW, problem.grid.n_bus).astype(float)

    if inputs.bus_fixed_kw is None or not np.allclose(inputs.bus_fixed_kw[0], bus_kw(base_mw)):
        raise AssertionError("fixed loads are not the only non-unit injections")  # the mirror changed
    no_storage = StorageState(np.zeros(0), np.zeros(0))
    tb = time.perf_counter()
    engine = DispatchEngine(problem, lazy_grid=False)  # the whole LP, as rundcopp solves it
    build_ms = _ms(time.perf_counter() - tb)
    eng_t: list[float] = []
    pp_t: list[float] = []
    diffs: list[float] = []
    rels: list[float] = []
    binding = failures = 0
    limit = float(net.trafo.max_loading_percent.at[st])
    for k in range(steps):
        shape = 1.0 + 0.15 * math.sin(2 * math.pi * k / 96.0)
        p_mw = base_mw * shape * rng.uniform(0.9, 1.1, len(base_mw))
        net.load.loc[fixed_ids, "p_mw"] = p_mw
        fixed_kw = bus_kw(p_mw)[None, :]
        ta = time.perf_counter()
        res = engine.solve(StepInputs(base_kw=np.zeros((1, 0)), bus_fixed_kw=fixed_kw), no_storage)
        eng_t.append(time.perf_counter() - ta)
        ta = time.perf_counter()
        try:
            pp.rundcopp(net)
            ok = bool(net.OPF_converged)
        except Exception:  # pandapower raises OPFNotConverged; its hard limits may be infeasible
            ok = False
        pp_t.append(time.perf_counter() - ta)
        if not ok:
            failures += 1
            continue
        theirs = float(net.res_cost)
        diffs.append(abs(res.objective - theirs))
        rels.append(abs(res.objective - theirs) / max(1e-9, abs(theirs)))
        if float(net.res_trafo.loading_percent.at[st]) >= limit * (1 - 1e-4):
            binding += 1
        if progress is not None:
            progress(f"engine vs rundcopp: step {k + 1}/{steps}")
    warm = eng_t[1:] or eng_t
    pp_rest = pp_t[1:] or pp_t
    warm_ms = _ms(statistics.median(warm))
    pp_ms = _ms(statistics.median(pp_rest))
    return RundcoppComparison(
        n_sites=region.n_sites,
        n_bus=problem.grid.n_bus,
        steps=steps,
        engine_build_ms=build_ms,
        engine_first_ms=_ms(eng_t[0]),
        engine_warm_ms=warm_ms,
        engine_warm_max_ms=_ms(max(warm)),
        rundcopp_ms=pp_ms,
        rundcopp_first_ms=_ms(pp_t[0]),
        ratio=pp_ms / warm_ms if warm_ms > 0 else math.inf,
        max_abs_obj_diff=max(diffs) if diffs else math.nan,
        max_rel_obj_diff=max(rels) if rels else math.nan,
        station_limit_binding_steps=binding,
        rundcopp_failures=failures,
    )


# -- the bench --------------------------------------------------------------------------------


def _machine() -> dict[str, str]:
    import highspy
    import pyomo.version

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    return {
        "cpu": f"{cpu} x{os.cpu_count()}",
        "python": platform.python_version(),
        "highs": f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}",
        "pyomo": str(pyomo.version.version),
    }


def run_dispatch_bench(
    *,
    steps: int = 20,
    sizes: tuple[int, ...] = (100, 1000, 10000),
    mpc_sites: int = 1000,
    mpc_steps: int = 96,
    progress: bool = True,
    time_limit_s: float | None = TIME_LIMIT_S,
    seed: int = 0,
) -> DispatchBenchResult:
    """Run the three parts and return the figures; `time_limit_s=None` runs sizes in-process.

    `steps` is both the number of rundcopp comparison steps and of warm re-solves per size.
    """
    from cloud_controller.grid import build_schutterwald_region

    t_all = time.perf_counter()

    def say(msg: str) -> None:
        if progress:
            print(f"[dispatch bench {time.perf_counter() - t_all:7.1f} s] {msg}", file=sys.stderr, flush=True)

    say("engine vs rundcopp on the Schutterwald region")
    comparison = compare_with_rundcopp(steps, seed=seed, progress=say)
    region = build_schutterwald_region()
    from cloud_controller.grid.reduce import station_grid

    stations, station_bus = station_grid(region)
    networks = (
        ("full LV network", region.grid, region.site_bus),
        ("station-level network", stations, station_bus),
    )
    results: list[SizeResult] = []
    for network, base_grid, base_bus in networks:
        for n in sizes:
            grid, site_bus = replicated_sites(base_grid, base_bus, n)
            copies = (grid.n_bus - 1) // (base_grid.n_bus - 1)
            say(f"single step, {n} buildings ({copies} feeder copies, {grid.n_bus} buses), {network}")
            figs, reason = _run_limited("size", grid, site_bus, n=steps, seed=seed, time_limit_s=time_limit_s)
            res = SizeResult(n_sites=n, copies=copies, n_bus=grid.n_bus, network=network)
            for key, val in figs.items():
                setattr(res, key, val)
            res.skipped = reason
            results.append(res)

    mpcs: list[MpcResult] = []
    cases = [(net, kind, solver, False) for net in reversed(networks) for kind, solver in MPC_SOLVERS]
    # the congested case, where only the full LP is exact: the station-level network
    cases += [(networks[1], f"{kind}_binding", solver, True) for kind, solver in MPC_SOLVERS]
    # and on the full LV network, where only the lazy rows make the whole LP affordable
    cases += [(networks[0], f"{kind}_binding", solver, True) for kind, solver in MPC_SOLVERS[2:]]
    for (network, base_grid, base_bus), kind, solver, binding in cases:
        grid, site_bus = replicated_sites(base_grid, base_bus, mpc_sites)
        copies = (grid.n_bus - 1) // (base_grid.n_bus - 1)
        what = ", HV/MV threshold binding" if binding else ""
        say(f"MPC, {mpc_sites} buildings x {mpc_steps} periods, {network}{what}, {solver}")
        figs, reason = _run_limited(kind, grid, site_bus, n=mpc_steps, seed=seed, time_limit_s=time_limit_s)
        mpc = MpcResult(
            n_sites=mpc_sites,
            horizon=mpc_steps,
            copies=copies,
            n_bus=grid.n_bus,
            network=network,
            solver=solver,
            binding=binding,
        )
        for key, val in figs.items():
            setattr(mpc, key, val)
        mpc.skipped = reason
        mpcs.append(mpc)
    say("done")
    return DispatchBenchResult(
        comparison=comparison,
        sizes=results,
        mpc=mpcs,
        machine=_machine(),
        total_s=time.perf_counter() - t_all,
    )


# -- printing ---------------------------------------------------------------------------------


def _fmt(v: float | None, unit: str, digits: int = 1) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:,.{digits}f} {unit}"


def _verdict(measured: float | None, target: float | None) -> str:
    if target is None or measured is None:
        return ""
    return "meets" if measured <= target else f"misses ({measured / target:,.1f}x)"


def _targets(cold_ms: float | None, warm_ms: float | None) -> str:
    """'≤ a / ≤ b ms' for a cold / warm pair of targets (either may be absent)."""
    return " / ".join(f"≤ {t:g} ms" if t else "-" for t in (cold_ms, warm_ms)) if cold_ms or warm_ms else ""


def _both_verdicts(
    cold: float | None, cold_target: float | None, warm: float | None, warm_target: float | None
) -> str:
    """The verdicts of a cold / warm pair, joined ('meets / misses (1.2x)')."""
    if cold_target is None and warm_target is None:
        return ""
    return " / ".join(_verdict(v, t) or "-" for v, t in ((cold, cold_target), (warm, warm_target)))


def _mpc_rows(m: MpcResult) -> list[tuple[str, str, str, str, str]]:
    """Table rows of one MPC case."""
    rows: list[tuple[str, str, str, str, str]] = []
    solver = m.solver
    if m.areas is not None:
        lazily = ", grid rows lazily" if m.lazy_rows is not None else ""
        solver = f"by area ({m.areas} LPs, {BY_AREA_THREADS} threads{lazily})"
    what = f", HV/MV threshold at {BINDING_SHARE:.0%} of the free peak" if m.binding else ""
    case = f"MPC {m.n_sites:,} buildings x {m.horizon} x 15 min, {m.network} ({m.copies}x){what}, {solver}"
    tm = TARGET_MPC_S.get(m.n_sites)
    if m.skipped:
        rows.append((case, "skipped", f"skipped ({m.skipped})", f"≤ {tm:g} s" if tm else "", ""))
    if m.build_s is not None and m.areas is None:
        rows.append((case, "LP size", f"{m.n_cols:,} cols x {m.n_rows:,} rows", "", ""))
    if m.binding_periods is not None:
        rows.append(
            (case, "periods where the threshold binds", f"{m.binding_periods} of {m.horizon}", "", "")
        )
    if m.by_area_certified is not None:
        answer = "the areas (certified optimal for the full LP)" if m.by_area_certified else "the full LP"
        if m.full_from_areas:
            answer += ", started from the areas' bases"
        rows.append((case, "cold plan answered by", answer, "", ""))
    if m.lazy_rows is not None:
        rows.append((case, "grid rows added lazily", f"{m.lazy_rows:,}", "", ""))
    if m.cold_s is not None:
        rows.append(
            (
                case,
                "cold: build + solve",
                _fmt(m.cold_s, "s", 2),
                f"≤ {tm:g} s" if tm else "",
                _verdict(m.cold_s, tm),
            )
        )
    if m.build_s is not None:
        rows.append((case, "  build (numpy LP -> HiGHS)", _fmt(m.build_s, "s", 2), "", ""))
    if m.solve_s is not None:
        rows.append((case, "  solve", _fmt(m.solve_s, "s", 2), "", ""))
    if m.resolve_s is not None:
        rows.append((case, "warm re-solve, window moved 1 period", _fmt(m.resolve_s, "s", 2), "", ""))
    return rows


def format_result(result: DispatchBenchResult) -> str:
    """Plain-text table (rendered by rich without colour) of every figure beside its target."""
    from rich.console import Console
    from rich.table import Table

    c = result.comparison
    table = Table(title="Dispatch benchmark", show_lines=False)
    for col in ("case", "figure", "measured", "target", "verdict"):
        table.add_column(col)
    case = f"Schutterwald {c.n_sites} households, {c.steps} steps"
    rows: list[tuple[str, str, str, str, str]] = [
        (case, "engine build (once)", _fmt(c.engine_build_ms, "ms"), "", ""),
        (case, "engine first solve", _fmt(c.engine_first_ms, "ms", 2), "", ""),
        (
            case,
            "engine warm solve, median (max)",
            f"{_fmt(c.engine_warm_ms, 'ms', 2)} ({_fmt(c.engine_warm_max_ms, 'ms', 2)})",
            "",
            "",
        ),
        (case, "pp.rundcopp per step, median", _fmt(c.rundcopp_ms, "ms"), "", ""),
        (case, "pp.rundcopp first call", _fmt(c.rundcopp_first_ms, "ms"), "", ""),
        (case, "rundcopp / engine warm", f"{c.ratio:,.1f}x", "", ""),
        (
            case,
            "max objective difference",
            f"{c.max_abs_obj_diff:.2e} abs, {c.max_rel_obj_diff:.2e} rel",
            "≈ 0",
            "agree" if c.max_rel_obj_diff <= 1e-4 else "DIFFER",
        ),
        (
            case,
            "station limit binding / rundcopp failed",
            f"{c.station_limit_binding_steps} / {c.rundcopp_failures} of {c.steps} steps",
            "",
            "",
        ),
    ]
    for s in result.sizes:
        case = f"{s.n_sites:,} buildings, 1 step, {s.network} ({s.copies}x, {s.n_bus:,} buses)"
        size_line = f"{s.n_cols:,} cols x {s.n_rows:,} rows, {s.n_bat} bat, {s.n_hp} HP"
        if s.skipped:
            rows.append((case, "skipped", f"skipped ({s.skipped})", "", ""))
        tc = TARGET_COLD_MS.get(s.n_sites)
        tw = TARGET_WARM_MS.get(s.n_sites)
        if s.cold_ms is not None:
            rows.append((case, "LP size", size_line, "", ""))
            rows.append(
                (
                    case,
                    "cold: build + first solve",
                    _fmt(s.cold_ms, "ms"),
                    f"≤ {tc:g} ms" if tc else "",
                    _verdict(s.cold_ms, tc),
                )
            )
            rows.append((case, "  build (numpy LP -> HiGHS)", _fmt(s.build_ms, "ms"), "", ""))
            if s.pyomo_build_ms is not None:
                rows.append((case, "  same LP built through pyomo", _fmt(s.pyomo_build_ms, "ms"), "", ""))
            first = _fmt(s.first_solve_ms, "ms", 2)
            if s.first_iterations is not None:
                first += f" ({s.first_iterations:,} iterations from the crash basis)"
            rows.append((case, "  first solve alone", first, "", ""))
        if s.warm_ms is not None:
            rows.append(
                (
                    case,
                    f"warm re-solve, median of {s.warm_steps} (max)",
                    f"{_fmt(s.warm_ms, 'ms', 2)} ({_fmt(s.warm_max_ms, 'ms', 2)})",
                    f"≤ {tw:g} ms" if tw else "",
                    _verdict(s.warm_ms, tw),
                )
            )
        if s.warm_cop_ms is not None:
            rows.append(
                (
                    case,
                    "  same, COP changing every step",
                    f"{_fmt(s.warm_cop_ms, 'ms', 2)} ({_fmt(s.warm_cop_max_ms, 'ms', 2)})",
                    "",
                    "",
                )
            )
        if s.lazy_cold_ms is not None:
            rows.append(
                (
                    case,
                    f"HiGHS, grid rows lazily ({s.lazy_rows} added): cold / warm median (max)",
                    f"{_fmt(s.lazy_cold_ms, 'ms')} / {_fmt(s.lazy_warm_ms, 'ms', 2)}"
                    f" ({_fmt(s.lazy_warm_max_ms, 'ms', 2)})",
                    _targets(tc, tw),
                    _both_verdicts(s.lazy_cold_ms, tc, s.lazy_warm_ms, tw),
                )
            )
        if s.areas is not None:
            fell_back = f", full LP answered {s.by_area_full_lp}x" if s.by_area_full_lp else ""
            rows.append(
                (
                    case,
                    f"by area ({s.areas} LPs, {BY_AREA_THREADS} threads): cold / warm",
                    f"{_fmt(s.by_area_cold_ms, 'ms')} / {_fmt(s.by_area_warm_ms, 'ms', 2)}{fell_back}",
                    "",
                    "",
                )
            )
        if s.by_area_site_cold_ms is not None:
            fell_back = f", full LP answered {s.by_area_site_full_lp}x" if s.by_area_site_full_lp else ""
            rows.append(
                (
                    case,
                    "by area, each area site by site where certified: cold / warm median (max)",
                    f"{_fmt(s.by_area_site_cold_ms, 'ms')} / {_fmt(s.by_area_site_warm_ms, 'ms', 2)}"
                    f" ({_fmt(s.by_area_site_warm_max_ms, 'ms', 2)}){fell_back}",
                    "",
                    "",
                )
            )
        if s.by_site_certified is not None:
            rows.append(
                (
                    case,
                    f"by site ({s.by_site_certified} of {s.by_site_steps} steps certified site by site;"
                    f" {s.by_site_grid_binds} with a grid limit binding, {s.by_site_mended} of them mended"
                    " by subtree LPs, HiGHS the rest): cold / warm median (max)",
                    f"{_fmt(s.by_site_cold_ms, 'ms')} / {_fmt(s.by_site_warm_ms, 'ms', 2)}"
                    f" ({_fmt(s.by_site_warm_max_ms, 'ms', 2)})",
                    _targets(tc, tw),
                    _both_verdicts(s.by_site_cold_ms, tc, s.by_site_warm_ms, tw),
                )
            )
    for m in result.mpc:
        rows.extend(_mpc_rows(m))
    last = ""
    for row in rows:
        table.add_row(row[0] if row[0] != last else "", *row[1:])
        last = row[0]
    buf = StringIO()
    console = Console(file=buf, width=160, color_system=None, force_terminal=False)
    console.print(table)
    mach = ", ".join(f"{k} {v}" for k, v in result.machine.items())
    console.print(f"machine: {mach}; total bench time {result.total_s:,.1f} s")
    return buf.getvalue()


def main() -> None:
    """`python -m cloud_controller.dispatch.bench`: run with the defaults and print the table."""
    print(format_result(run_dispatch_bench()))


if __name__ == "__main__":
    main()
