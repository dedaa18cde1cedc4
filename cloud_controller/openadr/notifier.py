"""Subscription notifications of GridFlex's VTN: a changed object → a POST to each matching subscriber's callback.

`notifications_for` (pure) matches a change against the stored subscriptions: the
subscription's `objectOperations` must name the object type (PROGRAM, EVENT, REPORT, ...)
and the operation (POST, PUT, DELETE), and a subscription with a `programID` hears only
about that programme (the programme itself, its events, its reports). The body is the
spec's `notification`: `{objectType, operation, object, targets}`; the subscriber's
`bearerToken`, when given, is sent as `Authorization: Bearer …`.

`Notifier` delivers them off the caller's thread (the VTN's writes run in worker threads and
must not wait on a subscriber): one daemon thread with its own event loop, started at the
first notification, a bounded queue (`MAX_QUEUE`, then counted `dropped`), each
notification tried `attempts` times with a doubling backoff through the clock, never
following redirects. **SSRF guard**: a callback goes out only when its host (`host` or
`host:port`) is in `openadr.callback_hosts` and its scheme is http(s); anything else is
counted `blocked` with the host named in `last_error` — a subscriber cannot make the VTN
call an internal address it was not told to. Counters are in `GET /openadr3/status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from cloud_controller.openadr.models import OBJECT_TYPES
from protocols.clock import Clock

__all__ = ["MAX_QUEUE", "Notification", "Notifier", "callback_refusal", "notifications_for"]

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000
OPERATIONS = {"create": "POST", "update": "PUT", "delete": "DELETE"}


@dataclass(frozen=True)
class Notification:
    """One POST to make: which subscription, where, with which token, what body."""

    subscription_id: str
    url: str
    bearer_token: str | None
    body: dict[str, Any]


def _program_of(kind: str, obj: Mapping[str, Any]) -> str | None:
    return str(obj.get("id")) if kind == "programs" else obj.get("programID")


def notifications_for(
    subscriptions: Iterable[Mapping[str, Any]], kind: str, operation: str, obj: Mapping[str, Any]
) -> list[Notification]:
    """Every callback the change of `obj` (a `kind` object; operation POST/PUT/DELETE) must reach."""
    object_type = OBJECT_TYPES[kind]
    out: list[Notification] = []
    for sub in subscriptions:
        wanted = sub.get("programID")
        if wanted is not None and wanted != _program_of(kind, obj):
            continue
        for op in sub.get("objectOperations") or []:
            if object_type in op.get("objects", []) and operation in op.get("operations", []):
                body = {
                    "objectType": object_type,
                    "operation": operation,
                    "object": dict(obj),
                    "targets": list(obj.get("targets") or []),
                }
                out.append(Notification(str(sub["id"]), str(op["callbackUrl"]), op.get("bearerToken"), body))
    return out


def callback_refusal(url: str, allowed_hosts: Sequence[str]) -> str | None:
    """Why `url` may not be called (scheme, host not in the allowlist), or None if it may."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"callback {url!r}: not an http(s) URL with a host"
    host = parts.hostname.lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"callback {url!r}: bad port"
    allowed = {h.lower() for h in allowed_hosts}
    if host in allowed or f"{host}:{port}" in allowed:
        return None
    return f"callback host {host}:{port} is not in openadr.callback_hosts"


class Notifier:
    """Delivers notifications in its own thread and loop; counts what became of each."""

    def __init__(
        self,
        allowed_hosts: Sequence[str],
        *,
        clock: Clock,
        attempts: int = 3,
        backoff_s: float = 1.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.allowed_hosts = list(allowed_hosts)
        self.clock, self.attempts, self.backoff_s, self.timeout_s = clock, attempts, backoff_s, timeout_s
        self.queued = self.sent = self.retries = self.failed = self.blocked = self.dropped = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Notification | None] | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    # -- the caller's side (any thread) ----------------------------------------------

    def on_change(
        self, subscriptions: Iterable[Mapping[str, Any]], kind: str, op: str, obj: Mapping[str, Any]
    ) -> None:
        """The VTN's listener: match and enqueue; blocked callbacks are counted here, never queued."""
        for n in notifications_for(subscriptions, kind, OPERATIONS.get(op, op), obj):
            why = callback_refusal(n.url, self.allowed_hosts)
            if why is not None:
                with self._lock:
                    self.blocked += 1
                    self.last_error = f"subscription {n.subscription_id}: {why}"
                log.warning("OpenADR notification blocked: %s", self.last_error)
                continue
            self._enqueue(n)

    def _enqueue(self, n: Notification) -> None:
        self._start()
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._put, n)

    def _put(self, n: Notification) -> None:
        assert self._queue is not None
        try:
            self._queue.put_nowait(n)
            with self._lock:
                self.queued += 1
        except asyncio.QueueFull:
            with self._lock:
                self.dropped += 1
                self.last_error = f"queue full ({MAX_QUEUE}): notification to {n.url} dropped"

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._thread_main, name="oa3-notifier", daemon=True)
                self._thread.start()
        self._started.wait(5)

    # -- the worker's side (its own loop) ----------------------------------------------

    def _thread_main(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(MAX_QUEUE)
        self._started.set()
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as http:
            while True:
                n = await self._queue.get()
                if n is None:
                    return
                await self._deliver(http, n)

    async def _deliver(self, http: httpx.AsyncClient, n: Notification) -> None:
        headers = {"Authorization": f"Bearer {n.bearer_token}"} if n.bearer_token else {}
        for attempt in range(self.attempts):
            if attempt:
                with self._lock:
                    self.retries += 1
                await self.clock.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                r = await http.post(n.url, json=n.body, headers=headers)
                if 200 <= r.status_code < 300:
                    with self._lock:
                        self.sent += 1
                    return
                why = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.last_error = f"subscription {n.subscription_id}: {n.url}: {why}"
        with self._lock:
            self.failed += 1
        log.warning("OpenADR notification given up after %d attempts: %s", self.attempts, self.last_error)

    # -- status and shutdown ---------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Counters for `GET /openadr3/status`."""
        with self._lock:
            return {
                "callback_hosts": list(self.allowed_hosts),
                "queued": self.queued,
                "sent": self.sent,
                "retries": self.retries,
                "failed": self.failed,
                "blocked": self.blocked,
                "dropped": self.dropped,
                "last_error": self.last_error,
            }

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker after what is queued (bounded by `timeout_s`)."""
        if self._thread is None or self._loop is None:
            return
        queue = self._queue
        assert queue is not None
        self._loop.call_soon_threadsafe(self._stop, queue)
        self._thread.join(timeout_s)

    @staticmethod
    def _stop(queue: asyncio.Queue[Notification | None]) -> None:
        # a full queue at shutdown: the daemon thread ends with the process
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(None)
