"""Starting the BACnet stack must not stall the agent: no false faults for its Modbus devices at start.

The agent runs as its own process (`gridflex edge`), so BAC0 is imported and started
there for the first time, as on a gateway.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gridflex.ops.broker import MosquittoBroker

from .cloud import Cloud
from .helpers import site_dict, write_site
from .servers import BacnetServer, ModbusServer

pytestmark = pytest.mark.integration


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [Path(sys.executable).parent / "gridflex", "edge", "--config", str(config)],
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


async def test_agent_with_a_bacnet_device_reports_no_false_modbus_faults_at_start(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    modbus = await ModbusServer().start()
    bms = await BacnetServer(analog_inputs={1: 21.5}).start()

    def add_bms(data: dict[str, Any]) -> None:
        data["poll"]["max_age_s"] = 0.1  # every Modbus point every 0.1 s: a stall shows at once
        data["devices"][0]["timeout_s"] = 2.0  # a slow read under load is not the fault this test looks for
        data["devices"].append(
            {
                "id": "bms",
                "driver": "bacnet",
                "address": bms.address,
                "device_id": bms.device_id,
                "timeout_s": 2.0,
            }
        )
        data["assets"].append(
            {
                "id": "zone1",
                "kind": "hvac",
                "points": [{"name": "zone_t_c", "device": "bms", "object": "analogInput:1", "unit": "degC"}],
            }
        )

    data = site_dict(tmp_path, broker_port=mosquitto.port, modbus_port=modbus.port)
    add_bms(data)
    proc = _start(write_site(tmp_path, data), tmp_path / "agent.log")
    try:
        async with Cloud("t1", mosquitto.port).running() as cloud:
            await cloud.wait_for(lambda: cloud.values("zone1", "zone_t_c"), timeout_s=30)
            await asyncio.sleep(1.0)
            modbus_samples = [s for s in cloud.samples.values() if s.asset != "zone1"]
            assert len(modbus_samples) > 50
            # `stale` (a slow read on a loaded machine) is allowed; `bad` says the device failed
            assert [s for s in modbus_samples if s.quality == "bad"] == []
            assert [e.kind for e in cloud.events if e.kind in ("device_fault", "point_bad")] == []
            assert cloud.values("zone1", "zone_t_c")[0].value == pytest.approx(21.5)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        await bms.stop()
        await modbus.stop()
