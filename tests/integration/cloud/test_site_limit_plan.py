"""The controller plans within the connection limit a real site publishes.

A simulated building (meter, battery, EV charger) behind real Modbus servers, its agent
holding `grid_connection.import_max_kw` and publishing it as telemetry, a real Mosquitto
and the controller with its real planner. The registry says nothing about the limit: the
plan learns it from the agent's `limit_import_max_kw` only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from cloud_controller.config import CloudConfig
from cloud_controller.live.planner import build_planner
from cloud_controller.registry import registry_from_manifest
from cloud_controller.service import CloudController
from edge_agent.config import load_config
from gridflex.ops.broker import MosquittoBroker
from protocols.assets import BATTERY, Points
from protocols.clock import RealClock, SimClock
from simulators.fleet import SiteSpec
from simulators.testbed import TestBed, TestBedConfig
from tests.integration.edge_agent.helpers import running_agent
from tests.unit.grid.test_limits import cached_region  # built once per session (the unit tests share it)

pytestmark = pytest.mark.integration

START = datetime(2030, 1, 15, 18, tzinfo=UTC)
SITE = "b001"
LIMIT_KW = 8.0  # the car (11 kW) and the house are above it; the battery (5 kW) can cover the rest
LIMIT_KEY = str(Points.LIMIT_IMPORT_MAX_KW)


async def _until(cond: Callable[[], bool], timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not cond():
            await asyncio.sleep(0.05)


async def test_the_plan_honours_the_import_limit_the_site_publishes(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    spec = SiteSpec(
        site=SITE,
        index=0,
        annual_kwh=4000.0,
        heat_annual_kwh=12000.0,
        battery_kwh=16.0,
        battery_kw=5.0,
        ev_kw=11.0,
    )
    bed_cfg = TestBedConfig(
        n_sites=1,
        start=START,
        step_s=0.025,
        broker_port=mosquitto.port,
        bacnet=False,
        profile_days=1.0,
        specs=(spec,),
    )
    async with TestBed(bed_cfg, SimClock(START, speed=1.0), tmp_path / "bed") as bed:
        path = bed.manifest.sites[0].config
        data = yaml.safe_load(path.read_text())
        data["poll"]["interval_s"] = 0.2
        data["grid_connection"] = {"import_max_kw": LIMIT_KW}
        path.write_text(yaml.safe_dump(data))
        registry = registry_from_manifest(tmp_path / "bed" / "manifest.json", 319)
        assert registry.sites[0].import_max_kw is None  # the registry does not know it
        planner = build_planner(
            cached_region(),
            registry.sites,
            period_s=60,
            horizon_steps=8,
            margin_s=30,
            station_limit_kw=None,
        )
        cfg = CloudConfig.model_validate(
            {
                "broker": {"port": mosquitto.port, "client_id": "test-cloud"},
                "store": {"path": str(tmp_path / "store.sqlite")},
                "control": {"period_s": 60, "horizon_steps": 8},
                "api": {"port": 0, "token_file": str(tmp_path / "token")},
            }
        )
        (tmp_path / "token").write_text("s3cret-0123456789abcdef\n")
        # the agent keeps host time (running_agent's RealClock), the controller too: commands are
        # valid by the agent's clock; the building's physics runs on the test bed's own clock
        ctl = CloudController(cfg, registry, clock=RealClock(), planner=planner)
        building = bed.buildings[SITE]

        async def physics() -> None:
            while True:
                await asyncio.sleep(bed_cfg.step_s)
                bed.step(bed_cfg.step_s)

        stepper = asyncio.create_task(physics())
        service = asyncio.create_task(ctl.run())
        try:
            async with running_agent(load_config(path)):
                snap = ctl.snapshots[SITE]
                await _until(lambda: snap.points.get(LIMIT_KEY) == LIMIT_KW)  # the agent's telemetry
                ev = building.ev
                assert ev is not None
                ev.plug_in(e_need_kwh=60.0, departure_s=10**9)
                await _until(lambda: snap.points.get("ev1/p_kw", 0.0) > 10.0)
                await _until(lambda: snap.points.get(f"{BATTERY}/p_kw", 0.0) < -1.0)  # the edge holds it
                plan = await ctl.dispatch_once()
                assert plan is not None
                schedule = planner.last_schedule
                assert schedule is not None
                base = plan.site_forecast_kw[:, 0]
                assert (base > LIMIT_KW + 2.0).all()  # the forecast is above the limit in every period
                planned = schedule.p_site_kw[:, 0]
                print(f"forecast {base[0]:.2f} kW, planned {planned.max():.2f} kW, limit {LIMIT_KW} kW")
                assert (planned <= LIMIT_KW + 1e-6).all()  # the plan honours it in every period
                assert plan.site_limit_shortfalls == []
                assert (
                    planner._site_limits[0].import_source[0] == f"agent's limit_import_max_kw {LIMIT_KW:g} kW"
                )
                (cmd,) = [c for c in plan.commands if c.asset == BATTERY]
                assert isinstance(cmd.value, float)
                assert cmd.value <= -(base[0] - LIMIT_KW) + 1e-3  # discharges what is over the limit
                # the agent applies it (or tightens it to what it measures): never a charge
                await _until(lambda: ctl.tracker.sent[cmd.cmd_id].status is not None)
                ack = ctl.tracker.sent[cmd.cmd_id]
                print(f"battery command {cmd.value} kW: {ack.status}")
                assert ack.status in ("applied", "clamped")
                assert ack.ack is not None and isinstance(ack.ack.applied_value, float)
                assert ack.ack.applied_value < 0
        finally:
            for task in (service, stepper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
