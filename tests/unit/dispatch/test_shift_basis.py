"""Moving the basis with a multi-period window (`DispatchEngine.shift_basis`)."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.dispatch import (
    DispatchEngine,
    EngineOptions,
    SiteAssets,
    StepInputs,
    StorageState,
    build_problem,
)
from tests.unit.dispatch.helpers import feeder, mixed_assets

H = 24


def _inputs(t0: int, n: int, rng: np.random.Generator) -> StepInputs:
    h = (np.arange(t0, t0 + H) % 96) / 4.0
    pv = np.clip(np.sin((h - 6.0) / 14.0 * np.pi), 0.0, None)[:, None] * rng.uniform(3.0, 8.0, (H, n))
    load = (0.5 + np.exp(-((h - 19.0) ** 2) / 4.0))[:, None] * rng.uniform(0.5, 2.0, (H, n))
    return StepInputs(
        base_kw=load - pv,
        pv_kw=pv,
        heat_kw=np.full((H, (n + 2) // 3), 1.5),
        station_limit_kw=np.full(H, 0.8 * n),
    )


def test_shifted_basis_gives_the_same_plans_in_fewer_iterations() -> None:
    n = 30
    assets = mixed_assets(n)
    problem = build_problem(feeder(4, rating_kw=60.0), np.arange(n) % 3 + 1, assets, horizon=H)
    plain, moved = DispatchEngine(problem), DispatchEngine(problem)
    state = StorageState(np.full(problem.n_bat, 5.0), np.full(problem.n_hp, 4.0))
    iters = {"plain": 0, "moved": 0}
    for i in range(6):
        x = _inputs(60 + 6 * i, n, np.random.default_rng(i))
        if i:
            assert moved.shift_basis(6)
        a, b = plain.solve(x, state), moved.solve(x, state)
        assert b.objective == pytest.approx(a.objective, rel=1e-9, abs=1e-9)
        if i:
            iters["plain"] += plain.h.getInfo().simplex_iteration_count
            iters["moved"] += moved.h.getInfo().simplex_iteration_count
        state = a.next_state()
    assert iters["moved"] < iters["plain"], iters


def test_shift_needs_a_basis_and_a_window() -> None:
    assets = SiteAssets.none(2)
    eng = DispatchEngine(build_problem(feeder(2), np.array([1, 1]), assets, horizon=4))
    assert not eng.shift_basis(1)  # nothing solved yet
    eng.solve(StepInputs(base_kw=np.ones((4, 2))), StorageState(np.zeros(0), np.zeros(0)))
    assert not eng.shift_basis(0) and not eng.shift_basis(4)
    assert eng.shift_basis(1)


def test_interior_point_cold_start_then_warm_simplex() -> None:
    n = 30
    problem = build_problem(feeder(4, rating_kw=60.0), np.arange(n) % 3 + 1, mixed_assets(n), horizon=H)
    ipm = DispatchEngine(problem, EngineOptions(presolve_first=True, cold_solver="ipm"))
    simplex = DispatchEngine(problem)
    state = StorageState(np.full(problem.n_bat, 5.0), np.full(problem.n_hp, 4.0))
    x = _inputs(60, n, np.random.default_rng(0))
    a, b = ipm.solve(x, state), simplex.solve(x, state)
    assert a.objective == pytest.approx(b.objective, rel=1e-7, abs=1e-7)
    assert ipm.h.getInfo().ipm_iteration_count > 0  # the first solve was interior point
    assert ipm.h.getOptionValue("solver")[1] == "simplex" and ipm.h.getOptionValue("presolve")[1] == "off"
    # the crossover left a basis: the same problem again needs no simplex iteration
    ipm.solve(x, state)
    assert ipm.h.getInfo().simplex_iteration_count == 0
