"""Areas solved in worker processes and on Dask (`areas/execution.py`, `dask_areas.py`) answer as in the caller."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from cloud_controller.dispatch import (
    AreaExecution,
    DaskAreas,
    DecomposedEngine,
    EngineOptions,
    Problem,
    ProcessAreas,
    Schedule,
    SerialAreas,
    StepInputs,
    StorageState,
    area_execution,
)
from cloud_controller.dispatch.areas.execution import spread
from cloud_controller.dispatch.areas.group import AreaSpec
from tests.unit.dispatch.test_decompose import _inputs, _problem, _state

FIELDS = ("p_site_kw", "p_bat_kw", "e_bat_kwh", "p_hp_kw", "e_ts_kwh", "curtail_kw", "p_root_kw")


def _evening(rng: np.random.Generator, p: Problem) -> StepInputs:
    x = _inputs(rng, p)
    x.base_kw = np.abs(x.base_kw) + 2.0  # every site imports: the stores discharge
    x.pv_kw = np.zeros_like(x.base_kw)
    return x


def _same(a: Schedule, b: Schedule) -> None:
    assert b.objective == pytest.approx(a.objective, rel=1e-9, abs=1e-9)
    for name in FIELDS:  # the same engine calls wherever they run: the same solutions
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=0, atol=1e-9, err_msg=name)


def _run(
    execution: AreaExecution | None, p: Problem, calls: list[tuple[StepInputs, StorageState]]
) -> list[Schedule]:
    """Three calls: free (by area), the HV/MV threshold binding (whole LP from the areas' bases), free again."""
    with DecomposedEngine(
        p, EngineOptions(lazy_grid=True), max_sites=20, retry_after=0, execution=execution
    ) as dec:
        assert dec.n_areas == 3
        out = []
        for x, st in calls:
            out.append(dec.solve(x, st))
        assert dec.stats.certified_first == 2 and dec.stats.full_lp == 1
        assert dec.stats.full_from_areas == 1  # the areas' bases came back from where they were solved
        return out


@pytest.fixture(scope="module")
def case() -> tuple[Problem, list[tuple[StepInputs, StorageState]], list[Schedule]]:
    rng = np.random.default_rng(7)
    p = _problem(rng, horizon=4)
    state = _state(rng, p)
    free = _inputs(rng, p)
    x = _evening(rng, p)
    with DecomposedEngine(p, EngineOptions(lazy_grid=True), max_sites=20) as probe:
        root = probe.solve(x, state).p_root_kw
    limit = root + 100.0
    limit[int(np.argmax(root))] -= 105.0  # binds in one period of four
    binding = dataclasses.replace(x, station_limit_kw=limit)
    calls = [(free, state), (binding, state), (x, state)]
    return p, calls, _run(None, p, calls)


def _processes() -> AreaExecution:
    # forked: a fresh interpreter's import of the dispatch code costs seconds (the
    # forkserver default is tested below, marked slow); bounded if a fork ever hangs
    return ProcessAreas(2, start_method="fork", timeout_s=120.0)


def _dask_local() -> AreaExecution:
    return DaskAreas(2, processes=False)


@pytest.mark.parametrize("make", [_processes, _dask_local], ids=["processes", "dask-local"])
def test_areas_elsewhere_answer_exactly_as_in_the_caller(
    case: tuple[Problem, list[tuple[StepInputs, StorageState]], list[Schedule]],
    make: Callable[[], AreaExecution],
) -> None:
    p, calls, serial = case
    for a, b in zip(serial, _run(make(), p, calls), strict=True):
        _same(a, b)


@pytest.mark.slow
def test_areas_in_forkserver_processes_as_the_service_starts_them_answer_as_in_the_caller(
    case: tuple[Problem, list[tuple[StepInputs, StorageState]], list[Schedule]],
) -> None:
    p, calls, serial = case
    for a, b in zip(serial, _run(ProcessAreas(2, timeout_s=300.0), p, calls), strict=True):
        _same(a, b)


def test_areas_on_a_dask_scheduler_by_address_answer_as_in_the_caller(
    case: tuple[Problem, list[tuple[StepInputs, StorageState]], list[Schedule]], dask_scheduler: str
) -> None:
    p, calls, serial = case
    for a, b in zip(serial, _run(DaskAreas(2, dask_scheduler), p, calls), strict=True):
        _same(a, b)


def test_worker_processes_end_on_close_and_refuse_calls_after() -> None:
    rng = np.random.default_rng(3)
    p = _problem(rng)
    ex = ProcessAreas(2, start_method="fork", timeout_s=120.0)
    dec = DecomposedEngine(p, max_sites=20, execution=ex)
    procs = list(ex._procs)
    assert len(procs) == 2 and all(pr.is_alive() for pr in procs)
    dec.set_battery_limits(p.bat_p_max_kw * 0.5, p.bat_e_min_kwh, p.bat_e_max_kwh)
    half = dec.solve(_evening(rng, p), _state(rng, p))
    assert np.all(np.abs(half.p_bat_kw) <= 0.5 * p.bat_p_max_kw[None, :] + 1e-9)  # limits reached the workers
    dec.close()
    assert all(pr.exitcode == 0 for pr in procs)  # ended on "close", not terminated
    with pytest.raises(RuntimeError, match="not started"):
        dec.solve(_inputs(rng, p), _state(rng, p))


def test_areas_are_spread_largest_first_to_the_least_loaded_worker() -> None:
    rng = np.random.default_rng(0)
    p = _problem(rng, n_sites=36)
    dec = DecomposedEngine(p, max_sites=20)
    specs = [AreaSpec(i, s.area, s.sub) for i, s in enumerate(dec._subs)]
    dec.close()
    groups = spread(specs, 2)
    assert sorted(s.index for g in groups for s in g) == [0, 1, 2]
    largest = max(specs, key=lambda s: s.size)
    assert groups[0][0] is largest and len(groups[0]) == 1  # the other two share the second worker
    assert spread(specs, 5) == [[s] for s in sorted(specs, key=lambda s: -s.size)]  # no idle workers


def test_execution_names_are_checked() -> None:
    assert isinstance(area_execution("serial", threads=2), SerialAreas)
    assert isinstance(area_execution("processes", 3), ProcessAreas)
    assert isinstance(area_execution("dask", 0, "tcp://127.0.0.1:8786"), DaskAreas)
    with pytest.raises(ValueError, match="serial, processes, dask"):
        area_execution("threads")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        ProcessAreas(0)
    with pytest.raises(ValueError, match="start_method"):
        ProcessAreas(2, start_method="thread")
    with pytest.raises(ValueError, match="local cluster"):
        DaskAreas(0)
