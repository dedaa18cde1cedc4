"""The agent as a process (`gridflex edge --config`): SIGKILL 5x loses no polled sample, SIGTERM exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gridflex.chaos.compare import StoredSample, check_samples, parse_poll_log
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
    data["buffer"]["poll_log_file"] = str(tmp_path / "poll.csv")  # what was polled, before the commit
    return write_site(tmp_path, data)


def _stored(cloud: Cloud) -> list[StoredSample]:
    return [
        StoredSample(seq, f"{s.asset}/{s.point}", round(s.ts.timestamp(), 6))
        for seq, s in cloud.samples.items()
    ]


# 5 kills cost ~10 s of process start each on a loaded CI machine: the default run kills
# twice, the slow run (and `gridflex chaos`, agent_kill) five times.
@pytest.mark.parametrize(
    "kills", [pytest.param(2, id="2x"), pytest.param(5, id="5x", marks=pytest.mark.slow)]
)
async def test_sigkill_during_publishing_loses_no_polled_sample_and_seq_continues(
    mosquitto: MosquittoBroker, tmp_path: Path, kills: int
) -> None:
    server = await ModbusServer().start()
    log = tmp_path / "agent.log"
    config = _config(tmp_path, mosquitto, server)
    proc = _start(config, log)
    try:
        cloud = Cloud("t1", mosquitto.port, watermark=False)  # no watermark yet: rows stay queued
        async with cloud.running():
            last_before = -1
            for kill in range(kills):
                # the agent is streaming (new seqs arrive), then it dies mid-publish
                target = max(cloud.samples, default=-1) + 40
                await cloud.wait_for(lambda t=target: max(cloud.samples, default=-1) > t, timeout_s=60)
                os.kill(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait, 10)
                last_before = max(cloud.samples)
                if kill == kills - 1:
                    cloud.watermark = True  # now the cloud acknowledges what it stored
                proc = _start(config, log)
            await cloud.wait_for(lambda: cloud.stored_seq > last_before + 100, timeout_s=60)
            polled = parse_poll_log((tmp_path / "poll.csv").read_text())
            polled = [p for p in polled if p.seq <= last_before + 100]  # a cut the cloud has surely stored
            check = check_samples(polled, _stored(cloud))
        top = max(cloud.samples)
        assert sorted(cloud.samples) == list(range(top + 1)), "a queued sample was lost"
        assert (check.lost, check.duplicates, check.out_of_order) == (0, 0, 0), check
        assert check.polled > kills * 40
        # every run replayed the queue from seq 0 (never released before the end) and continued
        assert cloud.arrivals.count(0) >= kills
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
