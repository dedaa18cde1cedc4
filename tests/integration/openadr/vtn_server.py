"""The controller's real HTTP app (create_app) with the VTN enabled, served by uvicorn on loopback.

No broker: the VTN's routes need none, and the API is served the way `service_api.serve_api`
serves it (uvicorn's `_serve` on its own event loop, here in a thread so the test's thread can
run a subprocess and plain HTTP calls). Stopping is bounded (should_exit, join with a timeout).
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from protocols.clock import RealClock

__all__ = ["Vtn", "bearer", "clients_of", "close_controller", "config", "serving"]


def config(tmp: Path) -> CloudConfig:
    return CloudConfig.model_validate(
        {
            "store": {"path": str(tmp / "store.sqlite")},
            "control": {"dispatch": False, "guard_period_s": 0},
            "api": {"host": "127.0.0.1", "port": 0},
            "dashboard": {"enabled": False},
            "openadr": {"enabled": True, "credentials_file": str(tmp / "oa3-clients.yaml")},
        }
    )


def clients_of(cfg: CloudConfig) -> dict[str, tuple[str, str]]:
    """role → (client_id, secret), read from the file the VTN generated."""
    assert cfg.openadr.credentials_file is not None
    doc = yaml.safe_load(cfg.openadr.credentials_file.read_text())
    return {c["role"]: (c["client_id"], c["secret"]) for c in doc["clients"]}


class Vtn:
    """A running server: its base URL and the controller behind it."""

    def __init__(self, url: str, ctl: CloudController) -> None:
        self.url = url
        self.ctl = ctl


@contextmanager
def serving(cfg: CloudConfig) -> Iterator[Vtn]:
    ctl = CloudController(cfg, Registry(sites=()), clock=RealClock())
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctl), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server._serve()), name="vtn", daemon=True)
    thread.start()
    try:
        for _ in range(600):  # up to 60 s on a loaded machine: wait for the condition, not a fixed time
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.1)
        assert server.started, "uvicorn did not start"
        port = int(server.servers[0].sockets[0].getsockname()[1])
        yield Vtn(f"http://127.0.0.1:{port}/openadr3", ctl)
    finally:
        server.should_exit = True
        thread.join(15)
        close_controller(ctl)


def close_controller(ctl: CloudController) -> None:
    """Close what a controller that was never run opened: its store, DR and market records, the VTN."""
    ctl.store.close()
    ctl.dr.close()
    ctl.market.close()
    if ctl.openadr is not None:
        ctl.openadr.close()


def bearer(url: str, client_id: str, secret: str) -> dict[str, Any]:
    """A token the way the ElaadNL client gets one (form body, HTTP Basic), as headers."""
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    r = httpx.post(
        f"{url}/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=30,
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
