"""The multi-period MPC: one LP and by area, free and with the HV/MV threshold binding."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from cloud_controller.dispatch import DecomposedEngine, DispatchEngine, EngineOptions, IntArray, build_problem
from cloud_controller.grid import RadialGrid
from gridflex.bench.dispatch.fleet import DT_H, fleet_inputs, initial_state, make_fleet
from gridflex.bench.dispatch.step import BY_AREA_THREADS, Report

BINDING_SHARE = 0.85  # HV/MV threshold as a share of the free peak in the "binding" MPC case
MPC_SOLVERS = (
    ("mpc", "full LP"),
    ("mpc_by_area", "by area"),
    ("mpc_by_area_lazy", "by area, grid rows lazily"),
)


def run_mpc(
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
    where the threshold binds, the whole LP starts from the areas' joined bases.
    """
    rng = np.random.default_rng(seed)
    n = len(site_bus)
    fleet = make_fleet(n, rng)
    problem = build_problem(grid, site_bus, fleet.assets, horizon=horizon, dt_h=DT_H)
    state = initial_state(fleet, rng)
    t_start = 64  # 16:00: the evening peak and the next day's PV both fall in a 24 h window
    x0 = fleet_inputs(fleet, t_start, horizon, rng)
    x1 = fleet_inputs(fleet, t_start + 1, horizon, rng)
    if binding:
        with DecomposedEngine(problem, EngineOptions(presolve_first=True), threads=BY_AREA_THREADS) as free:
            peak = float(free.solve(x0, state).p_root_kw.max())
        x0.station_limit_kw = np.full(horizon, peak - (1.0 - BINDING_SHARE) * abs(peak))
        x1.station_limit_kw = x0.station_limit_kw
    t0 = time.perf_counter()
    # as the live planner: presolve on the cold solve (measured, 1,000 buildings x 96 on the
    # station-level network: 10.5 s; without presolve, from the crash basis: 14.1 s)
    engine: DispatchEngine | DecomposedEngine
    if by_area:
        engine = DecomposedEngine(
            problem, EngineOptions(presolve_first=True, lazy_grid=lazy), threads=BY_AREA_THREADS
        )
        size = {"areas": engine.n_areas, "n_cols": 0, "n_rows": 0}
    else:
        engine = DispatchEngine(problem, EngineOptions(presolve_first=True, lazy_grid=False))
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
            cold["lazy_rows"] = engine.lazy_rows()  # the areas' and the whole LP's (once built)
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


def run_mpc_by_area(grid: RadialGrid, site_bus: IntArray, horizon: int, seed: int, report: Report) -> None:
    """`run_mpc` by area (one LP per station), threshold free."""
    run_mpc(grid, site_bus, horizon, seed, report, by_area=True)


def run_mpc_binding(grid: RadialGrid, site_bus: IntArray, horizon: int, seed: int, report: Report) -> None:
    """`run_mpc` as one LP with the HV/MV threshold binding."""
    run_mpc(grid, site_bus, horizon, seed, report, binding=True)


def run_mpc_by_area_binding(
    grid: RadialGrid, site_bus: IntArray, horizon: int, seed: int, report: Report
) -> None:
    """`run_mpc` by area with the HV/MV threshold binding."""
    run_mpc(grid, site_bus, horizon, seed, report, by_area=True, binding=True)


def run_mpc_by_area_lazy(
    grid: RadialGrid, site_bus: IntArray, horizon: int, seed: int, report: Report
) -> None:
    """`run_mpc` by area with the grid rows added lazily, threshold free."""
    run_mpc(grid, site_bus, horizon, seed, report, by_area=True, lazy=True)


def run_mpc_by_area_lazy_binding(
    grid: RadialGrid, site_bus: IntArray, horizon: int, seed: int, report: Report
) -> None:
    """`run_mpc` by area with the grid rows added lazily and the HV/MV threshold binding."""
    run_mpc(grid, site_bus, horizon, seed, report, by_area=True, binding=True, lazy=True)
