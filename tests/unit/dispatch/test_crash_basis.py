"""The cold-start basis (`dispatch/crash.py`): square, accepted by HiGHS, same optimum."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.dispatch import (
    DispatchEngine,
    EngineOptions,
    Problem,
    StepInputs,
    StorageState,
    build_problem,
)
from cloud_controller.dispatch.highs.crash import basis_for, count_check
from tests.unit.dispatch.helpers import feeder, mixed_assets


def _problem(n_sites: int, rng: np.random.Generator) -> Problem:
    grid = feeder(8, rating_kw=15.0, r_pu_per_kw=4e-3)
    sites = rng.integers(1, 8, n_sites)
    assets = mixed_assets(n_sites, store_needs_battery=True)
    return build_problem(grid, sites, assets, horizon=1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_crash_basis_is_square_and_gives_the_same_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = _problem(24, rng)
    state = StorageState(rng.uniform(0.0, 10.0, p.n_bat), rng.uniform(0.0, 11.6, p.n_hp))
    for k in range(4):
        pv = rng.uniform(0.0, 9.0, (1, p.n_sites))
        x = StepInputs(
            base_kw=rng.uniform(0.2, 4.0, (1, p.n_sites)) - pv,
            pv_kw=pv,
            heat_kw=rng.uniform(0.0, 12.0, (1, p.n_hp)),  # some beyond what a heat pump makes
            cop=np.array([3.2]),
            station_limit_kw=np.array([10.0 if k % 2 else np.inf]),
            station_feed_limit_kw=np.array([12.0]),
        )
        warm = DispatchEngine(p, EngineOptions(crash=True))
        cold = DispatchEngine(p, EngineOptions(crash=False))
        col, row = basis_for(p, warm.ix, x, state)
        assert count_check(col, row) == 0
        a, b = warm.solve(x, state), cold.solve(x, state)
        assert warm.crash_used and not cold.crash_used
        assert a.objective == pytest.approx(b.objective, rel=1e-8, abs=1e-8)
        np.testing.assert_allclose(a.p_root_kw, b.p_root_kw, atol=1e-6)
        # the branch limits of the feeder (15 kW) are broken at this load: the slack
        # columns were started basic and the relaxation is reported the same way
        assert {(v.kind, v.element) for v in a.violations} == {(v.kind, v.element) for v in b.violations}


def test_crash_basis_saves_most_iterations() -> None:
    rng = np.random.default_rng(4)
    p = _problem(60, rng)
    state = StorageState(np.full(p.n_bat, 5.0), np.full(p.n_hp, 5.0))
    pv = rng.uniform(0.0, 6.0, (1, p.n_sites))
    x = StepInputs(base_kw=rng.uniform(0.2, 3.0, (1, p.n_sites)) - pv, pv_kw=pv, heat_kw=np.ones((1, p.n_hp)))
    warm, cold = DispatchEngine(p, EngineOptions(crash=True)), DispatchEngine(p, EngineOptions(crash=False))
    warm.solve(x, state)
    cold.solve(x, state)
    it_warm = warm.h.getInfo().simplex_iteration_count
    it_cold = cold.h.getInfo().simplex_iteration_count
    assert it_warm < 0.6 * it_cold, (it_warm, it_cold)
