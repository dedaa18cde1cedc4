"""Which route answers which call, and whether its answer is certified for the whole LP.

One table: a constructed case per row, the route the engine must take for it and the
certificate it must carry (`Answer.route`, `Answer.certified`); every answer is also the
whole LP's optimum (checked against HiGHS on the whole LP).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from cloud_controller.dispatch import (
    AREAS,
    LAZY,
    LP,
    MEND,
    SITE,
    THRESHOLD,
    DecomposedEngine,
    DispatchEngine,
    Engine,
    EngineOptions,
    Problem,
    StepInputs,
    StorageState,
)
from tests.unit.dispatch.test_decompose import _inputs, _problem, _state, stations_grid
from tests.unit.dispatch.test_repair import _tight

Case = tuple[Engine, Problem, StepInputs, StorageState]


def _station_level(seed: int) -> tuple[Problem, StepInputs, StorageState]:
    rng = np.random.default_rng(seed)
    p = _problem(rng, n_sites=60, grid=stations_grid(3, 4, station_kw=4000.0))
    return p, _inputs(rng, p), _state(rng, p)


def _by_site(p: Problem) -> DispatchEngine:
    return DispatchEngine(p, EngineOptions(by_site=True))


def nothing_binds() -> Case:
    p, x, st = _station_level(0)
    return _by_site(p), p, x, st


def threshold_binds() -> Case:
    p, x, st = _station_level(0)
    free = float(DispatchEngine(p).solve(x, st).p_root_kw[0])
    return _by_site(p), p, dataclasses.replace(x, station_limit_kw=np.array([free - 20.0])), st


def a_line_binds() -> Case:
    rng = np.random.default_rng(3)
    p = _problem(rng, n_sites=60, grid=_tight(4000.0, 4.0))
    return _by_site(p), p, _inputs(rng, p), _state(rng, p)


def infeasible() -> Case:
    """A threshold no dispatch can meet: every limit is soft, HiGHS relaxes it and says so."""
    p, x, st = _station_level(0)
    return _by_site(p), p, dataclasses.replace(x, station_limit_kw=np.array([-1e4])), st


def first_call() -> Case:
    p, x, st = _station_level(0)
    return DispatchEngine(p), p, x, st


def first_call_lv_network() -> Case:
    """More buses than sites: HiGHS holds the LP without its grid rows (lazily)."""
    rng = np.random.default_rng(0)
    p = _problem(rng, n_sites=12, grid=stations_grid(3, 8, station_kw=4000.0))
    return DispatchEngine(p), p, _inputs(rng, p), _state(rng, p)


def held_cop() -> Case:
    """`cop_rtol`: the second call's COP moved less than the tolerance, HiGHS keeps the first
    one's: optimal for that LP, not certified for the call's own."""
    p, x, st = _station_level(0)
    engine = DispatchEngine(p, EngineOptions(cop_rtol=0.05))
    engine.solve(dataclasses.replace(x, cop=np.array([3.0])), st)
    return engine, p, dataclasses.replace(x, cop=np.array([3.06])), st


def by_area() -> Case:
    p, x, st = _station_level(0)
    return DecomposedEngine(p, max_sites=20), p, x, st


def _rated(engine: Engine, p: Problem, x: StepInputs, st: StorageState, share: float = 0.8) -> Case:
    """The call with station st0's rating at `share` of the flow it carries without one (`branch_rating_kw`)."""
    k = p.grid.branch_names.index("trafo:st0")
    free = DispatchEngine(p, EngineOptions(lazy_grid=False)).solve(x, st).branch_flow_kw[:, k]
    rating = np.broadcast_to(p.grid.rating_kw, (p.horizon, p.grid.n_branch)).copy()
    rating[:, k] = share * np.abs(free)
    return engine, p, dataclasses.replace(x, branch_rating_kw=rating), st


def a_call_rating_binds_site_by_site() -> Case:
    p, x, st = _station_level(0)
    return _rated(_by_site(p), p, x, st)


def a_call_rating_binds_in_the_lp() -> Case:
    p, x, st = _station_level(0)
    return _rated(DispatchEngine(p), p, x, st)


def a_call_rating_binds_lazily() -> Case:
    rng = np.random.default_rng(0)
    p = _problem(rng, n_sites=12, grid=stations_grid(3, 8, station_kw=4000.0))
    return _rated(DispatchEngine(p), p, _inputs(rng, p), _state(rng, p))


def a_call_rating_binds_in_an_area() -> Case:
    p, x, st = _station_level(0)
    return _rated(DecomposedEngine(p, max_sites=20), p, x, st)


CASES: list[tuple[Callable[[], Case], str, bool]] = [
    (nothing_binds, SITE, True),
    (threshold_binds, THRESHOLD, True),
    (a_line_binds, MEND, True),
    (infeasible, LP, True),
    (first_call, LP, True),
    (first_call_lv_network, LAZY, True),
    (held_cop, LP, False),
    (by_area, AREAS, True),
    (a_call_rating_binds_site_by_site, MEND, True),
    (a_call_rating_binds_in_the_lp, LP, True),
    (a_call_rating_binds_lazily, LAZY, True),
    (a_call_rating_binds_in_an_area, AREAS, True),
]


@pytest.mark.parametrize(("case", "route", "certified"), CASES, ids=[c[0].__name__ for c in CASES])
def test_the_route_that_answers_and_its_certificate(
    case: Callable[[], Case], route: str, certified: bool
) -> None:
    engine, p, x, st = case()
    got = engine.answer(x, st)
    assert (got.route, got.certified) == (route, certified)
    if certified:  # the whole LP's optimum, as HiGHS finds it on the whole LP
        whole = DispatchEngine(p, EngineOptions(lazy_grid=False)).solve(x, st)
        assert got.schedule.objective == pytest.approx(whole.objective, rel=1e-9, abs=1e-9)
    if case is infeasible:
        assert {v.kind for v in got.schedule.violations} >= {"station_load"}
    if x.branch_rating_kw is not None:  # the call's rating holds, with no slack paid for it
        flows = np.abs(got.schedule.branch_flow_kw)
        assert (flows <= np.asarray(x.branch_rating_kw) + 1e-6).all()
        assert not [v for v in got.schedule.violations if v.kind == "branch"]


def test_solve_is_the_answers_schedule() -> None:
    engine, _, x, st = nothing_binds()
    assert engine.solve(x, st).objective == engine.answer(x, st).schedule.objective
    assert isinstance(engine, DispatchEngine) and engine.last_answer is not None
    assert engine.last_answer.route == SITE and not engine.lp_built
