"""Children die with their parent: a process that started a Mosquitto is killed, the broker goes too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gridflex.ops import children

pytestmark = pytest.mark.integration

# A parent that starts a MosquittoBroker the way the demo does (from a worker thread of the
# event loop), prints the broker's PID and waits to be killed.
PARENT = textwrap.dedent(
    """
    import asyncio, sys, time
    from gridflex.ops.broker import MosquittoBroker
    async def main():
        broker = MosquittoBroker()
        await asyncio.to_thread(broker.start)
        print(broker.pid, flush=True)
        await asyncio.sleep(600)
    asyncio.run(main())
    """
)
BOUND_S = 20.0  # generous: the kernel signals at once; a loaded machine may take a while to schedule


def _alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (a zombie is dead, only not yet reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"


def _wait_gone(pid: int, bound_s: float) -> bool:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_mosquitto_dies_with_the_process_that_started_it(sig: signal.Signals) -> None:
    parent = children.spawn([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    broker_pid = 0
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # the broker is up when its PID is printed
        broker_pid = int(line)
        assert _alive(broker_pid)
        parent.send_signal(sig)
        parent.wait(timeout=BOUND_S)
        assert _wait_gone(broker_pid, BOUND_S), f"mosquitto {broker_pid} outlived its parent"
    finally:
        children.stop(parent)
        if broker_pid and _alive(broker_pid):  # only the PID we were told is ours
            os.kill(broker_pid, signal.SIGKILL)


def test_stop_is_bounded_when_the_child_ignores_sigterm() -> None:
    proc = children.spawn(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"1"
    rc = children.stop(proc, term_s=0.5, kill_s=10.0)
    assert rc == -signal.SIGKILL
