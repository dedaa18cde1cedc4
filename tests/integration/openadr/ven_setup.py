"""What the VEN bridge and VEN registration tests set up alike: the config, the app and activator, the BL, the VEN's clients.

Why a module: both test files start the same parties on loopback (the controller's app
under uvicorn with its DR activator, ElaadNL's `openadr3-client` BL in its 3.12 venv, the
VEN's VTN and DR API clients); one statement of each keeps their numbers in one place.
The fixtures that close them after a test are in this folder's `conftest.py`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.openadr.ven.clients import DrApiClient, VtnClient
from cloud_controller.openadr.ven.config import VenCredentials
from cloud_controller.service import CloudController
from protocols.clock import Clock
from tests.integration.openadr.test_openadr_interop import oa3_python

__all__ = [
    "CONTRACTS",
    "OPERATOR",
    "PARTY",
    "Party",
    "bridge_config",
    "serving_app",
    "ven_clients",
    "wait_for",
]

PARTY = Path(__file__).with_name("ven_party.py")
OPERATOR = "operator-0123456789abcdef"
CONTRACTS = """
contracts:
  - {site: a, program: peak, directions: [reduce], p_max_kw: 20, events_per_day: 10,
     max_duration: PT2H, min_notice: PT0S}
"""


def bridge_config(tmp: Path, **openadr: Any) -> CloudConfig:
    """The controller's config: no dispatch, the API with the operator token, site a's contract, the VTN on."""
    (tmp / "contracts.yaml").write_text(CONTRACTS, encoding="utf-8")
    (tmp / "op").write_text(OPERATOR, encoding="utf-8")
    return CloudConfig.model_validate(
        {
            "store": {"path": str(tmp / "store.sqlite")},
            "control": {"dispatch": False, "guard_period_s": 0},
            "api": {"host": "127.0.0.1", "port": 0, "operator_token_file": str(tmp / "op")},
            "dashboard": {"enabled": False},
            "dr": {"contracts": str(tmp / "contracts.yaml"), "report_after_s": 0},
            "openadr": {"enabled": True, "credentials_file": str(tmp / "oa3-clients.yaml"), **openadr},
        }
    )


@contextmanager
def serving_app(ctl: CloudController, loops: list[asyncio.AbstractEventLoop] | None = None) -> Iterator[str]:
    """The app under uvicorn and the DR activator's loop (period 0.1 s) on one event loop, in a thread.

    With `loops` given, the activator's loop is not started (a SimClock test ticks it itself)
    and the server's event loop is appended, so the test can run coroutines on it.
    """
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctl), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )

    async def main() -> None:
        if loops is not None:
            loops.append(asyncio.get_running_loop())
            await server._serve()
            return
        activator = asyncio.create_task(ctl.dr_activator.run(period_s=0.1))
        try:
            await server._serve()
        finally:
            activator.cancel()
            await asyncio.gather(activator, return_exceptions=True)

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="vtn", daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)


class Party:
    """The BL subprocess: one JSON line per command, one per answer."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [str(oa3_python()), str(PARTY)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"OAUTHLIB_INSECURE_TRANSPORT": "1", "PATH": "/usr/bin:/bin"},
        )
        assert self.ask(job) == {"ready": True}

    def ask(self, cmd: dict[str, Any]) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"openadr3-client party died:\n{err[-4000:]}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.flush()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def ven_clients(
    http: httpx.AsyncClient, vtn_url: str, dr_api_url: str, ven: tuple[str, str], clock: Clock
) -> tuple[VtnClient, DrApiClient]:
    """The VEN's two clients over `http`: the VTN with the VEN's (client id, secret), the DR API as the operator."""
    creds = VenCredentials(client_id=ven[0], secret=ven[1])
    return VtnClient(http, vtn_url, creds, clock=clock), DrApiClient(http, dr_api_url, OPERATOR)


async def wait_for(cond: Any, what: str, timeout_s: float = 20.0) -> None:
    """Poll the coroutine function `cond` every 0.1 s until it is true; past `timeout_s`, fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
