"""A call's own branch ratings (`StepInputs.branch_rating_kw`, a DSO's envelope) in every route.

A rating given with the call must give the answer a grid built with that rating gives
(same objective, same flow on the rated branch and at the slack), in every route; in a multi-period plan it binds only in the
intervals it is given for; taken away again, the warm engine forgets it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from cloud_controller.dispatch import (
    DecomposedEngine,
    DispatchEngine,
    Engine,
    EngineOptions,
    Problem,
    StepInputs,
)
from tests.unit.dispatch.test_decompose import _inputs, _problem, _state, stations_grid

ST0 = 1  # branch index of trafo:st0 in stations_grid


def _setup(
    horizon: int = 1, lv_buses: int = 4, n_sites: int = 60, seed: int = 0
) -> tuple[Problem, StepInputs]:
    rng = np.random.default_rng(seed)
    p = _problem(rng, n_sites=n_sites, horizon=horizon, grid=stations_grid(3, lv_buses, station_kw=4000.0))
    return p, _inputs(rng, p)


def _ratings(p: Problem, kw: float, intervals: list[int]) -> np.ndarray:
    r = np.broadcast_to(p.grid.rating_kw, (p.horizon, p.grid.n_branch)).copy()
    r[intervals, ST0] = kw
    return r


ENGINES: dict[str, Callable[[Problem], Engine]] = {
    "lp": lambda p: DispatchEngine(p, EngineOptions(lazy_grid=False)),
    "lazy": lambda p: DispatchEngine(p, EngineOptions(lazy_grid=True)),
    "site-mend": lambda p: DispatchEngine(p, EngineOptions(by_site=True)),
    "areas": lambda p: DecomposedEngine(p, max_sites=20),
    "areas-lazy": lambda p: DecomposedEngine(p, EngineOptions(lazy_grid=True), max_sites=20),
}


@pytest.mark.parametrize("make", list(ENGINES.values()), ids=list(ENGINES))
def test_a_call_rating_gives_what_a_grid_with_that_rating_gives(make: Callable[[Problem], Engine]) -> None:
    p, x = _setup()
    st = _state(np.random.default_rng(1), p)
    free = DispatchEngine(p).solve(x, st)
    cap_kw = 0.7 * abs(float(free.branch_flow_kw[0, ST0]))
    got = make(p).solve(dataclasses.replace(x, branch_rating_kw=_ratings(p, cap_kw, [0])), st)
    g = dataclasses.replace(
        p.grid, rating_kw=np.where(np.arange(p.grid.n_branch) == ST0, cap_kw, p.grid.rating_kw)
    )
    fixed = DispatchEngine(dataclasses.replace(p, grid=g), EngineOptions(lazy_grid=False)).solve(x, st)
    assert abs(got.branch_flow_kw[0, ST0]) == pytest.approx(cap_kw, abs=1e-6)
    assert got.objective == pytest.approx(fixed.objective, rel=1e-9)
    assert got.objective > free.objective + 1e-6  # it binds: relief costs something
    # (flows inside the station's LV network may differ: the optimum is degenerate there)
    assert got.p_root_kw[0] == pytest.approx(fixed.p_root_kw[0], abs=1e-6)


def test_a_rating_in_one_interval_binds_there_only() -> None:
    p, x = _setup(horizon=4, n_sites=30)
    st = _state(np.random.default_rng(1), p)
    free = DispatchEngine(p, EngineOptions(lazy_grid=False)).solve(x, st)
    flow = np.abs(free.branch_flow_kw[:, ST0])
    peak = int(np.argmax(flow))
    cap_kw = 0.8 * float(np.sort(flow)[-2])  # under the two highest intervals' flows
    xr = dataclasses.replace(x, branch_rating_kw=_ratings(p, cap_kw, [peak]))
    got = {name: make(p).solve(xr, st) for name, make in ENGINES.items() if name != "site-mend"}
    every = DispatchEngine(p, EngineOptions(lazy_grid=False)).solve(
        dataclasses.replace(x, branch_rating_kw=_ratings(p, cap_kw, [0, 1, 2, 3])), st
    )
    lp = got["lp"]
    held = np.abs(lp.branch_flow_kw[:, ST0])
    assert held[peak] == pytest.approx(cap_kw, abs=1e-6)
    assert (np.delete(held, peak) > cap_kw + 0.5).any()  # another interval runs above it
    assert free.objective + 1e-6 < lp.objective < every.objective - 1e-6
    for name, sched in got.items():
        assert sched.objective == pytest.approx(lp.objective, rel=1e-9), name
        assert abs(sched.branch_flow_kw[peak, ST0]) <= cap_kw + 1e-6, name


@pytest.mark.parametrize("lazy", [False, True], ids=["lp", "lazy"])
def test_a_warm_engine_forgets_a_rating_taken_away(lazy: bool) -> None:
    p, x = _setup(lv_buses=8, n_sites=12)
    st = _state(np.random.default_rng(1), p)
    engine = DispatchEngine(p, EngineOptions(lazy_grid=lazy))
    free = engine.solve(x, st)
    cap_kw = 0.5 * abs(float(free.branch_flow_kw[0, ST0]))
    held = engine.solve(dataclasses.replace(x, branch_rating_kw=_ratings(p, cap_kw, [0])), st)
    assert abs(held.branch_flow_kw[0, ST0]) <= cap_kw + 1e-6
    again = engine.solve(x, st)
    assert again.objective == pytest.approx(free.objective, rel=1e-9) != held.objective
    assert abs(again.branch_flow_kw[0, ST0]) > cap_kw + 1e-3


@pytest.mark.parametrize(
    ("rating", "message"),
    [
        (np.ones((2, 3)), "has shape"),
        (np.full(16, np.nan), "NaN or a negative"),
        (np.full(16, -1.0), "NaN or a negative"),
    ],
    ids=["shape", "nan", "negative"],
)
def test_a_bad_rating_is_refused(rating: np.ndarray, message: str) -> None:
    p, x = _setup()
    st = _state(np.random.default_rng(1), p)
    with pytest.raises(ValueError, match=message):
        DispatchEngine(p).solve(dataclasses.replace(x, branch_rating_kw=rating), st)


def test_a_rating_on_a_branch_the_lp_does_not_limit_is_refused() -> None:
    p, x = _setup()
    g = dataclasses.replace(
        p.grid, rating_kw=np.where(np.arange(p.grid.n_branch) == ST0, np.inf, p.grid.rating_kw)
    )
    p = dataclasses.replace(p, grid=g)
    st = _state(np.random.default_rng(1), p)
    with pytest.raises(ValueError, match="trafo:st0, which the LP does not limit"):
        DispatchEngine(p).solve(dataclasses.replace(x, branch_rating_kw=_ratings(p, 10.0, [0])), st)
