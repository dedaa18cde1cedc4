"""DR activation figure (marker `bench`, printed): request → commands on the broker at 100 sites (target ≤ 5 s).

A real Mosquitto and the real controller with 100 registered battery sites under one programme;
a probe subscribed to every site's `cmd` topic. Measured on the host's wall clock: from the
`POST /dr/requests` (check, selection, preparation, the first interval's commands through the
service's sender) to the 100th command arriving at the probe. The anchor, in the same run: the
same controller publishing 100 ordinary commands through that sender (`_publish_commands`),
so the ratio is what the DR path adds over the bare publish. No timed assertion.

Run: `.venv/bin/pytest -m bench -s tests/bench/test_dr_activation_bench.py`
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import httpx
import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.live.types import AssetRef, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from gridflex.ops.broker import MosquittoBroker
from protocols.clock import RealClock
from protocols.codec import decode
from protocols.messages import Command
from protocols.topics import site_wildcard

pytestmark = pytest.mark.bench

N_SITES = 100
TOKEN = "operator-0123456789abcdef"


def _sites() -> list[str]:
    return [f"b{i + 1:03d}" for i in range(N_SITES)]


def _contracts() -> str:
    rows = [
        f"  - {{site: {s}, program: peak, directions: [reduce], p_max_kw: 3, events_per_day: 5, "
        f"max_duration: PT1H, battery: {{asset: bat1, capacity_kwh: 10}}}}"
        for s in _sites()
    ]
    return "contracts:\n" + "\n".join(rows) + "\n"


async def _receive(probe: aiomqtt.Client, n: int, cmd_ids: set[str] | None = None) -> float:
    got = 0
    async with asyncio.timeout(120):
        async for msg in probe.messages:
            m = decode(str(msg.topic), bytes(msg.payload))
            if isinstance(m, Command) and (cmd_ids is None or m.cmd_id in cmd_ids):
                got += 1
                if got == n:
                    return time.perf_counter()
    raise AssertionError("unreachable")


async def test_request_to_commands_on_the_broker_at_100_sites(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(TOKEN, encoding="utf-8")
    (tmp_path / "contracts.yaml").write_text(_contracts(), encoding="utf-8")
    registry = Registry(
        sites=tuple(
            SiteRef(s, i, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0)))
            for i, s in enumerate(_sites())
        )
    )
    cfg = CloudConfig.model_validate(
        {
            "broker": {"port": mosquitto.port, "client_id": "bench-cloud-dra"},
            "store": {"path": str(tmp_path / "store.sqlite")},
            "control": {"dispatch": False},
            "api": {"port": 0, "operator_token_file": str(tmp_path / "token")},
            "dr": {"contracts": str(tmp_path / "contracts.yaml")},
        }
    )
    ctl = CloudController(cfg, registry, clock=RealClock())
    task = asyncio.create_task(ctl.run())
    try:
        async with asyncio.timeout(30):
            await ctl.session.wait_connected(30)
            while ctl.api_port is None:
                await asyncio.sleep(0.05)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="bench-dra-probe") as probe:
            await probe.subscribe(site_wildcard("cmd"), qos=1)
            # anchor: 100 ordinary commands through the same sender
            now = datetime.now(UTC)
            plain = [
                Command(
                    site=s,
                    ts=now,
                    cmd_id=f"anchor-{s}",
                    asset="bat1",
                    kind="p_setpoint_kw",
                    value=0.0,
                    valid_from=now,
                    valid_until=now + timedelta(seconds=60),
                )
                for s in _sites()
            ]
            receiving = asyncio.create_task(_receive(probe, N_SITES, {c.cmd_id for c in plain}))
            t0 = time.perf_counter()
            await ctl._publish_commands(plain)
            anchor_s = await receiving - t0
            # the DR path: post → check → selection → preparation → commands on the broker
            start = datetime.now(UTC) + timedelta(seconds=1)
            body = {
                "program": "peak",
                "ts": datetime.now(UTC).isoformat(),
                "request_id": "bench",
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=15)).isoformat(),
                "direction": "reduce",
                "p_kw": 3.0 * N_SITES,
            }
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{ctl.api_port}", headers=auth, timeout=60
            ) as http:
                receiving = asyncio.create_task(_receive(probe, N_SITES))
                t0 = time.perf_counter()
                posted = await http.post("/dr/requests", json=body)
                dr_s = await receiving - t0
        assert posted.status_code == 201, posted.text
        assert posted.json()["status"] == "selected"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    print(
        f"\nDR request -> {N_SITES} commands on the broker: {dr_s:.2f} s (target <= 5 s); "
        f"anchor ({N_SITES} plain commands through the same sender): {anchor_s:.2f} s; "
        f"ratio {dr_s / anchor_s:.1f}x"
    )
