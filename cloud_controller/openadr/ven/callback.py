"""The VEN's notification callback: a small HTTP server on loopback that the VTN POSTs to.

Why it only wakes the poll: a notification's body is what *someone* sent to our port; even
with the right token, the VEN acts on events as the VTN serves them, so a notification of
an EVENT (or PROGRAM) sets `wake` and the bridge polls at once (programmes, events, the
usual mapping and checks); the body itself is never mapped. Polling stays the fallback for
a lost notification.

Each request: the bearer token first (`hmac.compare_digest` against this run's token;
missing or wrong → 401, counted `refused`, the body not read), then the body, at most
`max_body_bytes` (more → 413, `too_large`), JSON with an `objectType` (else 400,
`bad_body`). EVENT/PROGRAM → 200, `accepted`, wake; any other type → 200, `ignored`.
uvicorn serves it on a socket we bind ourselves (a port in use is an `OSError` here, not
uvicorn's `sys.exit`), with a bounded number of connections, and stops within `stop_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
from dataclasses import asdict, dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cloud_controller.openadr.ven.config import CallbackConfig
from protocols.clock import Clock

__all__ = ["PATH", "CallbackServer", "CallbackStats"]

log = logging.getLogger(__name__)

PATH = "/openadr3/notifications"
WAKING = ("EVENT", "PROGRAM")


@dataclass
class CallbackStats:
    """What the callback server answered (a test and `--once`'s status read them)."""

    accepted: int = 0
    ignored: int = 0
    refused: int = 0
    too_large: int = 0
    bad_body: int = 0
    #: `clock.monotonic()` of the last accepted notification (the bridge's latency figure).
    last_accepted_at: float | None = None


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class CallbackServer:
    """`start()` binds and serves; `url` is what the VTN is given; `stop()` ends it, bounded."""

    def __init__(self, cfg: CallbackConfig, token: str, wake: asyncio.Event, *, clock: Clock) -> None:
        self.cfg, self.wake, self.clock = cfg, wake, clock
        self._expected = f"Bearer {token}".encode()
        self.stats = CallbackStats()
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def check(self, authorization: str | None) -> bool:
        """The header is exactly `Bearer <this run's token>` (constant-time compare)."""
        return authorization is not None and hmac.compare_digest(authorization.encode(), self._expected)

    def app(self) -> FastAPI:
        """The one route (also served by a test in-process)."""
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.post(PATH)
        async def notification(request: Request) -> JSONResponse:
            """A VTN notification: token, size, shape; an EVENT or PROGRAM wakes the poll."""
            if not self.check(request.headers.get("authorization")):
                self.stats.refused += 1
                log.warning("VEN callback: notification with a missing or wrong token refused")
                return JSONResponse(
                    {"title": "unauthorized", "status": 401, "detail": "bearer token missing or wrong"},
                    401,
                    headers={"WWW-Authenticate": 'Bearer realm="gridflex-ven"'},
                )
            try:
                doc: Any = json.loads(await _body(request, self.cfg.max_body_bytes))
            except _TooLarge:
                self.stats.too_large += 1
                return JSONResponse({"title": "too large", "status": 413}, 413)
            except (json.JSONDecodeError, UnicodeDecodeError):
                doc = None
            if not isinstance(doc, dict) or not isinstance(doc.get("objectType"), str):
                self.stats.bad_body += 1
                return JSONResponse({"title": "bad notification", "status": 400}, 400)
            if doc["objectType"] in WAKING:
                self.stats.accepted += 1
                self.stats.last_accepted_at = self.clock.monotonic()
                self.wake.set()
            else:
                self.stats.ignored += 1
            return JSONResponse({})

        return app

    async def start(self, *, start_s: float = 10.0) -> str:
        """Bind `host:port` (0: any free port), serve, and answer the callback URL."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.cfg.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.cfg.host, self.cfg.port))
        except OSError:
            sock.close()
            raise
        port = int(sock.getsockname()[1])
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app(),
                log_level="warning",
                lifespan="off",
                limit_concurrency=32,
                timeout_keep_alive=5,
                server_header=False,
            )
        )
        # `_serve`, not `serve`: `serve` would take over the process's SIGINT/SIGTERM handlers
        self._task = asyncio.create_task(self._server._serve(sockets=[sock]), name="ven-callback")
        loop = asyncio.get_running_loop()  # a socket's start is wall time, whatever the clock
        deadline = loop.time() + start_s
        while not self._server.started and not self._task.done() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if not self._server.started:
            await self.stop()
            raise OSError(f"VEN callback server on {self.cfg.host}:{port} did not start")
        self.url = self.cfg.public_url or f"http://{self.cfg.host}:{port}{PATH}"
        if ":" in self.cfg.host and self.cfg.public_url is None:
            self.url = f"http://[{self.cfg.host}]:{port}{PATH}"
        log.info("VEN callback server on %s", self.url)
        return self.url

    async def stop(self, *, stop_s: float = 5.0) -> None:
        """Ask uvicorn to exit; after `stop_s` force it; the task is awaited (never left running)."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), stop_s)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._server = self._task = None

    def status(self) -> dict[str, Any]:
        """The counters and the URL (JSON-ready)."""
        return {"url": self.url, **asdict(self.stats)}
