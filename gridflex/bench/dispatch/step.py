"""Single-step sizes: cold and warm solves of one period, whole LP, lazily, site by site, by area."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from cloud_controller.dispatch import (
    DecomposedEngine,
    DispatchEngine,
    Engine,
    EngineOptions,
    IntArray,
    Problem,
    StepInputs,
    StorageState,
    build_problem,
)
from cloud_controller.grid import RadialGrid
from gridflex.bench.dispatch.fleet import DT_H, fleet_inputs, initial_state, make_fleet

BY_AREA_THREADS = 2  # the machine the targets are for has two cores
PYOMO_BUILD_MAX_SITES = 1000  # the pyomo build is timed for comparison up to this size


def ms(seconds: float) -> float:
    """Seconds as milliseconds, the unit the size figures are reported in."""
    return seconds * 1e3


# -- size and MPC cases (run in a child process) ----------------------------------------------

Report = Callable[[str, dict[str, Any]], None]


def run_size(grid: RadialGrid, site_bus: IntArray, steps: int, seed: int, report: Report) -> None:
    """Cold build + first solve, then `steps` warm re-solves rolling the state forward."""
    rng = np.random.default_rng(seed)
    n = len(site_bus)
    fleet = make_fleet(n, rng)
    problem = build_problem(grid, site_bus, fleet.assets, horizon=1, dt_h=DT_H)
    state = initial_state(fleet, rng)
    t_start = 48  # noon: PV surplus at some sites, import at others, batteries both ways
    first = fleet_inputs(fleet, t_start, 1, rng)
    t0 = time.perf_counter()
    engine = DispatchEngine(problem, EngineOptions(lazy_grid=False))  # the whole LP; lazily: _run_size_lazy
    t1 = time.perf_counter()
    sched = engine.solve(first, state)
    t2 = time.perf_counter()
    pyomo_ms = None
    if n <= PYOMO_BUILD_MAX_SITES:
        tp = time.perf_counter()
        DispatchEngine(problem, EngineOptions(builder="pyomo", lazy_grid=False))
        pyomo_ms = ms(time.perf_counter() - tp)
    report(
        "cold",
        {
            "pyomo_build_ms": pyomo_ms,
            "first_iterations": int(engine.h.getInfo().simplex_iteration_count),
            "n_bat": problem.n_bat,
            "n_hp": problem.n_hp,
            "n_cols": engine.n_cols,
            "n_rows": engine.n_rows,
            "build_ms": ms(t1 - t0),
            "first_solve_ms": ms(t2 - t1),
            "cold_ms": ms(t2 - t0),
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
            x = fleet_inputs(fleet, t_start + k, 1, rng)
            if hold_cop:
                x.cop = first.cop
                held.append(x)
            st = sched.next_state()
            ta = time.perf_counter()
            sched = engine.solve(x, st)
            times.append(time.perf_counter() - ta)
        if times:
            figs: dict[str, Any] = {
                f"{key}_ms": ms(statistics.median(times)),
                f"{key}_max_ms": ms(max(times)),
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
    engine = DispatchEngine(problem, EngineOptions(lazy_grid=True))
    cold, times = _cold_and_warm(engine, first, state, warm, t0)
    assert engine.lazy is not None
    report(
        "lazy",
        {
            "lazy_cold_ms": ms(cold),
            "lazy_warm_ms": ms(statistics.median(times)) if times else None,
            "lazy_warm_max_ms": ms(max(times)) if times else None,
            "lazy_rows": len(engine.lazy.rows.row),
        },
    )


def _cold_and_warm(
    engine: Engine,
    first: StepInputs,
    state: StorageState,
    warm: list[StepInputs],
    t0: float,
) -> tuple[float, list[float]]:
    """Seconds from `t0` (before the engine was built) to the first answer, and of each warm re-solve.

    The warm series rolls the storage state forward from one answer to the next.
    """
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
    """The same first step and warm series with `by_site=True`.

    Site by site where that is certified optimal, HiGHS where a grid limit binds. Cold
    includes building the HiGHS LP.
    """
    t0 = time.perf_counter()
    # HiGHS's LP lazily on an LV network (default)
    engine = DispatchEngine(problem, EngineOptions(by_site=True))
    cold, times = _cold_and_warm(engine, first, state, warm, t0)
    report(
        "by_site",
        {
            "by_site_cold_ms": ms(cold),
            "by_site_warm_ms": ms(statistics.median(times)) if times else None,
            "by_site_warm_max_ms": ms(max(times)) if times else None,
            "by_site_certified": 0 if engine.sites is None else engine.sites.certified,
            "by_site_grid_binds": 0 if engine.sites is None else engine.sites.declined_by_grid,
            "by_site_mended": engine.mended,
            "by_site_steps": 1 + len(warm),
        },
    )


def _run_size_by_area(
    problem: Problem, first: StepInputs, state: StorageState, warm: list[StepInputs], report: Report
) -> None:
    """The same first step and warm series by area (one LP per station, 2 threads).

    Then the same with every area answered site by site where that is certified (`by_site=True`).
    """
    for by_site in (False, True):
        key = "by_area_site" if by_site else "by_area"
        t0 = time.perf_counter()
        with DecomposedEngine(
            problem, EngineOptions(by_site=by_site, lazy_grid=False), threads=BY_AREA_THREADS
        ) as engine:
            cold, times = _cold_and_warm(engine, first, state, warm, t0)
            report(
                key,
                {
                    "areas": engine.n_areas,
                    f"{key}_cold_ms": ms(cold),
                    f"{key}_warm_ms": ms(statistics.median(times)) if times else None,
                    f"{key}_warm_max_ms": ms(max(times)) if times else None,
                    f"{key}_full_lp": engine.stats.full_lp + engine.stats.full_lp_direct,
                },
            )
