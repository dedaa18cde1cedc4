"""The agent as a process (`gridflex edge --config`): SIGKILL loses nothing, SIGTERM exits 0."""

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
from .servers import ModbusServer

pytestmark = pytest.mark.integration

GRIDFLEX = Path(sys.executable).parent / "gridflex"


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [GRIDFLEX, "edge", "--config", str(config)], stdout=out, stderr=out, start_new_session=True
        )


def _config(tmp_path: Path, broker: MosquittoBroker, server: ModbusServer) -> Path:
    data: dict[str, Any] = site_dict(tmp_path, broker_port=broker.port, modbus_port=server.port)
    data["poll"]["max_age_s"] = 0.1
    return write_site(tmp_path, data)


async def test_sigkill_during_publishing_loses_nothing_and_seq_continues(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    server = await ModbusServer().start()
    log = tmp_path / "agent.log"
    proc = _start(_config(tmp_path, mosquitto, server), log)
    try:
        cloud = Cloud("t1", mosquitto.port, watermark=False)  # no watermark yet: rows stay queued
        async with cloud.running():
            await cloud.wait_for(lambda: len(cloud.samples) > 150, timeout_s=30)
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10)
            last_before = max(cloud.samples)
            cloud.watermark = True  # now the cloud acknowledges what it stored
            proc = _start(_config(tmp_path, mosquitto, server), log)
            await cloud.wait_for(lambda: cloud.stored_seq > last_before + 100, timeout_s=30)
        top = max(cloud.samples)
        assert sorted(cloud.samples) == list(range(top + 1)), "a queued sample was lost"
        assert top > last_before + 100
        # the second run replayed the queue from seq 0 (not released) and continued after the last seq
        assert cloud.arrivals.count(0) >= 2
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        await server.stop()


async def test_sigterm_exits_zero_and_says_offline(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    server = await ModbusServer().start()
    proc = _start(_config(tmp_path, mosquitto, server), tmp_path / "agent.log")
    try:
        async with Cloud("t1", mosquitto.port).running() as cloud:
            await cloud.wait_for(lambda: len(cloud.samples) > 10, timeout_s=30)
            proc.send_signal(signal.SIGTERM)
            rc = await asyncio.to_thread(proc.wait, 15)
            assert rc == 0, (tmp_path / "agent.log").read_text()[-2000:]
            await cloud.wait_for(lambda: cloud.states and cloud.states[-1].status == "offline")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        await server.stop()
