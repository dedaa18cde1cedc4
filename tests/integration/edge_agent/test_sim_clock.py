"""The agent on an accelerated SimClock (as in the demo): the default 300 s fallback in about 2 s of wall time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gridflex.ops.broker import MosquittoBroker
from protocols.clock import SimClock

from .cloud import Cloud
from .helpers import make_config, running_agent
from .servers import ModbusServer

pytestmark = pytest.mark.integration

SPEED = 200.0


async def test_default_fallback_on_an_accelerated_clock(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    server = await ModbusServer().start()
    clock = SimClock(datetime(2030, 1, 15, 6, tzinfo=UTC), speed=SPEED)

    def defaults(data: dict[str, Any]) -> None:
        data["fallback"]["after_s"] = 300.0
        data["poll"]["interval_s"] = 10.0

    try:
        cfg = make_config(tmp_path, broker_port=mosquitto.port, modbus_port=server.port, overrides=defaults)
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg, clock) as agent:
            t0_sim, t0_wall = clock.monotonic(), time.monotonic()
            await cloud.wait_for(lambda: agent.stats.state == "fallback", timeout_s=10)
            sim_s = clock.monotonic() - t0_sim
            assert 299.0 <= sim_s <= 300.0 + 10.0 + 5.0  # within one poll interval (+ scheduling slack)
            assert time.monotonic() - t0_wall < 5
            await cloud.wait_for(lambda: any(e.kind == "fallback_entered" for e in cloud.events))
            assert await server.get_holding(400) == [16]
            # samples carry simulated time
            await cloud.wait_for(lambda: cloud.samples)
            first = min(cloud.samples.values(), key=lambda s: s.seq)
            assert first.ts >= datetime(2030, 1, 15, 6, tzinfo=UTC)
    finally:
        await server.stop()
