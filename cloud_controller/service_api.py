"""The controller's HTTP API: uvicorn started inside the controller's TaskGroup and stopped with it.

Why a module of its own: starting and stopping uvicorn inside someone else's event loop
has two traps (its signal handlers, its shutdown skipped on cancel), and both are
handled here once, apart from the control logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["serve_api"]

log = logging.getLogger(__name__)


async def serve_api(ctl: CloudController) -> None:
    """Serve `create_app(ctl)` until cancelled; `ctl.api_port` is the bound port once it listens."""
    import uvicorn

    from cloud_controller.api import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(ctl),
            host=ctl.config.api.host,
            port=ctl.config.api.port,
            log_level="warning",
            lifespan="off",
        )
    )
    # `_serve`, not `serve`: `serve` swaps the process's SIGINT/SIGTERM handlers, which
    # belong to whoever runs the controller (the CLI cancels on SIGTERM).
    task = asyncio.create_task(server._serve())
    try:
        while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn exposes a flag only)
            await asyncio.sleep(0.05)
        if server.started:
            ctl.api_port = int(server.servers[0].sockets[0].getsockname()[1])
            log.info("API on http://%s:%d/docs", ctl.config.api.host, ctl.api_port)
        # shielded: a cancel reaching uvicorn's main loop skips its shutdown, and the
        # listening socket stays open after the controller stopped (the port is never freed)
        await asyncio.shield(task)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), 5)
