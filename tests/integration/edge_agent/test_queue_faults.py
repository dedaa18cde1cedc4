"""Queue faults against real processes: a corrupt queue file at start, and a full disk while running."""

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
from .helpers import make_config, running_agent, site_dict, write_site
from .servers import ModbusServer

pytestmark = pytest.mark.integration

GRIDFLEX = Path(sys.executable).parent / "gridflex"


def _start_on_corrupt_queue(tmp_path: Path, data: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    queue = Path(data["buffer"]["path"])
    queue.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))  # a header, then garbage
    with log.open("ab") as out:
        return subprocess.Popen(
            [GRIDFLEX, "edge", "--config", str(write_site(tmp_path, data))],
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def _kept_queue(tmp_path: Path) -> bytes | None:
    """The first bytes of the corrupt queue file the agent moved aside, None if there is none."""
    kept = [p for p in tmp_path.glob("buf.sqlite.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    return kept[0].read_bytes()[:64] if len(kept) == 1 else None


async def test_agent_started_on_a_corrupt_queue_keeps_it_aside_says_so_and_keeps_publishing(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    server = await ModbusServer().start()
    data: dict[str, Any] = site_dict(tmp_path, broker_port=mosquitto.port, modbus_port=server.port)
    data["poll"]["max_age_s"] = 0.1
    log = tmp_path / "agent.log"
    proc = _start_on_corrupt_queue(tmp_path, data, log)
    try:
        async with Cloud("t1", mosquitto.port).running() as cloud:
            await cloud.wait_for(lambda: len(cloud.samples) > 20 or proc.poll() is not None, timeout_s=30)
            assert proc.poll() is None, log.read_text()[-2000:]
            await cloud.wait_for(lambda: any(e.kind == "queue_corrupt" for e in cloud.events))
            await cloud.wait_for(lambda: any(s.status == "degraded" for s in cloud.states))
            state = next(s for s in cloud.states if s.status == "degraded")
            assert "corrupt" in (state.reason or "")
            kept = _kept_queue(tmp_path)
            assert kept is not None and kept.startswith(b"SQLite format 3"), "the corrupt file was not kept"
            n = len(cloud.samples)
            await cloud.wait_for(lambda: len(cloud.samples) > n + 20)  # and it goes on
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        await server.stop()


async def test_full_disk_gives_event_degraded_state_and_counted_drops_then_recovers(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    server = await ModbusServer().start()

    def every_poll(data: dict[str, Any]) -> None:
        data["poll"]["max_age_s"] = 0.1  # every point every poll: the queue grows steadily

    try:
        cfg = make_config(tmp_path, broker_port=mosquitto.port, modbus_port=server.port, overrides=every_poll)
        # The cloud stores nothing (no watermark), so rows stay and the file must grow.
        async with (
            Cloud("t1", mosquitto.port, watermark=False).running() as cloud,
            running_agent(cfg) as agent,
        ):
            await cloud.wait_for(lambda: len(cloud.samples) > 10 and cloud.states)
            assert agent._pipe is not None
            db = agent._pipe.buffer._db  # no tmpfs here: SQLite's own cap makes the file "full"
            db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")
            await cloud.wait_for(
                lambda: any(e.kind == "queue_write_failed" for e in cloud.events), timeout_s=20
            )
            event = next(e for e in cloud.events if e.kind == "queue_write_failed")
            assert event.severity == "error" and event.details["error"] == "SQLITE_FULL"
            assert isinstance(event.details["dropped"], int) and event.details["dropped"] > 0
            await cloud.wait_for(lambda: cloud.states[-1].status == "degraded")
            assert "SQLITE_FULL" in (cloud.states[-1].reason or "")
            assert agent.stats.write_dropped > 0 and agent.stats.degraded is not None
            assert agent.latest["pv1.p_kw"].quality == "good"  # polling goes on meanwhile
            db.execute("PRAGMA max_page_count=1073741823")  # space again
            await cloud.wait_for(lambda: any(e.kind == "queue_write_recovered" for e in cloud.events))
            await cloud.wait_for(lambda: cloud.states[-1].status == "online")
            n = len(cloud.samples)
            await cloud.wait_for(lambda: len(cloud.samples) > n + 10)
        seqs = sorted(cloud.samples)
        assert seqs == list(range(len(seqs))), "dropped samples must not leave a seq gap"
    finally:
        await server.stop()


async def test_agent_that_cannot_open_any_queue_leaves_every_asset_safe_before_it_exits(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    server = await ModbusServer().start()
    blocker = tmp_path / "not-a-directory"

    def unopenable_queue(data: dict[str, Any]) -> None:
        data["buffer"]["path"] = str(blocker / "queue.sqlite")  # its parent is a file

    try:
        blocker.write_text("a file where the state directory should be")
        cfg = make_config(
            tmp_path, broker_port=mosquitto.port, modbus_port=server.port, overrides=unopenable_queue
        )
        await server.set_holding(400, [3])  # the EV charger left at 3 A (2.07 kW, under the floor)
        with pytest.raises(OSError):
            async with running_agent(cfg) as agent:
                await asyncio.sleep(0.5)
        assert agent.stats.state == "stopped"
        assert await server.get_holding(400) == [16]  # EV safe state written before the exit
        assert await server.get_holding(165) == [0]  # PV limit disabled
    finally:
        await server.stop()
