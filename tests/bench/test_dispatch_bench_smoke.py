"""The dispatch bench runs end to end at a tiny size: figures present, engine and rundcopp agree.

Timings are not asserted (the bench prints figures); what is asserted is that every figure
was measured, that the sizes ran through the spawned-child path the full bench uses, and
that our engine reaches pandapower's optimum on every compared step.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridflex.bench.dispatch import DispatchBenchResult, format_result, run_dispatch_bench
from gridflex.bench.dispatch.fleet import replicate_radial, replicated_sites
from gridflex.bench.dispatch.report import both_verdicts, targets
from gridflex.bench.dispatch.run import run_limited
from tests.unit.dispatch.helpers import feeder


@pytest.fixture(scope="module")
def result() -> DispatchBenchResult:
    # in-process (13 s instead of 78 s: every case in a child process imports pandapower
    # again); the child-process path is covered by the time-limit test below
    return run_dispatch_bench(
        steps=3, sizes=(12, 30), mpc_sites=8, mpc_steps=4, progress=False, time_limit_s=None
    )


def test_engine_and_rundcopp_agree(result: DispatchBenchResult) -> None:
    c = result.comparison
    assert c is not None  # the "rundcopp" part ran (all parts by default)
    assert c.n_sites == 319
    assert c.steps == 3
    assert c.rundcopp_failures == 0
    assert c.max_rel_obj_diff <= 1e-4
    assert c.station_limit_binding_steps == 3  # the network constraint is exercised
    for v in (c.engine_first_ms, c.engine_warm_ms, c.rundcopp_ms, c.ratio):
        assert math.isfinite(v) and v > 0


def test_sizes_and_mpc_have_every_figure(result: DispatchBenchResult) -> None:
    assert [(s.n_sites, s.network) for s in result.sizes] == [
        (12, "full LV network"),
        (30, "full LV network"),
        (12, "station-level network"),
        (30, "station-level network"),
    ]
    for s in result.sizes:
        assert s.skipped is None
        assert s.n_bat == math.ceil(s.n_sites / 2) and s.n_hp == math.ceil(s.n_sites / 3)
        assert s.n_cols > 0 and s.n_rows > 0 and s.warm_steps == 3
        assert s.build_ms is not None and s.first_solve_ms is not None and s.cold_ms is not None
        assert s.cold_ms == pytest.approx(s.build_ms + s.first_solve_ms)
        assert s.warm_ms is not None and s.warm_max_ms is not None and s.warm_ms <= s.warm_max_ms
        assert s.warm_cop_ms is not None and s.warm_cop_max_ms is not None
        # the same steps with the grid rows added lazily
        assert s.lazy_cold_ms is not None and s.lazy_warm_ms is not None and s.lazy_rows is not None
        # the same steps by area, answered without the full LP
        assert s.by_area_full_lp == 0 and s.by_area_cold_ms is not None and s.by_area_warm_ms is not None
        assert s.by_area_site_full_lp == 0 and s.by_area_site_warm_ms is not None
        # the same steps site by site: every one of the 4 certified here (no limit binds)
        assert (s.by_site_certified, s.by_site_steps) == (4, 4)
        assert s.by_site_cold_ms is not None and s.by_site_warm_ms is not None
    # the full LV network (631 buses > 300) is cut below the MV bus: one area per station
    # with sites (the first 12 households sit below one station, the first 30 below two);
    # the station-level network (5 buses) stays whole
    assert [s.areas for s in result.sizes] == [1, 2, 1, 1]
    assert [(m.network, m.solver, m.binding) for m in result.mpc] == [
        ("station-level network", "full LP", False),
        ("station-level network", "by area", False),
        ("station-level network", "by area, grid rows lazily", False),
        ("full LV network", "full LP", False),
        ("full LV network", "by area", False),
        ("full LV network", "by area, grid rows lazily", False),
        ("station-level network", "full LP", True),
        ("station-level network", "by area", True),
        ("station-level network", "by area, grid rows lazily", True),
        ("full LV network", "by area, grid rows lazily", True),
    ]
    for m in result.mpc:
        assert m.skipped is None and (m.n_sites, m.horizon) == (8, 4)
        assert m.build_s is not None and m.solve_s is not None and m.resolve_s is not None
        assert m.cold_s == pytest.approx(m.build_s + m.solve_s)
    station, station_by_area, station_lazy, full, full_by_area, full_lazy = result.mpc[:6]
    bound, bound_by_area, bound_lazy, bound_full_lv_lazy = result.mpc[6:]
    assert full.n_cols > station.n_cols and full.n_cols > result.sizes[0].n_cols
    assert station_by_area.by_area_certified and full_by_area.by_area_certified
    assert station_lazy.by_area_certified and full_lazy.by_area_certified
    assert station_lazy.lazy_rows is not None and station_by_area.lazy_rows is None
    # with the HV/MV threshold binding only the full LP is exact, and it answers (with lazy
    # rows from the areas' bases where few of the periods break it: test_lazy.py)
    assert bound.binding_periods and bound.binding_periods >= 1
    assert bound_by_area.binding_periods == bound.binding_periods == bound_lazy.binding_periods
    assert bound_by_area.by_area_certified is False and bound_lazy.by_area_certified is False
    assert not bound_by_area.full_from_areas  # never without lazy rows
    assert bound_full_lv_lazy.binding_periods and bound_full_lv_lazy.by_area_certified is False


def test_format_result_prints_figures_andtargets(result: DispatchBenchResult) -> None:
    text = format_result(result)
    for needle in (
        "rundcopp",
        "max objective difference",
        "12 buildings",
        "30 buildings",
        "MPC 8",
        "by area",
    ):
        assert needle in text
    assert "skipped" not in text


def test_replicated_grid_is_copies_under_one_root() -> None:
    g = feeder(4)
    big = replicate_radial(g, 3)
    assert (big.n_bus, big.n_branch) == (10, 9)
    assert sorted(int(c) for c, p in zip(big.child, big.parent, strict=True) if p == 0) == [1, 4, 7]
    load = np.zeros(big.n_bus)
    load[[3, 6, 9]] = [1.0, 2.0, 3.0]  # the end of each copy's chain
    flows = big.branch_flows_kw(load)
    assert list(flows[[0, 3, 6]]) == [1.0, 2.0, 3.0]
    grid, site_bus = replicated_sites(g, np.array([2, 3]), 5)
    assert grid.n_bus == 10 and list(site_bus) == [2, 3, 5, 6, 8]


def test_a_case_over_the_time_limit_is_recorded_as_skipped() -> None:
    g = feeder(3)
    figs, reason = run_limited("size", g, np.array([1, 2]), n=2, seed=0, time_limit_s=0.0)
    assert reason is not None and "limit" in reason
    assert figs == {}


def test_cold_and_warm_verdicts_are_judged_each_against_its_target() -> None:
    assert targets(20.0, 2.0) == "≤ 20 ms / ≤ 2 ms" and targets(250.0, None) == "≤ 250 ms / -"
    assert targets(None, None) == ""
    assert both_verdicts(4.5, 20.0, 1.0, 2.0) == "meets / meets"
    assert both_verdicts(30.0, 20.0, 2.4, 2.0) == "misses (1.5x) / misses (1.2x)"
    assert both_verdicts(28.0, 250.0, 27.0, None) == "meets / -"
    assert both_verdicts(1.0, None, 1.0, None) == ""
