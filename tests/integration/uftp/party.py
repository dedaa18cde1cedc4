"""Driving the other party (`uftp_party.py`, shapeshifter-uftp in `.venv-uftp`) from the tests.

`run_once(job)` for a one-shot job (the codec); `Party(job)` for a service that listens
until the test is done: it waits for `READY`, and `finish()` closes its stdin and returns
what it received. GridFlex's own side runs in this process under uvicorn on loopback
(`serving`), with its keys generated here, never stored.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[3]
PARTY = Path(__file__).with_name("uftp_party.py")


def uftp_python() -> Path:
    """The other party's interpreter; missing is a set-up error in CI (never a silent skip)."""
    py = Path(os.environ.get("GRIDFLEX_UFTP_PYTHON", ROOT / ".venv-uftp" / "bin" / "python"))
    if not py.exists():
        msg = f"{py} missing: build shapeshifter-uftp's venv with `make uftp-venv` (PyPI or a pip mirror needed)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_once(job: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [str(uftp_python()), str(PARTY)],
        input=json.dumps(job) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"shapeshifter-uftp party failed:\n{proc.stderr[-4000:]}"
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def library_dso_config(
    theirs_private_b64: str,
    ours_public_b64: str,
    agr_url: str,
    congestion_point: str,
    activation_factor: float,
    **extra: Any,
) -> dict[str, Any]:
    """The library DSO's job for our AGR: its key, us as its peer, one FlexRequest (ISPs 73-74, up to 15 kW down).

    Written once for the AGR-role tests; `extra` adds job keys such as `settlement`.
    """
    return {
        "mode": "dso",
        "domain": "dso.test",
        "private_key": theirs_private_b64,
        "peer": {"domain": "gridflex.test", "public_key": ours_public_b64, "endpoint": agr_url},
        "request": {
            "period": "2026-12-03",
            "congestion_point": congestion_point,
            "expiration": "2026-12-03T15:00:00+00:00",
            "isps": [{"min_power": -15000, "max_power": 0, "start": 73, "duration": 2}],
        },
        "activation_factor": activation_factor,
        **extra,
    }


class Party:
    """The library's service in a child process, listening on `port`."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/shapeshifter/api/v3/message"
        self.job = {**job, "port": self.port}
        self.proc: subprocess.Popen[str] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(uftp_python()), str(PARTY)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(self.job) + "\n")
        self.proc.stdin.flush()
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), 30)
        if line.strip() != "READY":
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"party did not start: {line!r}\n{err[-4000:]}")

    async def finish(self) -> dict[str, Any]:
        assert self.proc is not None
        out, err = await asyncio.to_thread(self.proc.communicate, "", 30)
        assert self.proc.returncode == 0, f"party failed:\n{err[-4000:]}"
        return dict(json.loads(out.strip().splitlines()[-1]))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` under uvicorn on a loopback port in this event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def wait_for(predicate: Any, timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll `predicate()` until true (the replies arrive as later messages, not HTTP responses)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)
