"""The controller against a real Mosquitto: telemetry → store → retained watermark; commands → acks;
restart keeps the watermark; the HTTP API served by uvicorn; `gridflex cloud` as a process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
from protocols.codec import decode, encode
from protocols.messages import Ack, Command, Sample, SiteState, Stored, TelemetryBatch
from protocols.topics import site_topic

pytestmark = pytest.mark.integration

REGISTRY = Registry(
    sites=(SiteRef("b001", 0, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0))),)
)


class OneCommandPlanner:
    """A stand-in planner: one battery command per period (the real one is unit-tested)."""

    def plan(self, now: datetime, sites: object, history: History) -> Plan:
        cmd = Command(
            site="b001",
            ts=now,
            cmd_id=f"c-{now.timestamp():.3f}",
            asset="bat1",
            kind="p_setpoint_kw",
            value=2.5,
            valid_from=now,
            valid_until=now + timedelta(seconds=60),
        )
        online = isinstance(sites, dict) and sites["b001"].mode == "online"
        return Plan(now, 60.0, [cmd] if online else [], [1.0], [1.0], np.inf, [], {}, 0.1, [])

    def correct(self, now: datetime, sites: object) -> list[Command]:
        return []


def _config(port: int, tmp: Path) -> CloudConfig:
    return CloudConfig.model_validate(
        {
            "broker": {"port": port, "client_id": "test-cloud"},
            "store": {"path": str(tmp / "store.sqlite")},
            "control": {"period_s": 60},
            "api": {"port": 0, "token_file": str(tmp / "token")},
            "dr": {"contracts": str(Path(__file__).with_name("dso1_contracts.yaml"))},
        }
    )


@asynccontextmanager
async def running(cfg: CloudConfig) -> AsyncIterator[CloudController]:
    ctl = CloudController(cfg, REGISTRY, clock=RealClock(), planner=OneCommandPlanner())
    task = asyncio.create_task(ctl.run())
    try:
        await ctl.session.wait_connected(10)
        yield ctl
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _batch(seqs: range) -> bytes:
    now = datetime.now(UTC)
    samples = [Sample(seq=s, asset="meter", point="p_kw", value=float(s), unit="kW", ts=now) for s in seqs]
    return encode(TelemetryBatch(site="b001", ts=now, samples=samples))


async def _wait(pred: object, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not pred():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_watermark_commands_acks_restart_and_api(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-0123456789abcdef\n")
    cfg = _config(mosquitto.port, tmp_path)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="site-b001") as site:
        await site.subscribe(site_topic("b001", "stored"), qos=1)
        await site.subscribe(site_topic("b001", "cmd"), qos=1)
        async with running(cfg) as ctl:
            await site.publish(
                site_topic("b001", "state"),
                encode(SiteState(site="b001", ts=datetime.now(UTC), status="online")),
                qos=1,
                retain=True,
            )
            await site.publish(site_topic("b001", "telemetry"), _batch(range(0, 5)), qos=1)
            await site.publish(site_topic("b001", "telemetry"), _batch(range(3, 8)), qos=1)  # overlap
            stored: list[int] = []
            command: Command | None = None
            async with asyncio.timeout(20):
                async for msg in site.messages:
                    m = decode(str(msg.topic), bytes(msg.payload))
                    if isinstance(m, Stored):
                        stored.append(m.seq)
                    if isinstance(m, Command):
                        command = m
                    if command is not None and stored and stored[-1] == 7:
                        break
            assert command is not None and command.value == 2.5
            await site.publish(
                site_topic("b001", "ack"),
                encode(
                    Ack(
                        site="b001",
                        ts=datetime.now(UTC),
                        cmd_id=command.cmd_id,
                        asset="bat1",
                        status="applied",
                    )
                ),
                qos=1,
            )
            await _wait(lambda: ctl.tracker.counts.get("applied") == 1)
            assert ctl.ingest.stats.duplicates == 2 and ctl.ingest.stats.samples_stored == 8
            await _wait(lambda: ctl.api_port is not None)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ctl.api_port}") as http:
                sites = (await http.get("/sites")).json()
                assert (
                    sites[0]["site"] == "b001" and sites[0]["mode"] == "online" and sites[0]["watermark"] == 7
                )
                assert (await http.get("/commands")).json()["counts"]["applied"] == 1
                assert "gridflex_samples_stored_total 8.0" in (await http.get("/metrics")).text
                assert (await http.get("/openapi.json")).status_code == 200
                dr = {
                    "program": "dso1",
                    "ts": "2030-01-15T12:00:00Z",
                    "request_id": "r1",
                    "start": "2030-01-15T17:00:00Z",
                    "end": "2030-01-15T18:00:00Z",
                    "direction": "reduce",
                    "p_kw": 50.0,
                }
                assert (await http.post("/dr/requests", json=dr)).status_code == 401
                ok = await http.post(
                    "/dr/requests", json=dr, headers={"Authorization": "Bearer s3cret-0123456789abcdef"}
                )
                assert ok.status_code == 201 and len((await http.get("/dr/requests")).json()) == 1
                assert (
                    await http.post(
                        "/dr/requests",
                        json={**dr, "p_kw": "x"},
                        headers={"Authorization": "Bearer s3cret-0123456789abcdef"},
                    )
                ).status_code == 422
    # restart: the watermark comes from the store and is republished (retained) on connect
    async with running(cfg) as ctl2:
        assert ctl2.store.highest_contiguous_seq("b001") == 7
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="probe") as probe:
            await probe.subscribe(site_topic("b001", "stored"), qos=1)
            async with asyncio.timeout(10):
                async for msg in probe.messages:
                    assert decode(str(msg.topic), bytes(msg.payload)).seq == 7  # type: ignore[union-attr]
                    break


def test_cloud_process_bad_config_exits_2_and_sigterm_exits_0(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    exe = [sys.executable, "-m", "gridflex"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("control: {period_s: 5}\n")
    r = subprocess.run([*exe, "cloud", "check-config", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "control.period_s" in r.stderr
    reg = tmp_path / "reg.yaml"
    reg.write_text("sites:\n  - {site: b001, region_site: 0, assets: [{asset: meter, kind: meter}]}\n")
    good = tmp_path / "cloud.yaml"
    good.write_text(
        f"broker: {{port: {mosquitto.port}}}\nregistry: reg.yaml\nstore: {{path: s.sqlite}}\n"
        "control: {dispatch: false}\napi: {port: 0}\n"
    )
    proc = subprocess.Popen(
        [*exe, "cloud", "--config", str(good)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = 30.0
        out = ""
        assert proc.stdout is not None
        while deadline > 0 and "MQTT connected" not in out:
            out += proc.stdout.readline()
            deadline -= 0.01
        assert "MQTT connected" in out
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
