"""The VEN as a service: register, (optionally) subscribe, poll — and poll at once when notified.

Each round: our VEN object and resources (`registration.py`, until it has succeeded once
in this process; its ids kept in the bridge's state file), one poll (`bridge.py`), then,
with `subscribe: true`, a subscription per mapped programme the poll found
(`subscription.py`). Between rounds the loop sleeps `poll_interval_s` on the clock *or*
until the callback server (`callback.py`) accepts a notification; a notification that
comes during a poll wakes the next round at once (one round for any number of them). A
failed registration or subscription is counted, named, and tried again next round; the
poll runs regardless (a VTN that refuses VEN self-registration still serves events).

At a stop (cancel, SIGTERM through the runner) the subscriptions of this run are deleted
and the callback server stopped, within `STOP_S` even when the runner keeps cancelling.
`--once` registers and polls, and never subscribes (nothing would listen afterwards).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from typing import Any

from cloud_controller.openadr.ven.bridge import Bridge
from cloud_controller.openadr.ven.callback import CallbackServer
from cloud_controller.openadr.ven.clients import DrApiClient, VenHttpError, VtnClient
from cloud_controller.openadr.ven.config import VenConfig
from cloud_controller.openadr.ven.registration import register
from cloud_controller.openadr.ven.subscription import Subscriptions, new_token
from protocols.clock import Clock

__all__ = ["STOP_S", "VenService", "VenStats"]

log = logging.getLogger(__name__)

STOP_S = 8.0  # under the runner's 10 s bound: deleting subscriptions, stopping the server


@dataclass
class VenStats:
    """Registration, subscription and wake-up counters (beside the bridge's `BridgeStats`)."""

    ven_id: str | None = None
    resources: int = 0
    #: VEN and resource objects this process created / updated on the VTN (0, 0 when all were there).
    created: int = 0
    updated: int = 0
    registration_errors: int = 0
    subscriptions: int = 0
    subscription_errors: int = 0
    last_error: str | None = None
    #: Rounds started by a notification rather than the poll timer.
    woken_rounds: int = 0
    #: Seconds from the last accepted notification to the end of the poll that submitted its requests.
    notification_to_submit_s: float | None = None


async def _finish(coro: Coroutine[Any, Any, None], bound_s: float) -> None:
    """Run `coro` to its end even while our task is being cancelled (bounded by `bound_s`)."""
    task = asyncio.create_task(coro)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound_s
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            task.cancel()
            break
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task}, timeout=remaining)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(task, return_exceptions=True)


class VenService:
    """The bridge, the registration, the subscriptions and the callback server, in one loop."""

    def __init__(self, cfg: VenConfig, vtn: VtnClient, dr: DrApiClient, *, clock: Clock) -> None:
        self.cfg, self.vtn, self.clock = cfg, vtn, clock
        self.bridge = Bridge(cfg, vtn, dr, clock=clock)
        self.stats = VenStats(ven_id=self.bridge.ven_state.get("ven_id"))
        self.wake = asyncio.Event()
        self._registered = not cfg.registration.enabled
        self.callback: CallbackServer | None = None
        self.subscriptions: Subscriptions | None = None

    async def _register(self) -> None:
        if self._registered:
            return
        try:
            reg = await register(self.vtn, self.cfg)
        except VenHttpError as exc:
            self.stats.registration_errors += 1
            self.stats.last_error = f"registration: {exc}"
            log.warning("VEN registration failed (next round tries again): %s", exc)
            return
        self._registered = True
        self.stats.ven_id, self.stats.resources = reg.ven_id, len(reg.resource_ids)
        self.stats.created, self.stats.updated = reg.created, reg.updated
        self.bridge.ven_state = {"ven_id": reg.ven_id, "resource_ids": reg.resource_ids}
        log.info(
            "VEN %s registered: %s, %d resource(s)", self.cfg.vtn.ven_name, reg.ven_id, self.stats.resources
        )

    async def _subscribe(self) -> None:
        if self.subscriptions is None:
            return
        try:
            await self.subscriptions.ensure(self.bridge.program_ids)
        except VenHttpError as exc:
            self.stats.subscription_errors += 1
            self.stats.last_error = f"subscription: {exc}"
            log.warning("VEN subscription failed (next round tries again): %s", exc)
        self.stats.subscriptions = len(self.subscriptions.ids)

    async def round(self) -> None:
        """Register (until done), poll, subscribe (until every mapped programme is)."""
        woken = self.wake.is_set()
        self.wake.clear()
        await self._register()
        submitted = self.bridge.stats.submitted
        await self.bridge.poll_once()
        if woken:
            self.stats.woken_rounds += 1
            noted = self.callback.stats.last_accepted_at if self.callback is not None else None
            if noted is not None and self.bridge.stats.submitted > submitted:
                self.stats.notification_to_submit_s = self.clock.monotonic() - noted
        await self._subscribe()

    async def _sleep_or_wake(self) -> None:
        sleeper = asyncio.create_task(self.clock.sleep(self.cfg.poll_interval_s))
        waker = asyncio.create_task(self.wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, waker):
                t.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    async def start(self) -> None:
        """The callback server and this run's token (only with `subscribe: true`)."""
        if not self.cfg.subscribe or self.callback is not None:
            return
        token = new_token()
        self.callback = CallbackServer(self.cfg.callback, token, self.wake, clock=self.clock)
        url = await self.callback.start()
        self.subscriptions = Subscriptions(self.vtn, self.cfg.vtn.ven_name, url, token)

    async def stop(self) -> None:
        """Delete this run's subscriptions, stop the callback server (bounded, also while cancelled)."""

        async def _stop() -> None:
            if self.subscriptions is not None:
                await self.subscriptions.delete_all()
                self.stats.subscriptions = len(self.subscriptions.ids)
            if self.callback is not None:
                await self.callback.stop()

        await _finish(_stop(), STOP_S)

    async def run(self, *, once: bool = False) -> dict[str, Any]:
        """Rounds until cancelled (or one); the status at the end."""
        try:
            if not once:
                await self.start()
            while True:
                await self.round()
                if once:
                    return self.status()
                await self._sleep_or_wake()
        finally:
            await self.stop()

    def status(self) -> dict[str, Any]:
        """The bridge's status with the VEN's counters and the callback server's (JSON-ready)."""
        out = self.bridge.status()
        out["ven"] = asdict(self.stats)
        if self.callback is not None:
            out["callback"] = self.callback.status()
        return out
