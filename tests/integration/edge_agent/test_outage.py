"""Broker outage at 10 Hz polling: after the broker returns, every seq arrives, in order, none missing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gridflex.broker import MosquittoBroker

from .cloud import Cloud
from .helpers import make_config, running_agent
from .servers import ModbusServer

pytestmark = pytest.mark.integration


def _heartbeat_every_poll(data: dict[str, Any]) -> None:
    data["poll"]["max_age_s"] = 0.1  # every 10 Hz poll publishes every point


@pytest.mark.parametrize(
    "outage_s", [pytest.param(5.0, id="5s"), pytest.param(30.0, id="30s", marks=pytest.mark.slow)]
)
async def test_broker_outage_loses_nothing_and_keeps_order(
    mosquitto: MosquittoBroker, tmp_path: Path, outage_s: float
) -> None:
    server = await ModbusServer().start()
    try:
        cfg = make_config(
            tmp_path, broker_port=mosquitto.port, modbus_port=server.port, overrides=_heartbeat_every_poll
        )
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg) as agent:
            await cloud.wait_for(lambda: len(cloud.samples) > 50)
            await asyncio.to_thread(mosquitto.kill)  # SIGKILL by PID: in-flight messages are lost
            await asyncio.sleep(outage_s)
            queued = agent.stats.queue_depth
            seq_at_restart = agent.stats.next_seq
            assert not agent.stats.connected
            await asyncio.to_thread(mosquitto.start)
            await cloud.wait_for(lambda: cloud.stored_seq >= seq_at_restart + 20, timeout_s=30)
        assert queued >= outage_s * 10 * 7  # ~9 points at 10 Hz were stored meanwhile
        top = max(cloud.samples)
        assert sorted(cloud.samples) == list(range(top + 1)), "a seq is missing"
        # Replay is ordered: within each batch and across batches the first arrival of each seq increases.
        first_seen: list[int] = []
        seen: set[int] = set()
        for seq in cloud.arrivals:
            if seq not in seen:
                seen.add(seq)
                first_seen.append(seq)
        assert first_seen == sorted(first_seen)
    finally:
        await server.stop()


async def test_bounded_queue_drops_oldest_with_counter_and_event(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    server = await ModbusServer().start()

    def small_queue(data: dict[str, Any]) -> None:
        _heartbeat_every_poll(data)
        data["buffer"]["max_rows"] = 100

    try:
        cfg = make_config(
            tmp_path, broker_port=mosquitto.port, modbus_port=server.port, overrides=small_queue
        )
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg) as agent:
            await cloud.wait_for(lambda: len(cloud.samples) > 20)
            await asyncio.to_thread(mosquitto.kill)
            await asyncio.sleep(3.0)  # ~240 samples into a queue of 100
            assert agent.stats.queue_depth == 100 and agent.stats.dropped > 50
            await asyncio.to_thread(mosquitto.start)
            top = agent.stats.next_seq
            await cloud.wait_for(lambda: any(e.kind == "queue_dropped" for e in cloud.events), timeout_s=15)
            await cloud.wait_for(lambda: max(cloud.samples) >= top, timeout_s=15)
        missing = sorted(set(range(max(cloud.samples) + 1)) - set(cloud.samples))
        # Drop-oldest on a contiguous queue loses one contiguous run (rows dropped after they
        # were sent but before the watermark reached the edge are counted but not missing).
        assert missing and missing == list(range(missing[0], missing[-1] + 1))
        assert len(missing) <= agent.stats.dropped
    finally:
        await server.stop()
