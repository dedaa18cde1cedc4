"""Mending per-site answers that overload branches (`dispatch/repair.py`): only the subtrees
below the overloaded branches are re-solved, and the answer is the LP's optimum."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cloud_controller.dispatch import DispatchEngine, EngineOptions, Problem, StorageState
from cloud_controller.dispatch.routes import repair as repair_module
from cloud_controller.grid.radial import RadialGrid
from tests.unit.dispatch.test_decompose import _problem, stations_grid
from tests.unit.dispatch.test_sites import _varied


def _tight(station_kw: float, line_kw: float, r_scale: float = 1.0) -> RadialGrid:
    g = stations_grid(3, 4, station_kw=station_kw)
    lines = np.char.startswith(np.asarray(g.branch_names), "line:")
    return dataclasses.replace(
        g, rating_kw=np.where(lines, line_kw, g.rating_kw), r_pu_per_kw=g.r_pu_per_kw * r_scale
    )


def _run(p: Problem, steps: int, seed: int) -> tuple[DispatchEngine, int]:
    """Both engines over varied steps (battery limits changed now and then); every answer
    must be the LP's optimum. Returns the per-site engine and how many steps broke a limit."""
    rng = np.random.default_rng(seed)
    lp, fast = DispatchEngine(p), DispatchEngine(p, EngineOptions(by_site=True))
    lo, hi = np.zeros(p.n_bat), p.bat_e_max_kwh
    for i in range(steps):
        x, st = _varied(rng, p, i % 7)
        if i % 25 == 3:
            pm = rng.uniform(0.0, 5.0, p.n_bat)
            lo = rng.uniform(0.0, 3.0, p.n_bat)
            hi = lo + rng.uniform(1.0, 7.0, p.n_bat)
            for e in (lp, fast):
                e.set_battery_limits(pm, lo, hi)
        st = StorageState(np.clip(st.e_bat_kwh, lo, hi), st.e_ts_kwh)
        mended = fast.mended
        a, b = lp.solve(x, st), fast.solve(x, st)
        assert b.objective == pytest.approx(a.objective, rel=1e-9, abs=1e-9), i
        if fast.mended > mended:  # a mended answer breaks no limit (HiGHS may, softly)
            assert np.all(np.abs(b.branch_flow_kw[0]) <= p.grid.rating_kw + 1e-6)
            assert not b.violations or {v.kind for v in b.violations} == {"heat_unmet"}
    assert fast.sites is not None
    return fast, fast.sites.declined_by_grid


@pytest.mark.parametrize(("station_kw", "line_kw"), [(40.0, 150.0), (4000.0, 12.0), (30.0, 10.0)])
def test_overloaded_branches_are_mended_to_the_lp_optimum(station_kw: float, line_kw: float) -> None:
    rng = np.random.default_rng(3)
    p = _problem(rng, n_sites=60, grid=_tight(station_kw, line_kw))
    fast, broke = _run(p, 60, seed=4)
    assert broke > 0 and fast.mended == broke  # every overloaded step mended, none left to HiGHS


def test_a_broken_voltage_band_is_left_to_highs() -> None:
    rng = np.random.default_rng(5)
    p = _problem(rng, n_sites=60, grid=_tight(60.0, 14.0, r_scale=150.0))
    fast, broke = _run(p, 30, seed=6)
    assert broke == 30 and fast.mended == 0


def test_a_subtree_too_large_to_pay_is_left_to_highs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repair_module, "MAX_SITES", 3)
    rng = np.random.default_rng(3)
    p = _problem(rng, n_sites=60, grid=_tight(30.0, 10.0))
    fast, broke = _run(p, 20, seed=7)
    assert broke > 0 and fast.mended == 0
    assert fast.repair is not None and fast.repair.refused == broke


def test_a_coupling_row_on_its_bound_with_a_dual_refuses_the_patch() -> None:
    """The certificate's coupling test on its own (a subtree whose path row or voltage binds
    in its LP is not optimal for the whole): on the bound with a dual refuses; off the bound,
    or on it with a round-off dual, passes."""
    from types import SimpleNamespace

    def patch(value: float, dual: float) -> repair_module._Patch:
        sol = SimpleNamespace(row_value=[0.0, value], row_dual=[5.0, dual])
        engine = SimpleNamespace(last_solution=sol, lazy_grid=False)
        none = np.zeros(0, dtype=np.int64)
        return repair_module._Patch(
            area=None,  # type: ignore[arg-type]
            engine=engine,
            bats=none,
            hps=none,
            fold=None,
            coupling_rows=np.array([1]),
            coupling_upper=np.array([10.0]),
        )

    idle = repair_module.SubtreeRepair._coupling_idle
    assert not idle(patch(10.0, -0.3))
    assert idle(patch(9.0, -0.3)) and idle(patch(10.0, -1e-12))

    # a lazy subtree LP (the default) is asked about its added rows of the path's branches
    asked: list[list[int]] = []

    def lazy_patch(answer: bool) -> repair_module._Patch:
        def rows_idle(branches: np.ndarray) -> bool:
            asked.append(branches.tolist())
            return answer

        pt = patch(9.0, 0.0)
        pt.engine = SimpleNamespace(last_solution=object(), lazy_grid=True, lazy_rows_idle=rows_idle)
        pt.area = SimpleNamespace(path_branches=np.array([7, 3]))  # type: ignore[assignment]
        return pt

    assert idle(lazy_patch(True)) and not idle(lazy_patch(False))
    assert asked == [[0, 1], [0, 1]]  # the path's branches, in the subtree LP's numbering


def test_areas_never_mend_so_a_shared_branch_binding_goes_to_the_full_lp() -> None:
    """Review regression: an area's engine that mended an overloaded *shared* branch (here the
    HV/MV transformer on every area's path) returned an answer without duals, which the
    decomposition took for idle coupling rows: certified answers 3 % off the optimum."""
    from cloud_controller.dispatch import DecomposedEngine
    from tests.unit.dispatch.test_decompose import _inputs, _state

    g = stations_grid(2, 4, station_kw=4000.0)
    g = dataclasses.replace(g, rating_kw=np.where(np.arange(g.n_branch) == 0, 60.0, 1e4))
    for seed in range(12):  # seed 9 gave the wrong certified answer
        rng = np.random.default_rng(seed)
        p = _problem(rng, n_sites=30, grid=g)
        full = DispatchEngine(p)
        with DecomposedEngine(p, EngineOptions(by_site=True), max_sites=20) as dec:
            assert dec.n_areas == 2
            x, st = _inputs(rng, p), _state(rng, p)
            a, b = full.solve(x, st), dec.solve(x, st)
            assert b.objective == pytest.approx(a.objective, rel=1e-9, abs=1e-9), seed
            assert all(e.mended == 0 for e in dec.area_engines)


@pytest.mark.parametrize("options", [{"builder": "pyomo"}, {"cop_rtol": 0.05}])
def test_mending_under_other_engine_options(options: dict[str, object]) -> None:
    """Review regressions: with the pyomo builder the subtree LP lacked the index its
    certificate reads (crash); with `cop_rtol` the subtree LP held a COP of its own."""
    rng = np.random.default_rng(8)
    p = _problem(rng, n_sites=30, grid=_tight(4000.0, 12.0))
    exact = DispatchEngine(p)  # the LP with each step's COP
    fast = DispatchEngine(p, EngineOptions(by_site=True, **options))  # type: ignore[arg-type]
    for i in range(12):
        x, st = _varied(rng, p, i % 7)
        x = dataclasses.replace(x, cop=np.array([3.0 + 0.1 * (i % 2)]))
        mended = fast.mended
        b = fast.solve(x, st)
        if fast.mended > mended:
            assert b.objective == pytest.approx(exact.solve(x, st).objective, rel=1e-9, abs=1e-9), i
    assert fast.mended > 0
