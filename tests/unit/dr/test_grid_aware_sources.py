"""Heat-pump and fan sources from the sites' envelopes, and feeders from the congestion forecast.

Hand cases:
- heat pump: envelope band 19-24 °C, measured 1.5 kW, sustained bounds over the hour
  [0.3, 2.7] kW, setpoint now 21 °C → reduce 1.2 kW (setpoint to 19 °C), increase 1.2 kW
  (to 24 °C). A contract band 20-25 °C halves the reduction (21 → 20 of 21 → 19): 0.6 kW,
  and a 0.6 kW reduction commands 20.0 °C; 0.3 kW commands 20.5 °C.
- fan: 0.1 kW now, 0.8 kW at full speed, floor 0.0125 kW; a 0.0875 kW reduction leaves
  0.0125 kW = 0.8·s³ → s = 25 %.
- feeders: a station at 100 % limit, rating 400 kW (4 kW per %), p90 loading 110 % has no
  headroom for an increase (−40 kW → 0); one with p90 at 50 % has 200 kW.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.dr.activation import Actuation, actuation, interval_bounds, step_commands
from cloud_controller.dr.contracts import Contract
from cloud_controller.dr.feeders import UNCHECKED_KW, StationGrid, feeders_from_forecast, station_grid_of
from cloud_controller.dr.service import DrService
from cloud_controller.dr.zone_sources import fan_speeds_pct, setpoints_c, zone_sources
from cloud_controller.forecast.background import LatestForecast
from cloud_controller.forecast.result import ForecastOptions, ProbabilisticForecast
from cloud_controller.grid.radial import RadialGrid
from cloud_controller.live.planning_network import PlanningNetwork
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from edge_agent.config import load_config
from edge_agent.flex import asset_flex
from edge_agent.poller import Latest
from protocols.clock import SimClock
from protocols.messages import AssetFlex, DRRequest, FlexEnvelope, FlexInterval

OPERATOR = "operator-0123456789abcdef"
NOW = datetime(2030, 1, 15, 16, 0, tzinfo=UTC)
START, END = NOW + timedelta(hours=1), NOW + timedelta(hours=2)
HOUR = timedelta(hours=1)


def _contract(site: str, **kw: Any) -> Contract:
    base: dict[str, Any] = {
        "site": site,
        "program": "peak",
        "directions": frozenset({"reduce", "increase"}),
        "p_max_kw": 10.0,
        "events_per_day": 2,
        "max_duration": timedelta(hours=2),
        "comfort_t_min_c": 19.0,
        "comfort_t_max_c": 24.0,
    }
    base.update(kw)
    return Contract.model_validate(base)


def _envelope(site: str, entries: list[AssetFlex]) -> FlexEnvelope:
    return FlexEnvelope(site=site, ts=NOW, assets=entries)


def _iv(k: int, lo: float, hi: float) -> FlexInterval:
    """Interval k of the agent's horizon: bounds sustained from NOW to its end."""
    return FlexInterval(start=NOW + k * HOUR, end=NOW + (k + 1) * HOUR, p_min_kw=lo, p_max_kw=hi)


HP = AssetFlex(
    asset="hp",
    kind="hp",
    p_now_kw=1.5,
    t_min_c=19.0,
    t_max_c=24.0,
    intervals=[_iv(0, 0.1, 2.9), _iv(1, 0.3, 2.7), _iv(2, 0.5, 2.5)],
)
FAN = AssetFlex(asset="zone", kind="hvac", p_now_kw=0.1, intervals=[_iv(0, 0.0, 0.8), _iv(1, 0.0125, 0.8)])
HOUSE = SiteRef(
    "h", 0, (AssetRef("meter", "meter"), AssetRef("hp", "hp", p_nominal_kw=3.0), AssetRef("zone", "hvac"))
)
POINTS = {"zone/t_setpoint_c": 21.0, "zone/co2_ppm": 600.0}


def test_heatpump_caps_follow_the_envelope_and_the_contract_band() -> None:
    [hp] = zone_sources(_contract("h"), _envelope("h", [HP]), HOUSE, POINTS, end=END, n_steps=2)
    assert hp.command_asset == "zone" and hp.source.kind == "heatpump"
    assert list(hp.source.reduce_max_kw) == pytest.approx([1.2, 1.2])  # the 2-h bound: 1.5 − 0.3
    assert list(hp.source.increase_max_kw) == pytest.approx([1.2, 1.2])
    assert setpoints_c(hp, [-1.2, -0.6, 0.0, 1.2]) == [19.0, 20.0, 21.0, 24.0]
    [narrow] = zone_sources(
        _contract("h", comfort_t_min_c=20.0, comfort_t_max_c=25.0, directions=frozenset({"reduce"})),
        _envelope("h", [HP]),
        HOUSE,
        POINTS,
        end=END,
        n_steps=1,
    )
    assert list(narrow.source.reduce_max_kw) == pytest.approx([0.6])
    assert list(narrow.source.increase_max_kw) == [0.0]  # a direction the contract does not offer
    assert setpoints_c(narrow, [-0.6, -0.3]) == [20.0, 20.5]
    # no registered zone to write the setpoint to: no heat-pump source from the envelope
    bare = SiteRef("h", 0, (AssetRef("hp", "hp", p_nominal_kw=3.0),))
    assert zone_sources(_contract("h"), _envelope("h", [HP]), bare, POINTS, end=END, n_steps=1) == []


def test_fan_caps_and_speeds_from_the_cube_law() -> None:
    [fan] = zone_sources(_contract("h"), _envelope("h", [FAN]), HOUSE, POINTS, end=END, n_steps=1)
    assert fan.source.kind == "fan" and fan.command_asset == "zone"
    assert list(fan.source.reduce_max_kw) == pytest.approx([0.0875])
    assert list(fan.source.increase_max_kw) == pytest.approx([0.7])
    assert fan_speeds_pct(fan, [-0.0875, 0.0, 0.7]) == [25.0, 50.0, 100.0]
    # a contract limit of 800 ppm with 600 ppm now keeps (800 − 600)/(1000 − 600) of the reduction
    [tight] = zone_sources(
        _contract("h", co2_limit_ppm=800.0), _envelope("h", [FAN]), HOUSE, POINTS, end=END, n_steps=1
    )
    assert list(tight.source.reduce_max_kw) == pytest.approx([0.04375])


def _forecast(p90_pct: list[float]) -> LatestForecast:
    """Two stations, one interval of one hour from START: loading quantiles (p10, p50, p90) in %."""
    q = np.array([[[p - 20.0] for p in p90_pct], [[p - 10.0] for p in p90_pct], [[p] for p in p90_pct]])
    n = len(p90_pct)
    fc = ProbabilisticForecast(
        method="fast",
        n_scenarios=100,
        elements=tuple(f"trafo:{i}" for i in range(n)),
        names=tuple(f"T{i}" for i in range(n)),
        kinds=("transformer",) * n,
        limit_lo=np.full(n, -np.inf),
        limit_hi=np.full(n, 100.0),
        expected=q[1],
        quantiles=q,
        p_exceed=np.zeros((n, 1)),
        cdf=np.zeros((n, 1)),
        alerts=(),
        options=ForecastOptions(),
        compute_s=0.0,
    )
    return LatestForecast(fc, plan_at=START, period_s=3600.0, computed_at=NOW)


def test_feeder_headroom_is_the_limit_minus_p90_in_kw() -> None:
    grid = StationGrid(
        _forecast([110.0, 50.0]),
        {"trafo:0": frozenset({"x"}), "trafo:1": frozenset({"y", "z"})},
        {"trafo:0": 400.0, "trafo:1": 400.0},
    )
    bounds = [(START, START + HOUR), (START + HOUR, START + 2 * HOUR)]
    feeders, notes = feeders_from_forecast(grid, bounds, ["x", "y"])
    by = {f.name: f for f in feeders}
    assert list(by["T0"].increase_headroom_kw) == [pytest.approx(-40.0), UNCHECKED_KW]
    assert list(by["T1"].increase_headroom_kw) == [pytest.approx(200.0), UNCHECKED_KW]
    assert float(by["T0"].reduce_headroom_kw[0]) == pytest.approx((100.0 + 90.0) * 4.0)
    assert by["T1"].sites == frozenset({"y"})  # only the contracted sites below it
    assert notes == ["steps [1] beyond the congestion forecast: feeder limits not checked there"]
    assert feeders_from_forecast(StationGrid(None, grid.station_sites, {}), bounds, ["x"]) == (
        [],
        ["no congestion forecast yet: feeder limits not checked"],
    )


def test_a_site_below_a_station_without_headroom_is_skipped_for_an_increase(tmp_path: Path) -> None:
    dr = DrService(tmp_path / "dr.sqlite", clock=SimClock(NOW), contracts_file=None, step_minutes=60)
    for site in ("x", "y"):
        dr.contracts.put_contract(_contract(site, price_eur_per_kwh=0.1 if site == "x" else 0.2))
    grid = StationGrid(
        _forecast([110.0, 50.0]),
        {"trafo:0": frozenset({"x"}), "trafo:1": frozenset({"y"})},
        {"trafo:0": 400.0, "trafo:1": 400.0},
    )
    req = DRRequest(
        program="peak",
        ts=NOW,
        request_id="inc",
        start=START,
        end=END,
        direction="increase",
        p_kw=15.0,
        objective="min_cost",
    )
    record = dr.submit(req, {}, grid=grid)
    kw = {s["site"]: s["kw"] for s in record.selection["sources"]}
    assert kw["x"] == [0.0]  # x is the cheaper, but its station is over its limit at p90
    assert kw["y"] == [pytest.approx(10.0)]
    assert record.status == "partial" and record.selection["unmet_kw"] == [pytest.approx(5.0)]
    assert record.selection["sites"] == ["y"]
    # the same request without the grid takes both
    free = dr.submit(req.model_copy(update={"request_id": "inc2"}), {})
    assert {s["site"]: s["kw"] for s in free.selection["sources"]} == {
        "x": [pytest.approx(10.0)],
        "y": [pytest.approx(5.0)],
    }
    dr.close()


def test_a_request_on_a_site_with_only_a_heat_pump_commands_its_zone_setpoint(tmp_path: Path) -> None:
    (tmp_path / "op").write_text(OPERATOR, encoding="utf-8")
    (tmp_path / "contracts.yaml").write_text(
        "contracts:\n  - {site: h, program: peak, directions: [reduce], p_max_kw: 5, events_per_day: 1,\n"
        "     max_duration: PT2H, comfort_t_min_c: 19, comfort_t_max_c: 24}\n",
        encoding="utf-8",
    )
    cfg = CloudConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "s.sqlite")},
            "api": {"operator_token_file": str(tmp_path / "op")},
            "dr": {"contracts": str(tmp_path / "contracts.yaml")},
        }
    )
    ctl = CloudController(cfg, Registry(sites=(HOUSE,)), clock=SimClock(NOW))
    ctl.snapshots["h"] = SiteSnapshot(
        site="h", mode="online", p_net_kw=2.0, points=dict(POINTS), flex=_envelope("h", [HP])
    )
    body = {
        "program": "peak",
        "ts": NOW.isoformat(),
        "request_id": "hp1",
        "start": START.isoformat(),
        "end": END.isoformat(),
        "direction": "reduce",
        "p_kw": 0.6,
    }
    with TestClient(create_app(ctl), headers={"Authorization": f"Bearer {OPERATOR}"}) as http:
        posted = http.post("/dr/requests", json=body)
        assert posted.status_code == 201, posted.text
        [src] = posted.json()["selection"]["sources"]
        run = ctl.dr.requests.get_run("hp1")
    ctl.store.close()
    ctl.dr.close()
    assert posted.json()["status"] == "selected"
    assert (src["kind"], src["asset"], src["command_asset"]) == ("heatpump", "hp", "zone")
    assert src["kw"] == [pytest.approx(-0.6)] * 4 and src["t_setpoint_c"] == [20.0] * 4  # 15-min steps
    assert run is not None and run["not_commandable"] == []
    [act] = [Actuation.from_json(a) for a in run["actuations"]]
    first = interval_bounds(START, END, 4)[0]
    [cmd] = step_commands(NOW, "hp1", 0, first, [act], {})
    assert (cmd.asset, cmd.kind, cmd.value, cmd.request_id) == ("zone", "t_setpoint_c", 20.0, "hp1")
    assert (cmd.valid_from, cmd.valid_until) == first


def test_the_planners_stations_and_ratings_feed_the_rows() -> None:
    grid = RadialGrid(
        bus_ids=np.array([0, 1, 2]),
        root=0,
        parent=np.array([0, 1]),
        child=np.array([1, 2]),
        rating_kw=np.array([400.0, 250.0]),
        r_pu_per_kw=np.zeros(2),
        branch_names=("trafo:0", "line:0"),
        v_root_pu=1.0,
        v_min_pu=np.full(3, 0.9),
        v_max_pu=np.full(3, 1.1),
    )
    planning = PlanningNetwork(grid, np.array([2]), "radial", "a tree", {"trafo:0": frozenset({"x"})})
    latest = _forecast([110.0])
    got = station_grid_of(SimpleNamespace(planning=planning), latest)
    assert got == StationGrid(latest, {"trafo:0": frozenset({"x"})}, {"trafo:0": 400.0, "line:0": 250.0})
    assert station_grid_of(None, latest) is None  # no planner built yet: no rows


def test_the_edges_own_envelopes_become_sources_that_hold_the_zone_at_zero_kw(tmp_path: Path) -> None:
    """The edge's `asset_flex` on the simulated zone's parameters, read by the cloud: 0 kW keeps today's values."""
    bms = [
        ("zone_t_c", "analogInput:1", False),
        ("co2_ppm", "analogInput:2", False),
        ("outdoor_t_c", "analogInput:3", False),
        ("t_setpoint_c", "analogValue:1", True),
        ("fan_pct", "analogValue:2", True),
    ]
    doc = {
        "site": "h",
        "buffer": {"path": str(tmp_path / "b.sqlite")},
        "devices": [{"id": "bms", "driver": "bacnet", "address": "127.0.0.1:47809", "device_id": 7}],
        "assets": [
            {
                "id": "zone",
                "kind": "hvac",
                "points": [{"name": n, "device": "bms", "object": o, "writable": w} for n, o, w in bms],
                "controls": {
                    "t_setpoint_c": {"point": "t_setpoint_c"},
                    "fan_speed_pct": {"point": "fan_pct"},
                },
                "comfort": {"t_min_c": 20, "t_max_c": 24},
                "model": {
                    "r_k_per_kw": 5.0,
                    "c_kwh_per_k": 8.0,
                    "gains_kw": 0.3,
                    "volume_m3": 300.0,
                    "co2_gen_m3_h": 0.054,
                    "fan_flow_max_m3_h": 450.0,
                    "fan_p_max_kw": 0.25,
                },
            },
            {
                "id": "hp",
                "kind": "hp",
                "p_nominal_kw": 9.0,
                "points": [{"name": "p_kw", "device": "bms", "object": "analogInput:4"}],
                "model": {"cop": 3.0},
            },
        ],
    }
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(doc))
    site = load_config(tmp_path / "site.yaml")
    values = {"zone.zone_t_c": 21.0, "zone.co2_ppm": 600.0, "zone.outdoor_t_c": 0.0, "zone.fan_pct": 40.0}
    latest = {k: Latest(v, "good", NOW, 0.0) for k, v in {**values, "hp.p_kw": 1.3}.items()}
    envelope = _envelope("h", [asset_flex(site.asset(a), latest, NOW, site) for a in ("zone", "hp")])
    points = {k.replace(".", "/"): v for k, v in values.items()}
    by = {
        z.source.kind: z
        for z in zone_sources(
            _contract("h", comfort_t_min_c=20.0), envelope, HOUSE, points, end=END, n_steps=1
        )
    }
    hp, fan = by["heatpump"], by["fan"]
    assert hp.command_asset == "zone" and setpoints_c(hp, [0.0]) == [21.0]  # the zone's temperature now
    assert float(hp.source.reduce_max_kw[0]) > 0.0 and float(hp.source.increase_max_kw[0]) > 0.0
    assert fan_speeds_pct(fan, [0.0]) == [40.0]  # the cube law inverts the edge's own fan power
    assert float(fan.source.reduce_max_kw[0]) == pytest.approx(
        0.25 * 0.4**3, abs=1e-3
    )  # 2 h: the fan may stop


def test_a_zone_selected_for_its_heat_pump_and_its_fan_gets_two_commands(tmp_path: Path) -> None:
    """One zone, two BMS writes in one step: distinct ids, so the agent takes both (neither is a replay)."""
    dr = DrService(tmp_path / "dr.sqlite", clock=SimClock(NOW), contracts_file=None, step_minutes=60)
    dr.contracts.put_contract(_contract("h", directions=frozenset({"reduce"})))
    snap = SiteSnapshot(site="h", mode="online", points=dict(POINTS), flex=_envelope("h", [HP, FAN]))
    req = DRRequest(
        program="peak", ts=NOW, request_id="both", start=START, end=END, direction="reduce", p_kw=5.0
    )
    record = dr.submit(req, {"h": snap}, sites={"h": HOUSE})
    dr.close()
    by = {s["kind"]: s for s in record.selection["sources"]}
    assert by["heatpump"]["kw"] == [pytest.approx(-1.2)] and by["heatpump"]["t_setpoint_c"] == [19.0]
    assert by["fan"]["kw"] == [pytest.approx(-0.0875)] and by["fan"]["fan_speed_pct"] == [25.0]
    assert record.status == "partial"  # 5 kW asked, 1.2875 kW in the zone
    acts = [actuation(s, HOUSE, POINTS) for s in record.selection["sources"]]
    assert all(isinstance(a, Actuation) for a in acts)
    cmds = step_commands(NOW, "both", 0, (START, END), [a for a in acts if isinstance(a, Actuation)], {})
    assert sorted((c.asset, c.kind, c.value, c.cmd_id) for c in cmds) == [
        ("zone", "fan_speed_pct", 25.0, "dr-both-0-h-zone-fan"),
        ("zone", "t_setpoint_c", 19.0, "dr-both-0-h-zone-sp"),
    ]
