"""The live planner plans within a DSO envelope on an MV/LV station, and names what it cannot relieve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.grid import Region
from cloud_controller.live.planner import MpcPlanner, build_planner
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
from tests.unit.grid.test_limits import cached_region

NOW = datetime(2030, 1, 15, 17, tzinfo=UTC)
STATION = "T_idx_118"  # region sites 0..55 sit below it


class _History:
    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        return []


#: four households below T_idx_118 with a 5 kW / 10 kWh battery each, one below T_idx_80
SITES = [
    SiteRef(f"b{i}", i, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0)))
    for i in range(4)
] + [SiteRef("b22", 22, (AssetRef("meter", "meter"),))]


@pytest.fixture(scope="module")
def region() -> Region:
    return cached_region()


def _planner(region: Region, envelope_kw: float) -> MpcPlanner:
    grid = CloudConfig.model_validate(
        {
            "grid": {
                "envelopes": [
                    {
                        "element": STATION,
                        "from": (NOW + timedelta(minutes=30)).isoformat(),
                        "until": (NOW + timedelta(minutes=60)).isoformat(),
                        "max_kw": envelope_kw,
                    }
                ]
            }
        }
    ).grid
    return build_planner(
        region, SITES, period_s=900, horizon_steps=8, margin_s=60, station_limit_kw=None, grid_limits=grid
    )


def _snaps() -> dict[str, SiteSnapshot]:
    return {
        s.site: SiteSnapshot(site=s.site, mode="online", p_net_kw=9.0, points={"bat1/soc_pct": 50.0})
        for s in SITES
    }


def test_the_plan_keeps_the_station_under_its_envelope_in_its_intervals_only(region: Region) -> None:
    planner = _planner(region, envelope_kw=12.0)
    k = planner.problem.grid.branch_names.index(region.grid.branch_names[region.station_branch[STATION]])
    plan = planner.plan(NOW, _snaps(), _History())
    schedule = planner.last_schedule
    assert schedule is not None
    flow = schedule.branch_flow_kw[:, k]
    base = np.asarray(plan.site_forecast_kw)[:, :4].sum(axis=1)  # the station's four sites uncontrolled
    assert (base[2:4] > 16.0).all()  # 21.8 and 17.0 kW forecast in 17:30-18:00
    assert (flow[2:4] <= 12.0 + 1e-6).all()  # planned within the envelope
    assert flow[0] > 12.0 + 1.0  # outside it the station may carry more
    assert plan.violations == []
    # the station's batteries discharge in the envelope's intervals
    assert (schedule.p_bat_kw[2:4].sum(axis=1) < -4.0).all()
    # the fleet guard watches the station by name, at its limit now (no envelope yet at 17:00)
    assert planner.guard is not None
    by_name = {e.name: e for e in planner.guard.elements}
    assert by_name[STATION].sites == frozenset({"b0", "b1", "b2", "b3"})
    assert by_name[STATION].limit_kw == pytest.approx(630.0)
    assert by_name["T_idx_80"].sites == frozenset({"b22"})


def test_an_envelope_the_fleet_cannot_meet_is_reported_by_name(region: Region) -> None:
    planner = _planner(region, envelope_kw=1.0)  # 4 x 5 kW of batteries bring 21.8 kW to 1.8, not 1
    plan = planner.plan(NOW, _snaps(), _History())
    base = np.asarray(plan.site_forecast_kw)[:, :4].sum(axis=1)
    (v,) = plan.violations  # 17:45 (17.0 kW) they can meet
    assert (v.element, v.kind, v.start, v.limit, v.unit) == (
        STATION,
        "trafo_loading",
        NOW + timedelta(minutes=30),
        1.0,
        "kW",
    )
    assert v.value == pytest.approx(base[2] - 4 * 5.0, abs=1e-6)
