"""The planner and the fleet guard hold a metered station against its whole load, not the fleet's part.

Station T_idx_118 (630 kVA) carries four fleet households (9 kW each, a 5 kW / 10 kWh battery
each) and, as its meter's stored history and reading say, 600 kW of households outside the
fleet. The fleet alone (36 kW) is far under the rating; the total (636 kW) is over it, and the
plan discharges the batteries so that flow + background stays within the rating.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud_controller.forecast.result import ForecastOptions
from cloud_controller.grid import Region
from cloud_controller.live.planner import MpcPlanner, build_planner
from cloud_controller.live.types import AssetRef, GridMeterRef, SiteRef, SiteSnapshot
from cloud_controller.web.views import grid_loading
from protocols.assets import substation_site_id
from tests.unit.grid.test_limits import cached_region

NOW = datetime(2030, 1, 15, 17, tzinfo=UTC)
STATION = "T_idx_118"  # region sites 0..55 sit below it
METER = substation_site_id(STATION)
RATING_KVA = 630.0
FLEET_KW = 9.0
BACKGROUND_KW = 600.0
SITES = [
    SiteRef(f"b{i}", i, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0)))
    for i in range(4)
] + [SiteRef("b22", 22, (AssetRef("meter", "meter"),))]  # below T_idx_80, which has no meter


class _History:
    """Two days of 15-min readings: each site at its load, the station meter at the station's total."""

    def __init__(self) -> None:
        start = NOW - timedelta(days=2)
        ts = [start + timedelta(minutes=15 * k) for k in range(2 * 96)]
        self.series = {f"b{i}": FLEET_KW for i in range(4)} | {
            "b22": 3.0,
            METER: BACKGROUND_KW + 4 * FLEET_KW,
        }
        self.ts = ts

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        if (asset, point) != ("meter", "p_kw") or site not in self.series:
            return []
        return [(t, self.series[site]) for t in self.ts if start <= t < end]


@pytest.fixture(scope="module")
def region() -> Region:
    return cached_region()


def _planner(region: Region) -> MpcPlanner:
    return build_planner(region, SITES, period_s=900, horizon_steps=8, margin_s=60, station_limit_kw=None)


def _snaps(at: datetime, p_kw: float = FLEET_KW) -> dict[str, SiteSnapshot]:
    return {
        s.site: SiteSnapshot(
            site=s.site,
            mode="online",
            p_net_kw=p_kw if s.site != "b22" else 3.0,
            points={"bat1/soc_pct": 50.0, "bat1/p_kw": 0.0},
            last_seen=at,
            measured_at=at,
        )
        for s in SITES
    }


def _meter(at: datetime, p_kw: float) -> dict[str, SiteSnapshot]:
    points = {"meter/p_kw": p_kw, "meter/q_kvar": 0.0}
    return {METER: SiteSnapshot(METER, "online", p_kw, points, last_seen=at, measured_at=at)}


def test_a_station_under_its_rating_by_the_fleet_but_over_it_in_total_is_relieved(region: Region) -> None:
    planner = _planner(region)
    k = planner.problem.grid.branch_names.index(region.grid.branch_names[region.station_branch[STATION]])
    blind = planner.plan(NOW, _snaps(NOW), _History())  # no grid meter given: the fleet alone
    assert blind.station_background == {} and blind.violations == []
    assert planner.last_schedule is not None
    assert planner.last_schedule.branch_flow_kw[:, k].max() == pytest.approx(4 * FLEET_KW, abs=1e-6)

    planner = _planner(region)
    planner.observe_meters([GridMeterRef(METER, STATION)], _meter(NOW, BACKGROUND_KW + 4 * FLEET_KW))
    plan = planner.plan(NOW, _snaps(NOW), _History())
    schedule = planner.last_schedule
    assert schedule is not None
    bg = plan.station_background[STATION]
    assert (bg.method, bg.measured.status, bg.measured.background_kw) == (
        "seasonal",
        "measured",
        BACKGROUND_KW,
    )
    assert bg.p50_kw == pytest.approx(np.full(8, BACKGROUND_KW))
    flow = schedule.branch_flow_kw[:, k]  # the station's flow: the fleet's and the background
    assert (flow <= RATING_KVA + 1e-6).all()  # Q measured 0: the whole kVA rating in kW
    fleet_flow = flow - BACKGROUND_KW
    assert (fleet_flow <= RATING_KVA - BACKGROUND_KW + 1e-6).all()  # 30 kW for 36 kW of load
    assert (schedule.p_bat_kw[:, :4].sum(axis=1) <= -(4 * FLEET_KW - 30.0) + 1e-6).all()
    assert plan.violations == []
    assert plan.root_baseline_kw[0] == pytest.approx(4 * FLEET_KW + 3.0 + BACKGROUND_KW)
    # the guard watches the station on its measured total: 600 kW outside the fleet
    assert planner.guard is not None
    el = {e.name: e for e in planner.guard.elements}[STATION]
    assert el.background_kw == pytest.approx(BACKGROUND_KW) and el.limit_kw == pytest.approx(RATING_KVA)
    assert planner.guard.fleet_background_kw == 0.0  # the HV/MV element: the fleet's sum (docs/grid.md)


def test_the_guard_relieves_a_station_whose_meter_rises_between_plans(region: Region) -> None:
    planner = _planner(region)
    planner.observe_meters([GridMeterRef(METER, STATION)], _meter(NOW, BACKGROUND_KW + 4 * FLEET_KW))
    planner.plan(NOW, _snaps(NOW), _History())
    t1 = NOW + timedelta(minutes=5)
    # the fleet's sites still read 9 kW (their batteries have not moved yet); the station meter
    # says 720 kW: 84 kW more outside the fleet, smoothed over 5 min (τ 300 s): 53 kW of it
    planner.observe_meters([GridMeterRef(METER, STATION)], _meter(t1, 720.0))
    commands = planner.correct(t1, _snaps(t1))
    assert planner.guard is not None
    el = {e.name: e for e in planner.guard.elements}[STATION]
    assert el.background_kw == pytest.approx(BACKGROUND_KW + (1 - math.exp(-1.0)) * 84.0)
    by_site = {c.site: c for c in commands}
    assert set(by_site) == {"b0", "b1", "b2", "b3"}  # the station's own batteries, not b22's station
    assert all(c.kind == "p_setpoint_kw" and c.value == pytest.approx(-5.0) for c in by_site.values())


def test_the_probabilistic_forecast_loads_the_station_with_its_households_outside_the_fleet(
    region: Region,
) -> None:
    planner = _planner(region)
    planner.observe_meters([GridMeterRef(METER, STATION)], _meter(NOW, BACKGROUND_KW + 4 * FLEET_KW))
    plan = planner.plan(NOW, _snaps(NOW), _History())
    homes = planner.stations.households_kw(plan.station_background)
    assert homes is not None
    below = [h for h, st in enumerate(region.site_station) if st == STATION and h not in range(4)]
    assert homes[0].sum() == pytest.approx(BACKGROUND_KW)  # the background, all of it, on them
    assert homes[0, below] == pytest.approx(np.full(len(below), BACKGROUND_KW / len(below)))
    fc = planner.probabilistic_forecast(plan, ForecastOptions(n_scenarios=10))
    e = fc.names.index(STATION)
    # the uncontrolled forecast of 636 kW (AC: with the loads' reactive power and the losses)
    assert fc.expected[e, 0] > 100.0 and fc.p_exceed[e, 0] > 0.9
    blind = _planner(region)
    fc0 = blind.probabilistic_forecast(
        blind.plan(NOW, _snaps(NOW), _History()), ForecastOptions(n_scenarios=10)
    )
    assert fc0.expected[e, 0] < 10.0  # the fleet's 36 kW alone


def test_the_grid_loading_view_shows_each_metered_station_background(region: Region) -> None:
    planner = _planner(region)
    planner.observe_meters([GridMeterRef(METER, STATION)], _meter(NOW, BACKGROUND_KW + 4 * FLEET_KW))
    view = grid_loading(planner.plan(NOW, _snaps(NOW), _History()), 900.0, None)
    (row,) = view["station_background"]
    assert (row["station"], row["method"], row["status"]) == (STATION, "seasonal", "measured")
    assert row["measured_kw"] == BACKGROUND_KW and row["fleet_kw"] == 4 * FLEET_KW
    assert row["p50_kw"] == [BACKGROUND_KW] * 8
    assert grid_loading(None, 900.0, None)["station_background"] == []


def test_the_forecast_holds_the_hvmv_threshold_against_the_fleet_and_the_backgrounds(region: Region) -> None:
    planner = build_planner(
        region, SITES, period_s=900, horizon_steps=8, margin_s=60, station_limit_kw=1000.0
    )
    planner.observe_meters([GridMeterRef(METER, STATION)], _meter(NOW, BACKGROUND_KW + 4 * FLEET_KW))
    plan = planner.plan(NOW, _snaps(NOW), _History())
    assert plan.root_baseline_kw[0] == pytest.approx(4 * FLEET_KW + 3.0 + BACKGROUND_KW)
    fc = planner.probabilistic_forecast(plan, ForecastOptions(n_scenarios=10))
    e = fc.kinds.index("fleet_limit")
    assert fc.expected[e, 0] == pytest.approx(100.0 * (4 * FLEET_KW + 3.0 + BACKGROUND_KW) / 1000.0, abs=0.5)


def test_the_probabilistic_forecast_judges_a_station_against_the_dsos_envelope(region: Region) -> None:
    """An operator's envelope (PUT /grid/limits) caps the station in its intervals: the forecast says so."""
    from cloud_controller.config import EnvelopeConfig

    planner = _planner(region)
    cap_from = NOW + timedelta(minutes=30)
    planner.limits_book.set_operator(
        [EnvelopeConfig(element=STATION, start=cap_from, until=cap_from + timedelta(hours=1), max_kw=30.0)]
    )
    plan = planner.plan(NOW, _snaps(NOW), _History())
    fc = planner.probabilistic_forecast(plan, ForecastOptions(n_scenarios=10))
    e = fc.names.index(STATION)
    assert fc.limit_hi[e] == pytest.approx(
        100.0 * 30.0 / 630.0
    )  # 30 of 630 kVA, the tightest over the horizon
    # the fleet's 36 kW alone: under the net's 100 % before and after, over the envelope's 30 kW in it
    assert np.all(fc.p_exceed[e, :2] == 0.0) and np.all(fc.p_exceed[e, 6:] == 0.0)
    assert np.all(fc.p_exceed[e, 2:6] == 1.0)  # 17:30-18:30, four intervals
    assert any(a.element == fc.elements[e] for a in fc.alerts)
