"""Controller hardening against a real Mosquitto and a real uvicorn: commands registered before their
publish, readiness that names a lost broker, API roles and the capped, cached scenario forecast."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
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
from protocols.codec import decode, encode
from protocols.errors import ConfigError
from protocols.messages import Ack, Command
from protocols.topics import site_topic

pytestmark = pytest.mark.integration

REGISTRY = Registry(
    sites=(SiteRef("b001", 0, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0))),)
)
OPERATOR = "operator-token-0123456789"
VIEWER = "viewer-token-0123456789ab"


def _command(cmd_id: str) -> Command:
    now = datetime.now(UTC)
    return Command(
        site="b001",
        ts=now,
        cmd_id=cmd_id,
        asset="bat1",
        kind="p_setpoint_kw",
        value=2.5,
        valid_from=now,
        valid_until=now + timedelta(seconds=60),
    )


class CountingPlanner:
    """A stand-in planner whose scenario forecast counts its runs (the real one takes seconds)."""

    def __init__(self) -> None:
        self.forecasts = 0

    def plan(self, now: datetime, sites: object, history: History) -> Plan:
        return Plan(now, 900.0, [], [1.0, 2.0], [1.0, 2.0], 10.0, [], {}, 0.1, [], np.ones((2, 1)))

    def correct(self, now: datetime, sites: object) -> list[Command]:
        return []

    def congestion_forecast(self, plan: Plan, n: int) -> Any:
        self.forecasts += 1
        return SimpleNamespace(
            loading_pct=np.full((2, 1), 50.0), p_exceed=np.zeros((2, 1)), elements=["hvmv"], n_scenarios=n
        )


def _config(port: int, tmp: Path, **api: Any) -> CloudConfig:
    return CloudConfig.model_validate(
        {
            "broker": {"port": port, "client_id": f"hard-{tmp.name[-12:].replace('.', '-')}"},
            "store": {"path": str(tmp / "store.sqlite")},
            "control": {"dispatch": False, "guard_period_s": 0},
            "api": {"port": 0, **api},
            "dr": {"contracts": str(Path(__file__).with_name("dso1_contracts.yaml"))},
        }
    )


@asynccontextmanager
async def running(cfg: CloudConfig, planner: Any = None) -> AsyncIterator[CloudController]:
    ctl = CloudController(cfg, REGISTRY, clock=RealClock(), planner=planner or CountingPlanner())
    task = asyncio.create_task(ctl.run())
    try:
        await ctl.session.wait_connected(10)
        await _wait(lambda: ctl.api_port is not None)
        yield ctl
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _wait(pred: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not pred():
            await asyncio.sleep(0.02)


async def test_an_ack_handled_before_the_puback_still_resolves_the_command(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """The race forced over the real broker: the publish returns only after the agent's ack was ingested."""
    async with (
        running(_config(mosquitto.port, tmp_path)) as ctl,
        aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="site-b001") as site,
    ):
        await site.subscribe(site_topic("b001", "cmd"), qos=1)

        async def agent() -> None:
            async for msg in site.messages:
                cmd = decode(str(msg.topic), bytes(msg.payload))
                assert isinstance(cmd, Command)
                ack = Ack(
                    site="b001", ts=datetime.now(UTC), cmd_id=cmd.cmd_id, asset="bat1", status="applied"
                )
                await site.publish(site_topic("b001", "ack"), encode(ack), qos=1)
                return

        answering = asyncio.create_task(agent())
        real_publish = ctl.session.publish

        async def publish_acked_before_return(topic: str, payload: bytes, **kw: Any) -> None:
            await real_publish(topic, payload, **kw)
            await _wait(lambda: ctl.ingest.stats.acks >= 1)  # the ack is in before the PUBACK "returns"

        ctl.session.publish = publish_acked_before_return  # type: ignore[method-assign]
        await ctl._publish_commands([_command("c-early")])
        await asyncio.wait_for(answering, 10)
        tracked = ctl.tracker.sent["c-early"]
        assert tracked.status == "applied" and ctl.tracker.unknown_acks == 0
        assert ctl.tracker.expire(datetime.now(UTC) + timedelta(hours=1)) == []  # never counted missing
        assert ctl.tracker.counts == {"sent": 1, "applied": 1}


async def test_a_command_whose_publish_fails_is_rolled_back_and_counted(tmp_path: Path) -> None:
    ctl = CloudController(_config(1, tmp_path), REGISTRY, clock=RealClock(), planner=CountingPlanner())
    try:
        await ctl._publish_commands([_command("c-lost")])  # never connected: NotConnectedError
        assert "c-lost" not in ctl.tracker.sent
        assert ctl.tracker.counts == {"sent": 0, "publish_failed": 1}
        assert ctl.stats.commands_publish_failed == 1
    finally:
        ctl.store.close()


async def test_readyz_goes_503_naming_the_broker_when_it_stops(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with (
        running(_config(mosquitto.port, tmp_path)) as ctl,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{ctl.api_port}") as http,
    ):
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["failing"] == [] and set(ready.json()["checks"]) == {"broker", "store"}
        assert ctl.store.read_lease("dispatch") is None  # dispatch off: no lease taken
        mosquitto.close()
        await _wait(lambda: not ctl.session.connected.is_set())
        lost = await http.get("/readyz")
        assert lost.status_code == 503 and lost.json()["failing"] == ["broker"]
        assert f"not connected to 127.0.0.1:{mosquitto.port}" in lost.json()["checks"]["broker"]["detail"]
        assert lost.json()["checks"]["store"]["ok"]  # a real write still succeeds
        assert (await http.get("/livez")).status_code == 200  # alive: only waiting for the broker
        old = (await http.get("/healthz")).json()
        assert old["status"] == "ok" and old["mqtt_connected"] is False and "deprecated" in old


async def test_an_empty_viewer_token_file_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "viewer").write_text(" \n")
    with pytest.raises(ConfigError) as err:
        CloudController(
            _config(1, tmp_path, viewer_token_file=str(tmp_path / "viewer")), REGISTRY, clock=RealClock()
        )
    assert err.value.file == str(tmp_path / "viewer") and "empty" in err.value.reason


async def test_roles_guard_reads_writes_metrics_and_scenarios(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    (tmp_path / "op").write_text(OPERATOR + "\n")
    (tmp_path / "vi").write_text(VIEWER + "\n")
    cfg = _config(
        mosquitto.port, tmp_path, token_file=str(tmp_path / "op"), viewer_token_file=str(tmp_path / "vi")
    )
    planner = CountingPlanner()
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    operator = {"Authorization": f"bearer {OPERATOR}"}  # the scheme is case-insensitive
    async with running(cfg, planner) as ctl:
        ctl.last_plan = planner.plan(datetime.now(UTC), {}, ctl.store)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ctl.api_port}") as http:
            for path in (
                "/sites",
                "/schedule",
                "/metrics",
                "/fleet/overview",
                "/commands/log",
                "/dr/requests",
            ):
                anon = await http.get(path)
                assert anon.status_code == 401 and anon.headers["www-authenticate"].startswith("Bearer"), path
                assert (await http.get(path, headers=viewer)).status_code == 200, path
                assert (await http.get(path, headers=operator)).status_code == 200, path
            raw = await http.get("/sites", headers={"Authorization": VIEWER})  # no "Bearer "
            assert raw.status_code == 401 and "Bearer <token>" in raw.json()["detail"]
            assert (
                await http.get("/sites", headers={"Authorization": f"Bearer {VIEWER} x"})
            ).status_code == 401
            assert (
                await http.get("/sites", headers={"Authorization": "Bearer wrong-0123456789abc"})
            ).status_code == 401
            assert (await http.get("/livez")).status_code == 200 and (
                await http.get("/readyz")
            ).status_code == 200
            dr = {
                "program": "dso1",
                "ts": "2030-01-15T12:00:00Z",
                "request_id": "r1",
                "start": "2030-01-15T17:00:00Z",
                "end": "2030-01-15T18:00:00Z",
                "direction": "reduce",
                "p_kw": 50.0,
            }
            assert (await http.post("/dr/requests", json=dr, headers=viewer)).status_code == 403
            assert (await http.post("/dr/requests", json=dr, headers=operator)).status_code == 201
            # scenarios: capped (422), operator only, computed once per plan and N
            assert (await http.get("/forecast/congestion?scenarios=201", headers=operator)).status_code == 422
            assert (await http.get("/forecast/congestion?scenarios=5", headers=viewer)).status_code == 403
            first = await http.get("/forecast/congestion?scenarios=5", headers=operator)
            again = await http.get("/forecast/congestion?scenarios=5", headers=operator)
            assert first.status_code == 200 and first.json() == again.json() and len(first.json()) == 2
            assert planner.forecasts == 1
            await http.get("/forecast/congestion?scenarios=6", headers=operator)
            assert planner.forecasts == 2
            ctl.last_plan = dataclasses.replace(ctl.last_plan)  # a new plan: the cache starts over
            await http.get("/forecast/congestion?scenarios=5", headers=operator)
            assert planner.forecasts == 3
            for limit in (0, 5001):
                assert (await http.get(f"/commands?limit={limit}", headers=viewer)).status_code == 422
            week = {"from": "2030-01-01T00:00:00Z", "to": "2030-01-08T00:00:01Z"}  # a week and a second
            assert (await http.get("/sites/b001/history", params=week, headers=viewer)).status_code == 422
            many = ",".join(f"a{k}/p_kw" for k in range(101))
            too_many = await http.get("/sites/b001/history", params={"points": many}, headers=viewer)
            assert too_many.status_code == 422 and "at most 100 keys" in too_many.json()["detail"]


async def test_dashboard_login_sets_an_httponly_strict_session_without_the_token(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    (tmp_path / "op").write_text(OPERATOR)
    (tmp_path / "vi").write_text(VIEWER)
    cfg = _config(
        mosquitto.port,
        tmp_path,
        operator_token_file=str(tmp_path / "op"),
        viewer_token_file=str(tmp_path / "vi"),
    )
    async with (
        running(cfg) as ctl,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{ctl.api_port}") as http,
    ):
        page = await http.get("/ui/grid")
        assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fui%2Fgrid"
        wrong = await http.post("/login", data={"token": "not-the-token-0123456", "next": "/ui/grid"})
        assert wrong.status_code == 401 and "Wrong token." in wrong.text and not wrong.cookies
        evil = await http.post("/login", data={"token": VIEWER, "next": "//evil.example/"})
        assert evil.status_code == 303 and evil.headers["location"] == "/"
        http.cookies.clear()
        ok = await http.post("/login", data={"token": VIEWER, "next": "/ui/grid"})
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/grid"
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert VIEWER not in cookie
        grid = await http.get("/ui/grid")
        assert (
            grid.status_code == 200 and 'data-role="viewer"' in grid.text and "run-scenarios" not in grid.text
        )
        assert (await http.get("/fleet/status")).status_code == 200  # the pages' JSON polls send the cookie
        assert (await http.post("/dr/requests", json={})).status_code == 403  # a viewer's cookie cannot write
        await http.post("/logout")
        assert (await http.get("/", follow_redirects=False)).status_code == 303
        await http.post("/login", data={"token": OPERATOR, "next": "/ui/grid"})
        assert "run-scenarios" in (await http.get("/ui/grid")).text
