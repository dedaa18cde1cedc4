"""A station meter's readings reach the plan through the real service: Mosquitto, ingest, the MpcPlanner.

Station S1 (0.4 MVA, held at 60 kW by a `grid.limits` override: the small region's one
household outside the fleet stands for many) feeds the fleet's one site b001 (30 kW, a 10 kW
battery) and household h2 outside the fleet. S1's meter (`sub-s1`, a registered grid meter)
reads 65 kW: 35 kW are not the fleet's. The fleet alone is far under the limit; the total is
5 kW over it, and the plan discharges b001's battery so that the station's flow (fleet +
background) is within it. The fleet guard watches S1 on the measured total, and `/grid/state`
gives h2 the background.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud_controller.config import CloudConfig
from cloud_controller.live.planner import build_planner
from cloud_controller.registry import load_registry
from cloud_controller.service import CloudController
from cloud_controller.web.grid_state_api import grid_state_router
from gridflex.ops.broker import MosquittoBroker
from protocols.clock import RealClock
from protocols.codec import encode
from protocols.messages import Sample, SiteState, TelemetryBatch
from protocols.topics import site_topic
from tests.integration.two_stations import two_station_region

pytestmark = pytest.mark.integration

B001_KW = 30.0
METER_KW = 65.0
LIMIT_KW = 60.0


async def _until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _batch(site: str, now: datetime, points: dict[str, float]) -> bytes:
    samples = [
        Sample(asset=key.split("/")[0], point=key.split("/")[1], ts=now, seq=i, value=v, unit="")
        for i, (key, v) in enumerate(points.items())
    ]
    return encode(TelemetryBatch(site=site, ts=now, samples=samples))


async def test_a_station_meter_reading_makes_the_plan_relieve_the_station(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    region = two_station_region(tmp_path, (B001_KW, 20.0, 5.0))
    (tmp_path / "registry.yaml").write_text(
        "sites:\n  - {site: b001, region_site: 0, assets: [{asset: meter, kind: meter},"
        " {asset: battery, kind: battery, p_nominal_kw: 10, capacity_kwh: 20}]}\n"
        "grid_meters:\n  - {site: sub-s1, station: S1}\n"
    )
    registry = load_registry(tmp_path / "registry.yaml")
    cfg = CloudConfig.model_validate(
        {
            "broker": {"port": mosquitto.port, "client_id": "test-cloud"},
            "store": {"path": str(tmp_path / "store.sqlite")},
            "control": {"period_s": 60, "dispatch": False, "congestion_scenarios": 0},
            "api": {"enabled": False},
            "grid": {"limits": {"S1": {"max_kw": LIMIT_KW}}},
        }
    )
    planner = build_planner(
        region,
        registry.sites,
        period_s=60,
        horizon_steps=4,
        margin_s=10,
        station_limit_kw=None,
        grid_limits=cfg.grid,
    )
    ctl = CloudController(cfg, registry, clock=RealClock(), planner=planner)
    task = asyncio.create_task(ctl.run())
    try:
        await ctl.session.wait_connected(10)
        now = datetime.now(UTC)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="station-test") as client:
            state = encode(SiteState(site="b001", ts=now, status="online"))
            await client.publish(site_topic("b001", "state"), state, qos=1, retain=True)
            b001 = {"meter/p_kw": B001_KW, "battery/p_kw": 0.0, "battery/soc_pct": 50.0}
            await client.publish(site_topic("b001", "telemetry"), _batch("b001", now, b001), qos=1)
            meter = {"meter/p_kw": METER_KW, "meter/q_kvar": 0.0, "meter/v_ln_v": 228.0}
            await client.publish(site_topic("sub-s1", "telemetry"), _batch("sub-s1", now, meter), qos=1)
        await _until(
            lambda: (
                ctl.meter_snapshots["sub-s1"].p_net_kw is not None
                and "battery/soc_pct" in ctl.snapshots["b001"].points
                and ctl.snapshots["b001"].mode == "online"
            ),
            20.0,
            "b001's and the station meter's readings",
        )
        plan = await ctl.dispatch_once()
        await ctl.guard_once()
        app = FastAPI()
        app.include_router(grid_state_router(ctl))
        body = TestClient(app).get("/grid/state").json()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert plan is not None
    print(
        "DEBUG",
        plan.excluded_sites,
        plan.violations,
        plan.commands,
        ctl.snapshots["b001"],
        body["converged"],
        body["transformers"],
    )
    bg = plan.station_background["S1"]
    assert bg.measured.status == "measured"
    assert bg.measured.background_kw == pytest.approx(METER_KW - B001_KW)
    assert bg.method == "persistence"  # no stored history before this period
    schedule = planner.last_schedule
    assert schedule is not None
    col = planner.stations.column["S1"]
    assert schedule.branch_flow_kw[0, col] <= LIMIT_KW + 1e-6  # fleet + background, Q measured 0
    (cmd,) = [c for c in plan.commands if c.site == "b001" and c.asset == "battery"]
    assert (
        isinstance(cmd.value, float) and cmd.value <= -(METER_KW - LIMIT_KW) + 1e-6
    )  # b001's battery discharges the 5 kW excess
    assert {c.site for c in plan.commands} == {"b001"}  # never the grid meter
    assert planner.guard is not None
    el = {e.name: e for e in planner.guard.elements}["S1"]
    assert el.background_kw == pytest.approx(METER_KW - B001_KW)
    # the state estimate's prior of h2 (outside the fleet) is S1's background, not its net load
    assert body["metered"]["pseudo_outside_fleet_from_station_meters"] == 1
    tr = {t["name"]: t for t in body["transformers"]}
    assert tr["S1"]["p_lv_kw"] == pytest.approx(METER_KW, rel=0.01)
