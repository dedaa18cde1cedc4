"""A device that goes silent or answers with exception codes: bad quality + event, others unaffected, recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_agent.drivers.registers import encode
from gridflex.ops.broker import MosquittoBroker

from .cloud import Cloud
from .helpers import make_config, running_agent
from .servers import ModbusServer

pytestmark = pytest.mark.integration


async def test_silent_device_is_bad_others_keep_publishing_and_it_recovers(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    main = await ModbusServer().start()
    meter = await ModbusServer().start()

    def add_meter(data: dict[str, Any]) -> None:
        data["poll"]["max_age_s"] = 0.2
        data["devices"].append(
            {"id": "meter", "driver": "modbus", "host": "127.0.0.1", "port": meter.port, "timeout_s": 0.3}
        )
        data["assets"].append(
            {
                "id": "grid",
                "kind": "meter",
                "points": [
                    {
                        "name": "p_kw",
                        "device": "meter",
                        "table": "holding",
                        "address": 10,
                        "type": "int32",
                        "scale": 0.001,
                        "unit": "kW",
                    },
                    # beyond the server's 1000 registers: exception code 2 on every read
                    {
                        "name": "q_kvar",
                        "device": "meter",
                        "table": "holding",
                        "address": 5000,
                        "type": "int16",
                        "unit": "kvar",
                    },
                ],
            }
        )

    try:
        await meter.set_holding(10, encode(1500, "int32"))
        cfg = make_config(tmp_path, broker_port=mosquitto.port, modbus_port=main.port, overrides=add_meter)
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg):
            await cloud.wait_for(lambda: cloud.values("grid", "p_kw") and cloud.values("grid", "q_kvar"))
            assert cloud.values("grid", "p_kw")[0].value == pytest.approx(1.5)
            q = cloud.values("grid", "q_kvar")[0]
            assert q.quality == "bad" and "exception code 2" in (q.reason or "")
            await cloud.wait_for(lambda: any(e.kind == "point_bad" for e in cloud.events))

            await meter.stop()
            await cloud.wait_for(lambda: any(s.quality == "bad" for s in cloud.values("grid", "p_kw")))
            await cloud.wait_for(lambda: any(e.kind == "device_fault" for e in cloud.events))
            bad_from = max(cloud.samples)
            await cloud.wait_for(
                lambda: len([s for s in cloud.values("pv1", "p_kw") if s.seq > bad_from]) >= 3, timeout_s=10
            )
            later_pv = [s for s in cloud.values("pv1", "p_kw") if s.seq > bad_from]
            assert all(s.quality != "bad" for s in later_pv), (
                "the healthy device failed beside the silent one"
            )

            await meter.start()
            await meter.set_holding(10, encode(-2000, "int32"))
            await cloud.wait_for(
                lambda: any(
                    s.value == pytest.approx(-2.0) and s.quality == "good"
                    for s in cloud.values("grid", "p_kw")
                ),
                timeout_s=15,
            )
            await cloud.wait_for(lambda: any(e.kind == "device_recovered" for e in cloud.events))
    finally:
        await meter.stop()
        await main.stop()
