"""Exactly one dispatcher per store file and client id.

Default run: two controllers in one process; the second waits as standby (never on the
broker, `/readyz` 503 naming the holder) and takes over at once when the first exits cleanly.
Slow run (`-m slow`, ~10 s of process start-up): a real `gridflex cloud --role dispatch`
process holds the lease and is SIGKILLed; the standby takes over only after the expiry, and
releases at once on its own clean exit.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from cloud_controller.config import load_cloud_config
from cloud_controller.lease import DispatchLease
from cloud_controller.live.types import History, Plan
from cloud_controller.registry import load_registry
from cloud_controller.service import CloudController
from cloud_controller.store import SqliteStore
from gridflex.ops.broker import MosquittoBroker
from protocols.clock import RealClock
from protocols.messages import Command

pytestmark = pytest.mark.integration

TTL_S, RENEW_S = 3.0, 0.5


class IdlePlanner:
    """A stand-in planner without commands: this test is about who may dispatch, not what."""

    def plan(self, now: datetime, sites: object, history: History) -> Plan:
        return Plan(now, 60.0, [], [1.0], [1.0], np.inf, [], {}, 0.1, [])

    def correct(self, now: datetime, sites: object) -> list[Command]:
        return []


def _write_config(tmp: Path, port: int) -> Path:
    (tmp / "reg.yaml").write_text(
        "sites:\n  - {site: b001, region_site: 0, assets: [{asset: meter, kind: meter}]}\n"
    )
    cfg = tmp / "cloud.yaml"
    cfg.write_text(
        f"broker: {{port: {port}, client_id: lease-test}}\nregistry: reg.yaml\nstore: {{path: shared.sqlite}}\n"
        f"control: {{period_s: 60, guard_period_s: 0}}\nlease: {{ttl_s: {TTL_S}, renew_s: {RENEW_S}}}\n"
        "api: {port: 0}\n"
    )
    return cfg


async def test_only_one_dispatcher_runs_and_a_clean_exit_hands_over_at_once(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    cfg = load_cloud_config(_write_config(tmp_path, mosquitto.port))
    cfg = cfg.model_copy(update={"lease": cfg.lease.model_copy(update={"ttl_s": 600.0})})  # no expiry here
    registry = load_registry(tmp_path / "reg.yaml")
    first = CloudController(cfg, registry, clock=RealClock(), planner=IdlePlanner(), role="dispatch")
    second = CloudController(cfg, registry, clock=RealClock(), planner=IdlePlanner(), role="dispatch")
    assert first.lease is not None and second.lease is not None
    a, b = first.lease, second.lease
    task_a = asyncio.create_task(first.run())
    task_b: asyncio.Task[None] | None = None
    try:
        await first.session.wait_connected(10)
        assert a.token == 1
        task_b = asyncio.create_task(second.run())
        await _until(lambda: b.status.state == "standby" and second.api_port is not None, 10, "standby")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{second.api_port}") as http:
            waiting = await http.get("/readyz")
            banners = (await http.get("/fleet/status")).json()["banners"]
        assert waiting.status_code == 503
        assert len(banners) == 1 and banners[0].endswith("; it does not dispatch.")
        assert banners[0].startswith(f"This controller is on standby: lease held by {a.holder} until ")
        assert waiting.json()["checks"]["lease"]["detail"].startswith(
            f"standby: lease held by {a.holder} until "
        )
        await asyncio.sleep(3 * RENEW_S)  # several attempts
        assert (
            b.status.state == "standby"
            and second.session.connect_count == 0
            and first.session.connect_count == 1
        )
        task_a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task_a
        # released on exit: taken at the standby's next attempt, not after the 600 s expiry
        await _until(lambda: _state(b) == "held", 5 * RENEW_S + 5, "takeover after a release")
        assert b.token == 2
        await second.session.wait_connected(10)
    finally:
        for t in (task_a, task_b):
            if t is not None and not t.done():
                t.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await t


def _state(lease: DispatchLease) -> str:
    """The lease's state, read afresh (a lambda over `lease.status.state` keeps mypy's narrowing)."""
    return lease.status.state


async def _until(pred: Any, timeout_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not pred():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s} s: {what}") from None


@pytest.mark.slow
async def test_second_dispatcher_stands_by_then_takes_over_a_killed_holder(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    cfg_path = _write_config(tmp_path, mosquitto.port)
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gridflex",
        "cloud",
        "--config",
        str(cfg_path),
        "--role",
        "dispatch",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []

    async def read() -> None:
        assert holder.stdout is not None
        async for raw in holder.stdout:
            lines.append(raw.decode(errors="replace"))

    reader = asyncio.create_task(read())
    standby: CloudController | None = None
    task: asyncio.Task[None] | None = None
    try:
        await _until(
            lambda: any("API on http" in x for x in lines), 60, "the holder's API up\n" + "".join(lines)
        )
        await _until(lambda: any("dispatch lease acquired" in x for x in lines), 30, "the holder's lease")
        api = re.search(r"API on http://127\.0\.0\.1:(\d+)/", "".join(lines))
        assert api is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.group(1)}") as http:
            held = (await http.get("/readyz")).json()["checks"]["lease"]
        assert held["ok"] and "held (fencing token 1)" in held["detail"]

        cfg = load_cloud_config(cfg_path)
        standby = CloudController(
            cfg,
            load_registry(cfg.registry or cfg_path),
            clock=RealClock(),
            planner=IdlePlanner(),
            role="dispatch",
        )
        lease = standby.lease
        assert lease is not None
        task = asyncio.create_task(standby.run())
        await _until(lambda: lease.status.state == "standby" and standby.api_port is not None, 20, "standby")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{standby.api_port}") as http:
            waiting = await http.get("/readyz")
        body = waiting.json()
        assert waiting.status_code == 503 and set(body["failing"]) == {"broker", "lease"}
        assert f":{holder.pid}:" in body["checks"]["lease"]["detail"]
        assert body["checks"]["lease"]["detail"].startswith("standby: lease held by lease-test-dispatch@")
        await asyncio.sleep(2 * RENEW_S)  # several attempts: still standby, never on the broker
        assert lease.status.state == "standby" and standby.session.connect_count == 0

        os.kill(holder.pid, signal.SIGKILL)  # no release: the standby waits for the expiry
        killed_at = datetime.now(UTC).timestamp()
        await _until(lambda: _state(lease) == "held", TTL_S + 10, "takeover after expiry")
        assert lease.token == 2 and lease.status.expires_at is not None
        assert lease.acquired_at is not None and lease.acquired_at.timestamp() >= killed_at
        await standby.session.wait_connected(10)
        stored = SqliteStore(tmp_path / "shared.sqlite")
        try:
            row = stored.read_lease("dispatch")
            assert row is not None and row[0] == lease.holder and row[1] == 2

            task.cancel()  # a clean exit releases the lease at once
            with pytest.raises(asyncio.CancelledError):
                await task
            task = None
            row = stored.read_lease("dispatch")
            assert row is not None and row[2] == 0.0
            successor = DispatchLease(
                stored, holder="successor", clock=RealClock(), ttl_s=TTL_S, renew_s=RENEW_S
            )
            await asyncio.wait_for(successor.acquire(), RENEW_S)  # first attempt, no expiry to wait for
            assert successor.token == 3
        finally:
            stored.close()
    finally:
        if task is not None:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        if holder.returncode is None:
            holder.kill()
        await asyncio.wait_for(holder.wait(), 20)
        reader.cancel()
