"""A substation's grid meter reaches the controller for real: a SunSpec 203 meter served over
Modbus TCP from the grid truth's power flow, its edge agent (the YAML `Substations` writes),
a real Mosquitto and the CloudController with `sub-s1`/`sub-s2` registered as grid meters.

Its telemetry is stored and watermarked (the agent's queue drains), it keeps a snapshot of
its own, the planner and the fleet guard never see it, the fleet totals do not count it, no
command goes to it, and `GET /grid/state` takes it as station S1's transformer flow.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.grid.region import Region
from cloud_controller.live.types import History, Plan
from cloud_controller.registry import load_registry
from cloud_controller.service import CloudController
from cloud_controller.web import views
from cloud_controller.web.data_api import data_router
from cloud_controller.web.grid_state_api import grid_state_router
from edge_agent.config import load_config
from gridflex.loop.grid_truth import GridTruth
from gridflex.loop.substations import Substations, read_substation_sites
from gridflex.ops.broker import MosquittoBroker
from protocols.assets import Points
from protocols.clock import RealClock
from protocols.codec import encode
from protocols.messages import Command, Event, Sample, TelemetryBatch
from protocols.topics import site_topic
from tests.integration.two_stations import two_station_region

from ..edge_agent.helpers import running_agent

pytestmark = pytest.mark.integration

POWERS_KW = {"b001": 28.0, "b002": 12.0, "b003": -25.0}  # S1 imports ~40 kW, S2 exports ~25 kW
B001_KW = 28.0  # what the one registered building reports: the whole fleet total
#: The controller's own prior of each household (its net's load, pseudo-values where no meter
#: is): near the truth but not at it (h2 10 kW instead of 12, h3 -20 instead of -25).
PRIOR_KW = (28.0, 10.0, -20.0)


def _small_region(folder: Path) -> Region:
    """The two-station region of the meter's own test, households at their prior loads."""
    return two_station_region(folder, PRIOR_KW)


class RecordingPlanner:
    """A stand-in planner over the small region: records which sites each plan / correction is given."""

    def __init__(self, region: Region) -> None:
        self.region = region  # what /grid/state estimates on
        self.seen: list[set[str]] = []

    def plan(self, now: datetime, sites: Any, history: History) -> Plan:
        self.seen.append(set(sites))
        cmds = [
            Command(
                site=s,
                ts=now,
                cmd_id=f"c-{s}",
                asset="meter",
                kind="p_setpoint_kw",
                value=0.0,
                valid_from=now,
                valid_until=now + timedelta(seconds=60),
            )
            for s in sites  # one command to every site it is given: never to a grid meter
        ]
        return Plan(now, 60.0, cmds, [1.0], [1.0], np.inf, [], {}, 0.1, [])

    def correct(self, now: datetime, sites: Any) -> list[Command]:
        self.seen.append(set(sites))
        return []


async def _until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_substation_meter_is_stored_watermarked_never_planned_and_metered_in_grid_state(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    region = _small_region(tmp_path)
    truth = GridTruth(region, {"b001": 0, "b002": 1, "b003": 2})
    (tmp_path / "token").write_text("s3cret-0123456789abcdef\n")
    cfg = CloudConfig.model_validate(
        {
            "broker": {"port": mosquitto.port, "client_id": "test-cloud"},
            "store": {"path": str(tmp_path / "store.sqlite")},
            "control": {"period_s": 60, "dispatch": False},
            "api": {"port": 0, "token_file": str(tmp_path / "token")},
        }
    )
    bed = tmp_path / "bed"
    async with Substations(truth, out_dir=bed, broker_port=mosquitto.port) as subs:
        interval = await subs.update(POWERS_KW, 3600.0)
        listing = json.loads((bed / "substations.json").read_text())["substations"]
        registry_yaml = tmp_path / "registry.yaml"
        meters = "".join(f"  - {{site: {s['site']}, station: {s['station']}}}\n" for s in listing)
        registry_yaml.write_text(
            "sites:\n  - {site: b001, region_site: 0, assets: [{asset: meter, kind: meter}]}\n"
            f"grid_meters:\n{meters}"
        )
        registry = load_registry(registry_yaml)
        assert registry.meter_ids == ["sub-s1", "sub-s2"]
        site = read_substation_sites(bed)[0]
        config = load_config(site.config)
        assert config.cloud.watermark  # the controller stores it: the watermark frees its queue
        planner = RecordingPlanner(region)
        ctl = CloudController(cfg, registry, clock=RealClock(), planner=planner)
        task = asyncio.create_task(ctl.run())
        try:
            await ctl.session.wait_connected(10)
            async with running_agent(config) as agent:
                now = datetime.now(UTC)
                async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="b001-test") as b001:
                    sample = Sample(asset="meter", point="p_kw", ts=now, seq=0, value=B001_KW, unit="kW")
                    await b001.publish(
                        site_topic("b001", "telemetry"),
                        encode(TelemetryBatch(site="b001", ts=now, samples=[sample])),
                        qos=1,
                    )
                    event = Event(site="sub-s1", ts=now, kind="driver_fault", severity="warning")
                    await b001.publish(site_topic("sub-s1", "event"), encode(event), qos=1)
                meter = ctl.meter_snapshots["sub-s1"]
                await _until(
                    lambda: (
                        meter.p_net_kw is not None
                        and str(Points.METER_V_LN_V) in meter.points
                        and meter.mode == "online"
                        and ctl.snapshots["b001"].p_net_kw is not None
                        and agent.stats.stored_seq >= 0
                    ),
                    20.0,
                    "the meter's readings, b001's reading and the meter's watermark",
                )
                # stored and watermarked like any site: the agent's queue is released up to it
                stored = ctl.store.watermarks()
                assert agent.stats.stored_seq <= stored["sub-s1"] and stored["b001"] == 0
                assert ctl.store.count_samples("sub-s1") >= len(config.assets) > 0
                assert [e.kind for e in ctl.store.read_events(site="sub-s1", kind="driver_fault")] == [
                    "driver_fault"
                ]
                assert meter.p_net_kw == pytest.approx(interval.station_flow["S1"].p_kw, abs=0.05)
                assert ctl.ingest.stats.unknown_site == 0  # sub-s1 is no longer dropped
                # never planned, guarded, counted or commanded
                assert "sub-s1" not in ctl.snapshots and set(ctl.meter_snapshots) == {"sub-s1", "sub-s2"}
                plan = await ctl.dispatch_once()
                await ctl.guard_once()
                assert planner.seen == [{"b001"}, {"b001"}]
                assert plan is not None and {c.site for c in plan.commands} == {"b001"}
                assert {t.command.site for t in ctl.tracker.sent.values()} == {"b001"}  # what was published
                overview = views.overview(ctl)
                assert overview["fleet_kw"] == pytest.approx(B001_KW)  # not the station's ~40 kW
                assert overview["sites"]["total"] == 1
                assert [r["site"] for r in views.site_rows(ctl)] == ["b001"]
                # the state estimate takes it as S1's transformer flow and LV busbar voltage
                app = FastAPI()
                app.include_router(grid_state_router(ctl))
                app.include_router(data_router(ctl))
                http = TestClient(app)
                body = http.get("/grid/state").json()
                history = http.get("/sites/sub-s1/history", params={"points": "meter/p_kw"}).json()
                registered = TestClient(create_app(ctl)).get("/registry").json()
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert body["metered"]["substation_meters"] == 1
    listed = {m["site"]: m for m in registered["grid_meters"]}
    assert {(m["site"], m["station"]) for m in listed.values()} == {("sub-s1", "S1"), ("sub-s2", "S2")}
    assert listed["sub-s1"]["last_seen"] is not None  # it reported
    assert listed["sub-s2"]["last_seen"] is None  # no agent at S2
    assert registered["registered_sites"] == ["b001"]  # a grid meter is not a site
    assert "1 substation meters at LV busbars" in body["metered"]["voltage"]
    assert history["series"][0]["point"] == "meter/p_kw" and history["series"][0]["value"]
    assert history["commands"] == []
    assert body["bad_data"] == [] and not body["chi2"]["failed"]
    tr = {t["name"]: t for t in body["transformers"]}
    truth_s1_kw = interval.station_flow["S1"].p_kw  # 40.2: the houses' 40 kW and their lines' losses
    # the prior alone says 38 kW at S1 (h2 at 10 kW): the meter moves the estimate to the truth
    assert tr["S1"]["p_lv_kw"] == pytest.approx(truth_s1_kw, abs=0.3)
    assert tr["S1"]["loading_sigma_pct"] < tr["S2"]["loading_sigma_pct"] / 10  # S2 has no agent here
    assert tr["S2"]["p_lv_kw"] == pytest.approx(PRIOR_KW[2], abs=0.5)  # unmetered: the prior stands
