"""The live planner on a meshed region with two feeding points: DC flows, a binding line, the basis kept."""

from __future__ import annotations

import copy
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud_controller.dispatch import LP
from cloud_controller.grid import Region, region_from_json
from cloud_controller.grid.meshed.planning import DcGrid, meshed_region
from cloud_controller.live.planner import MpcPlanner, build_planner
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
from protocols.errors import ConfigError
from tests.unit.grid.meshed.nets import loop_two_feeds

NOW = datetime(2030, 1, 15, 17, tzinfo=UTC)
LIMIT_PCT = 0.15  # line L01 (bus 0 - bus 1): 0.1 kA at 20 kV = 3,464 kW, here 5.2 kW
FLOW_TOL_KW = 0.1  # 1e-4 MW


class _History:
    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        return []


#: the region's six households, each with a 5 kW / 10 kWh battery
SITES = [
    SiteRef(f"h{i}", i, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0)))
    for i in range(6)
]


def _net() -> Any:
    return loop_two_feeds(site_p_mw=0.005, limit_pct=LIMIT_PCT)


@pytest.fixture(scope="module")
def region() -> Region:
    return meshed_region(_net())


def _snaps(p_kw: float = 9.0) -> dict[str, SiteSnapshot]:
    return {
        s.site: SiteSnapshot(site=s.site, mode="online", p_net_kw=p_kw, points={"bat1/soc_pct": 50.0})
        for s in SITES
    }


@pytest.fixture(scope="module")
def planned(region: Region) -> MpcPlanner:
    planner = build_planner(region, SITES, period_s=900, horizon_steps=8, margin_s=60, station_limit_kw=None)
    planner.plan(NOW, _snaps(), _History())
    return planner


def _rundcpp_flows_kw(region: Region, planner: MpcPlanner, t: int) -> np.ndarray:
    """pandapower's DC power flow of step t's planned injections: sites as loads, feed B as an sgen."""
    import pandapower as pp

    s = planner.last_schedule
    assert s is not None
    net = copy.deepcopy(region.net)
    for i, site in enumerate(SITES):
        net.load.loc[int(region.site_load_idx[site.region_site]), "p_mw"] = s.p_site_kw[t, i] / 1000.0
    grid = planner.problem.grid
    assert isinstance(grid, DcGrid)
    (feed,) = grid.feed_names
    eg = int(feed.split(":")[1])
    net.ext_grid.loc[eg, "in_service"] = False
    pp.create_sgen(net, int(net.ext_grid.bus.at[eg]), p_mw=-s.p_unit_kw[t, 0] / 1000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.rundcpp(net)
    by_name = {f"line:{k}": float(v) * 1000.0 for k, v in net.res_line.p_from_mw.items()}
    return np.asarray([by_name[n] for n in grid.branch_names])


def test_a_meshed_region_is_planned_on_its_dc_network_with_both_feeding_points(
    region: Region, planned: MpcPlanner
) -> None:
    assert planned.planning.engine == "meshed"
    assert planned.planning.reason == "meshed: 2 loop(s)"
    grid = planned.problem.grid
    assert isinstance(grid, DcGrid)
    assert (grid.root_name, grid.feed_names) == ("ext_grid:0", ("ext_grid:1",))
    assert planned.problem.meshed and planned.problem.n_units == 1
    assert planned.last_answer is not None and planned.last_answer.route == LP
    s = planned.last_schedule
    assert s is not None
    # at 17:00 (the batteries cannot cover it all) both feeds import: the cheap one (A) as
    # much as line L01 lets through, the dear one (B) the rest; neither ever exports
    assert s.p_root_kw[0] > 1.0 and s.p_unit_kw[0, 0] < -1.0
    assert (s.p_root_kw > -1e-6).all() and (s.p_unit_kw[:, 0] < 1e-6).all()
    # the power balance: both feeds' import is the sites' planned load (lossless DC)
    np.testing.assert_allclose(s.p_root_kw - s.p_unit_kw[:, 0], s.p_site_kw.sum(axis=1), atol=1e-6)


def test_the_planned_flows_equal_pandapowers_dc_power_flow_in_every_step(
    region: Region, planned: MpcPlanner
) -> None:
    s = planned.last_schedule
    assert s is not None
    for t in range(planned.horizon):
        np.testing.assert_allclose(
            s.branch_flow_kw[t], _rundcpp_flows_kw(region, planned, t), atol=FLOW_TOL_KW
        )


def test_the_line_limit_binds_and_holds_in_every_step(region: Region, planned: MpcPlanner) -> None:
    s = planned.last_schedule
    assert s is not None
    k = planned.problem.grid.branch_names.index("line:0")
    rating = 3464.1016 * LIMIT_PCT / 100.0
    assert planned.problem.grid.rating_kw[k] == pytest.approx(rating, rel=1e-6)
    flow = np.abs(s.branch_flow_kw[:, k])
    assert (flow <= rating + 1e-6).all()
    assert flow[0] == pytest.approx(rating, abs=1e-6)  # binding where feed B had to help
    assert np.all(np.abs(s.branch_flow_kw) <= planned.problem.grid.rating_kw + 1e-6)
    assert s.violations == []


def test_the_next_period_re_plans_warm_from_the_last_basis(region: Region) -> None:
    planner = build_planner(region, SITES, period_s=900, horizon_steps=8, margin_s=60, station_limit_kw=None)
    planner.plan(NOW, _snaps(9.0), _History())
    h = planner.engine.h  # type: ignore[attr-defined]
    # after the cold plan (presolve + interior point): no presolve, simplex from the basis
    assert (h.getOptionValue("presolve")[1], h.getOptionValue("solver")[1]) == ("off", "simplex")
    n_rows = int(h.getNumRow())
    planner.plan(NOW + timedelta(minutes=15), _snaps(7.5), _History())
    assert 0 < h.getInfo().simplex_iteration_count < n_rows // 10  # a few pivots, not a cold solve
    planner.plan(NOW + timedelta(minutes=15), _snaps(7.5), _History())
    assert h.getInfo().simplex_iteration_count == 0  # the same inputs: the basis is optimal as it is


def test_a_station_limit_holds_the_import_of_both_feeding_points(region: Region) -> None:
    planner = build_planner(region, SITES, period_s=900, horizon_steps=8, margin_s=60, station_limit_kw=20.0)
    plan = planner.plan(NOW, _snaps(), _History())
    s = planner.last_schedule
    assert s is not None
    total = s.p_root_kw - s.p_unit_kw[:, 0]  # both feeds' import
    np.testing.assert_allclose(total, plan.root_planned_kw, atol=1e-6)
    # 17:00: six sites at 9 kW measured, every battery at its 5 kW, still 4 kW over
    assert plan.root_baseline_kw[0] == pytest.approx(54.0, abs=1e-6)
    assert total[0] == pytest.approx(24.0, abs=1e-6)
    assert (total[1:] <= 20.0 + 1e-6).all()  # then the limit holds
    assert total[1] == pytest.approx(20.0, abs=1e-6)  # and binds


def test_a_meshed_json_becomes_a_dc_region_and_refuses_an_hvmv_transformer(tmp_path: Path) -> None:
    import pandapower as pp

    path = tmp_path / "loop.json"
    pp.to_json(_net(), str(path))
    region = region_from_json(str(path))
    assert isinstance(region.grid, DcGrid) and region.n_sites == 6
    assert region.site_names == tuple(f"site{i}" for i in range(6))
    with pytest.raises(ConfigError, match="hvmv_trafo_name"):
        region_from_json(str(path), hvmv_trafo_name="HV/MV")


@pytest.mark.slow
def test_mv_oberrhein_with_its_loops_closed_is_planned_within_every_line() -> None:
    import pandapower.networks as pn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = pn.mv_oberrhein()
    net.switch["closed"] = True
    region = meshed_region(net)
    sites = [
        SiteRef(f"s{i}", i, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0)))
        for i in range(0, region.n_sites, 3)
    ]
    planner = build_planner(region, sites, period_s=900, horizon_steps=8, margin_s=60, station_limit_kw=None)
    snaps = {
        s.site: SiteSnapshot(site=s.site, mode="online", p_net_kw=9.0, points={"bat1/soc_pct": 50.0})
        for s in sites
    }
    plan = planner.plan(NOW, snaps, _History())
    assert (planner.planning.engine, planner.planning.reason) == ("meshed", "meshed: 5 loop(s)")
    s = planner.last_schedule
    assert s is not None
    grid = planner.problem.grid
    assert isinstance(grid, DcGrid) and grid.feed_names == ("ext_grid:1",)
    # flows: the DC power flow of the planned injections on the same grid
    on_bus = np.zeros((len(sites), grid.n_bus))
    on_bus[np.arange(len(sites)), planner.planning.site_bus] = 1.0
    inj = -s.p_site_kw @ on_bus
    inj[:, grid.root] += s.p_root_kw
    inj[:, grid.feed_bus[0]] -= s.p_unit_kw[:, 0]
    for t in range(planner.horizon):
        np.testing.assert_allclose(s.branch_flow_kw[t], grid.dc_flows_kw(inj[t]), atol=FLOW_TOL_KW)
    assert plan.violations == []


def test_the_dashboard_draws_a_dc_region_along_a_spanning_tree(region: Region) -> None:
    from cloud_controller.web.network import network_drawing

    drawing = network_drawing(region)  # the ring has no geodata: the generated layout
    assert drawing["source"] == "generated"
    xs = [x for group in drawing["lines"] for x in group["x"] if x is not None]
    assert len(xs) == 2 * region.grid.n_branch == 2 * drawing["n_lines"]  # every line, the loops' too
    assert (
        len({(x, y) for g in drawing["lines"] for x, y in zip(g["x"], g["y"], strict=True)} - {(None, None)})
        == 6
    )


def test_what_the_plan_cannot_relieve_is_reported_by_line_name(region: Region) -> None:
    from cloud_controller.config import CloudConfig

    # bus 2 (sites 1 and 2, 9 kW each, 10 kW of batteries) is reached by L12 and L23 only
    limits = CloudConfig.model_validate(
        {"grid": {"limits": {"L12": {"max_kw": 2.0}, "L23": {"max_kw": 2.0}}}}
    ).grid
    planner = build_planner(
        region, SITES, period_s=900, horizon_steps=8, margin_s=60, station_limit_kw=None, grid_limits=limits
    )
    plan = planner.plan(NOW, _snaps(), _History())
    s = planner.last_schedule
    assert s is not None
    assert plan.violations and {v.kind for v in plan.violations} == {"line_loading"}
    assert {v.element for v in plan.violations} <= {"L12", "L23"}
    assert min(v.start for v in plan.violations) == NOW  # 17:00: 2 x 9 kW against 2 x 5 kW of batteries
    k = {
        "L12": planner.problem.grid.branch_names.index("line:1"),
        "L23": planner.problem.grid.branch_names.index("line:2"),
    }
    for v in plan.violations:  # each names its line with the planned flow over its 2 kW
        t = int((v.start - NOW).total_seconds() // 900)
        assert v.limit == 2.0
        assert v.value == pytest.approx(abs(s.branch_flow_kw[t, k[v.element]]), abs=1e-9)
        assert v.value > 2.0
    # what the two lines bring is what bus 2's sites draw beyond their batteries
    assert s.branch_flow_kw[0, k["L12"]] - s.branch_flow_kw[0, k["L23"]] == pytest.approx(
        s.p_site_kw[0, 1] + s.p_site_kw[0, 2], abs=1e-6
    )
