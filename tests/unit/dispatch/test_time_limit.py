"""Every HiGHS solve has a time limit, and a solve that hits it says so (error, counter), never silently."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.dispatch import DispatchEngine, DispatchInfeasible, EngineOptions, Problem
from cloud_controller.dispatch.highs.limit import DispatchTimeLimit, time_limit_of
from cloud_controller.dispatch.options import DEFAULT_TIME_LIMIT_S
from tests.unit.dispatch.test_decompose import _inputs, _problem, _state, stations_grid


def _problem30() -> Problem:
    return _problem(np.random.default_rng(0), n_sites=30, grid=stations_grid(2, 4, station_kw=4000.0))


@pytest.mark.parametrize("lazy", [False, True], ids=["whole-lp", "lazy-grid"])
def test_every_engine_hands_highs_its_time_limit(lazy: bool) -> None:
    p = _problem30()
    assert time_limit_of(DispatchEngine(p, EngineOptions(lazy_grid=lazy)).h) == DEFAULT_TIME_LIMIT_S
    engine = DispatchEngine(p, EngineOptions(lazy_grid=lazy, time_limit_s=7.5))
    assert time_limit_of(engine.h) == 7.5


def test_the_default_limit_is_half_the_default_control_period() -> None:
    assert EngineOptions().time_limit_s == 15 * 60 / 2


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")], ids=["zero", "negative", "infinite"])
def test_an_unbounded_limit_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="time_limit_s"):
        EngineOptions(time_limit_s=bad)


@pytest.mark.parametrize("lazy", [False, True], ids=["whole-lp", "lazy-grid"])
def test_a_solve_that_hits_the_limit_raises_and_is_counted(lazy: bool) -> None:
    rng = np.random.default_rng(1)
    p = _problem30()
    x, st = _inputs(rng, p), _state(rng, p)
    # 1 ns: HiGHS is out of time before its first iteration, on any machine
    engine = DispatchEngine(p, EngineOptions(lazy_grid=lazy, time_limit_s=1e-9))
    with pytest.raises(DispatchTimeLimit, match="time limit") as info:
        engine.answer(x, st)
    assert isinstance(info.value, DispatchInfeasible)  # the planner's error path: no commands
    assert engine.time_limit_hits == 1
    assert engine.last_answer is None  # nothing was answered, so nothing can be published
    engine.h.setOptionValue("time_limit", 60.0)  # given time, the same engine answers
    answer = engine.answer(x, st)
    assert answer.certified and engine.time_limit_hits == 1
