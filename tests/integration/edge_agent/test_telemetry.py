"""Telemetry end to end: Modbus device -> agent -> SQLite -> Mosquitto -> cloud, scaled and signed."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.drivers.registers import encode
from gridflex.ops.broker import MosquittoBroker

from .cloud import Cloud
from .helpers import make_config, running_agent
from .servers import ModbusServer

pytestmark = pytest.mark.integration


async def test_telemetry_arrives_in_seq_order_scaled_and_signed(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    server = await ModbusServer().start()
    try:
        await server.set_holding(83, [4200, 0])  # inverter: 4200 W generated, W_SF = 0
        await server.set_holding(200, encode(-2.5, "float32"))  # battery discharging 2.5 kW
        await server.set_holding(202, [563])  # 56.3 %
        cfg = make_config(tmp_path, broker_port=mosquitto.port, modbus_port=server.port)
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg) as agent:
            await cloud.wait_for(lambda: cloud.values("pv1", "p_kw") and cloud.values("bat1", "soc_pct"))
            pv = cloud.values("pv1", "p_kw")[0]
            assert pv.value == pytest.approx(-4.2) and pv.unit == "kW" and pv.quality == "good"
            assert cloud.values("bat1", "p_kw")[0].value == pytest.approx(-2.5)
            assert cloud.values("bat1", "soc_pct")[0].value == pytest.approx(56.3)
            await server.set_holding(83, [5000, 0xFFFF])  # 5000 * 10**-1 W = 0.5 kW
            await cloud.wait_for(
                lambda: any(s.value == pytest.approx(-0.5) for s in cloud.values("pv1", "p_kw"))
            )
            for i in range(10):  # a changing counter: one sample per poll
                await server.set_holding(300, encode(i, "uint32"))
                await cloud.wait_for(lambda i=i: any(s.value == i for s in cloud.values("pv1", "counter")))
            assert cloud.arrivals == sorted(cloud.arrivals) and len(set(cloud.arrivals)) == len(
                cloud.arrivals
            )
            assert cloud.arrivals == list(range(len(cloud.arrivals)))
            await cloud.wait_for(lambda: agent.stats.queue_depth == 0)  # watermark released the rows
            assert agent.stats.published >= len(cloud.arrivals)
            assert cloud.states and cloud.states[0].status == "online"
    finally:
        await server.stop()


async def test_lost_queue_file_does_not_make_new_samples_duplicates(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """The cloud already stored seqs up to 999 of this site (old gateway): new samples start at 1000."""
    server = await ModbusServer().start()
    try:
        cfg = make_config(tmp_path, broker_port=mosquitto.port, modbus_port=server.port)
        cloud = Cloud("t1", mosquitto.port)
        cloud.stored_seq = 999  # published retained when the cloud starts
        async with cloud.running(), running_agent(cfg) as agent:
            await cloud.wait_for(lambda: cloud.stored_seq >= 1005)
            assert min(cloud.samples) == 1000
            assert agent.stats.next_seq > 1005
            await cloud.wait_for(lambda: any(e.kind == "seq_jump" for e in cloud.events))
    finally:
        await server.stop()
