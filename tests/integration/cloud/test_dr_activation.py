"""A DR request end to end: real Mosquitto, a simulated building (battery on Modbus), its edge agent and the
real controller. Request → selection → signed, fenced commands per interval → the battery's setpoint register
written → measured delivery within 10 % of the selection → report (API and `dr/{program}/report`); the
planner's command to the battery dropped during the event; and (slow) a controller restart mid-event resumes it.

Baseline: no plan forecasts per site here (a stand-in planner), so it is the site's measured power at selection
time, with the battery held idle by the planner's command beforehand (docs/dr.md §6).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import numpy as np
import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.live.types import AssetRef, History, Plan, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from gridflex.ops.broker import MosquittoBroker
from protocols.clock import RealClock
from protocols.messages import Command
from protocols.topics import dr_report
from simulators.fleet import SiteSpec
from simulators.testbed import TestBed
from tests.integration.cloud.one_building import one_building, signed_fenced_agent, until
from tests.integration.edge_agent.helpers import running_agent

pytestmark = pytest.mark.integration

SITE, BAT = "b001", "bat1"
TOKEN = "operator-0123456789abcdef"
KEY = bytes.fromhex("33" * 32)
CONTRACTS = f"""
contracts:
  - {{site: {SITE}, program: peak, directions: [reduce], p_max_kw: 3, events_per_day: 5, max_duration: PT1H,
     soc_floor_pct: 10, battery: {{asset: {BAT}, capacity_kwh: 10}}}}
"""
REGISTRY = Registry(
    sites=(SiteRef(SITE, 0, (AssetRef("meter", "meter"), AssetRef(BAT, "battery", 5.0, 10.0))),)
)


class IdleBatteryPlanner:
    """A stand-in planner: the battery idle (0 kW) every period, the command DR must override."""

    def plan(self, now: datetime, sites: object, history: History) -> Plan:
        cmd = Command(
            site=SITE,
            ts=now,
            cmd_id=f"plan-{now.timestamp():.3f}",
            asset=BAT,
            kind="p_setpoint_kw",
            value=0.0,
            valid_from=now,
            valid_until=now + timedelta(seconds=120),
        )
        return Plan(now, 60.0, [cmd], [0.0], [0.0], np.inf, [], {}, 0.1, [])

    def correct(self, now: datetime, sites: object) -> list[Command]:
        return []


def _config(port: int, tmp: Path) -> CloudConfig:
    (tmp / "token").write_text(TOKEN, encoding="utf-8")
    (tmp / "contracts.yaml").write_text(CONTRACTS, encoding="utf-8")
    (tmp / "keys").mkdir(exist_ok=True)
    (tmp / "keys" / f"{SITE}.k1.key").write_text(KEY.hex(), encoding="utf-8")
    return CloudConfig.model_validate(
        {
            "broker": {"port": port, "client_id": "test-cloud-dra"},
            "store": {"path": str(tmp / "store.sqlite")},
            "control": {"period_s": 3600, "guard_period_s": 0},
            "signing_keys_dir": str(tmp / "keys"),
            "api": {"port": 0, "operator_token_file": str(tmp / "token")},
            "dr": {"contracts": str(tmp / "contracts.yaml"), "lead_s": 2.0, "report_after_s": 1.5},
        }
    )


@contextlib.asynccontextmanager
async def _controller(cfg: CloudConfig) -> AsyncIterator[CloudController]:
    ctl = CloudController(cfg, REGISTRY, clock=RealClock(), planner=IdleBatteryPlanner())
    task = asyncio.create_task(ctl.run())
    try:
        async with asyncio.timeout(20):
            await ctl.session.wait_connected(20)
            while ctl.api_port is None:
                await asyncio.sleep(0.05)
        yield ctl
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


SPEC = SiteSpec(SITE, 0, annual_kwh=4000.0, heat_annual_kwh=8000.0, battery_kwh=10.0, battery_kw=5.0)


def _request(rid: str, start: datetime, steps: int, step_s: float) -> dict[str, Any]:
    return {
        "program": "peak",
        "ts": datetime.now(UTC).isoformat(),
        "request_id": rid,
        "start": start.isoformat(),
        "end": (start + timedelta(seconds=steps * step_s)).isoformat(),
        "direction": "reduce",
        "p_kw": 3.0,
        "intervals": [{"p_kw": 3.0}] * steps,
    }


async def _idle_baseline(ctl: CloudController, bed: TestBed) -> None:
    """The planner's idle command applied and measured: the snapshot's power is the site without DR."""
    await ctl.dispatch_once()
    building = bed.buildings[SITE]
    bat = building.battery
    assert bat is not None

    def idle_and_measured() -> bool:
        snap = ctl.snapshots[SITE].p_net_kw
        idle = bat.remote and abs(bat.p_kw) < 1e-6
        return idle and snap is not None and abs(snap - building.p_net_kw) < 0.05

    await until(idle_and_measured, 20, "the battery idle and the site's power measured so")


async def test_request_activates_the_battery_and_reports_delivery(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    cfg = _config(mosquitto.port, tmp_path)
    async with (
        one_building(SPEC, mosquitto.port, tmp_path) as bed,
        running_agent(signed_fenced_agent(bed, tmp_path, KEY)),
        _controller(cfg) as ctl,
        aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="dr-report-probe") as probe,
    ):
        await probe.subscribe(dr_report("peak"), qos=1)
        await until(lambda: ctl.snapshots[SITE].mode == "online", 20, "the site online")
        await _idle_baseline(ctl, bed)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ctl.api_port}", headers=auth, timeout=30
        ) as http:
            # starting inside the activator's 2 s lead: the post's own tick sends the commands
            posted = await http.post(
                "/dr/requests", json=_request("e2e", datetime.now(UTC) + timedelta(seconds=1.5), 1, 4.0)
            )
            assert posted.status_code == 201, posted.text
            assert posted.json()["status"] == "selected"  # as selected; activated right after
            sel = {(s["site"], s["asset"]): s["kw"] for s in posted.json()["selection"]["sources"]}
            assert sel == {(SITE, BAT): [-3.0]}
            assert (await http.get("/dr/requests/e2e")).json()["status"] == "active"
            # the planner's command to the held battery is dropped during the event
            await ctl.dispatch_once()
            truth = bed.buildings[SITE].battery
            assert truth is not None
            # the battery's setpoint register, written through Modbus by the agent (remote mode, -3 kW)
            await until(
                lambda: truth.setpoint_kw == pytest.approx(-3.0, abs=0.01), 15, "the setpoint register"
            )
            await until(
                lambda: ctl.dr_activator.report("e2e")["status"] == "completed",  # type: ignore[index]
                30,
                "the request completed",
            )
            report = (await http.get("/dr/requests/e2e/report")).json()
        async with asyncio.timeout(10):
            msg = await anext(aiter(probe.messages))
    print(json.dumps(report, indent=1))
    assert report["acks"] == {"ok": 1} and report["commands_sent"] == 1
    assert report["dropped_planner_commands"] == 1
    (row,) = report["intervals"]
    assert row["site"] == SITE and row["baseline_source"] == "household" and row["samples"] >= 1
    assert row["selected_kw"] == pytest.approx(3.0)
    assert row["delivered_kw"] == pytest.approx(3.0, rel=0.10)  # the seed's error margin
    assert report["totals"]["delivered_pct"] == pytest.approx(100.0, abs=10.0)
    assert not msg.retain
    published = json.loads(bytes(msg.payload))
    assert (
        published["request_id"] == "e2e" and published["intervals"][0]["delivered_kw"] == row["delivered_kw"]
    )


@pytest.mark.slow
async def test_restart_mid_event_resumes_the_request(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    cfg = _config(mosquitto.port, tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        one_building(SPEC, mosquitto.port, tmp_path) as bed,
        running_agent(signed_fenced_agent(bed, tmp_path, KEY)),
    ):
        truth = bed.buildings[SITE].battery
        assert truth is not None
        async with _controller(cfg) as ctl:
            await until(lambda: ctl.snapshots[SITE].mode == "online", 20, "the site online")
            await _idle_baseline(ctl, bed)
            start = datetime.now(UTC) + timedelta(seconds=3)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ctl.api_port}", headers=auth) as http:
                body = _request("restart", start, 2, 8.0)
                body["intervals"] = [{"p_kw": 3.0}, {"p_kw": 2.0}]
                assert (await http.post("/dr/requests", json=body)).status_code == 201
            await until(lambda: truth.setpoint_kw == pytest.approx(-3.0, abs=0.01), 15, "step 0's setpoint")
        # the controller is down during step 0; a new one on the same files resumes at step 1
        async with _controller(cfg) as ctl2:
            assert ctl2.dr.requests.get("restart").status == "active"  # type: ignore[union-attr]
            await until(lambda: truth.setpoint_kw == pytest.approx(-2.0, abs=0.01), 20, "step 1's setpoint")
            await until(
                lambda: ctl2.dr_activator.report("restart")["status"] == "completed",  # type: ignore[index]
                30,
                "the request completed",
            )
            report = ctl2.dr_activator.report("restart")
    assert report is not None
    print(json.dumps(report, indent=1))
    assert report["commands_sent"] == 2  # step 0 was not sent again after the restart
    assert [r["selected_kw"] for r in report["intervals"]] == [3.0, 2.0]
    for r in report["intervals"]:
        assert r["delivered_kw"] == pytest.approx(r["selected_kw"], rel=0.10)
