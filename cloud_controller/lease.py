"""Exactly one dispatcher: a lease in the store, taken before the MQTT connection, with a fencing token.

Why before connecting: Mosquitto disconnects a client when another connects with the same
client id, so a second dispatcher that connected first would silently knock the holder
off the broker and both would fight. The second one waits instead, says so in its log
and in `/readyz` ("standby: lease held by X until T"), and takes over once the holder's
lease expires (a killed holder) or is released (a clean exit releases at once).

Every change is observable: the store gets an event (`dispatch_lease_acquired` with the
token, the previous holder and how long this one waited; `dispatch_lease_lost`;
`dispatch_lease_released`), and `changes` counts them for the API.

No period twice: the dispatch loop claims each period in the store before it plans
(`Store.claim_period`, fenced by holder and token), so a successor that takes over within
a period its predecessor already dispatched waits for the next boundary.

The fencing token grows with every change of holder. The service stamps it on every
command it publishes (`Command.fence`, `cloud_controller.live.commands.fence_commands`)
and agents refuse a token lower than the highest they have seen (`edge_agent.fence`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cloud_controller.store.base import STORE_ERRORS, LeaseState, Store
from protocols.clock import Clock
from protocols.errors import GridflexError
from protocols.messages import Event

__all__ = ["DISPATCH_LEASE", "EVENT_SITE", "DispatchLease", "LeaseLostError", "LeaseStatus", "holder_id"]

#: A store call that timed out or that the store could not do: retried, not fatal.
_UNREACHABLE: tuple[type[Exception], ...] = (TimeoutError, *STORE_ERRORS)

log = logging.getLogger(__name__)

DISPATCH_LEASE = "dispatch"
#: The `site` of the lease's events: they are the controller's, not a site's.
EVENT_SITE = "controller"


class LeaseLostError(GridflexError):
    """This process's lease expired or passed to another holder: it must stop dispatching."""


def holder_id(client_id: str) -> str:
    """A holder name unique to this process: client id, host, pid and a random tail."""
    return f"{client_id}@{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class LeaseStatus:
    """What readiness and the logs say about the lease."""

    state: Literal["acquiring", "standby", "held", "released"]
    holder: str | None = None
    token: int | None = None
    expires_at: datetime | None = None

    def describe(self) -> str:
        """One line: "held (token 3) until T" or "standby: lease held by X until T"."""
        until = self.expires_at.isoformat() if self.expires_at else "?"
        if self.state == "held":
            return f"held (fencing token {self.token}) until {until}"
        if self.state == "standby":
            return f"standby: lease held by {self.holder} until {until}"
        return self.state


class DispatchLease:
    """Acquire (waiting as standby), renew every `renew_s`, release on exit: one holder per store file."""

    def __init__(
        self,
        store: Store,
        *,
        holder: str,
        clock: Clock,
        ttl_s: float,
        renew_s: float,
        name: str = DISPATCH_LEASE,
    ) -> None:
        self.store = store
        self.holder = holder
        self.clock = clock
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.name = name
        self.status = LeaseStatus("acquiring")
        self.acquired_at: datetime | None = None
        #: how many times this process gained, lost and released the lease
        self.changes: dict[str, int] = {"acquired": 0, "lost": 0, "released": 0}

    @property
    def token(self) -> int | None:
        """The fencing token while held, else None."""
        return self.status.token if self.status.state == "held" else None

    async def _try(self) -> LeaseState:
        now_s = self.clock.now().timestamp()
        async with asyncio.timeout(self.renew_s):
            return await asyncio.to_thread(
                self.store.acquire_lease, self.name, self.holder, now_s, self.ttl_s
            )

    def _event(
        self,
        kind: str,
        severity: Literal["info", "warning", "error"],
        message: str,
        **details: str | int | float | None,
    ) -> None:
        """Store one lease event; a store that refuses it is logged, never fatal (the lease logic goes on)."""
        short = {k: v[-64:] if isinstance(v, str) else v for k, v in details.items()}  # the pid's end kept
        event = Event(
            site=EVENT_SITE, ts=self.clock.now(), kind=kind, severity=severity, message=message, details=short
        )
        try:
            self.store.write_event(event)
        except STORE_ERRORS as exc:
            log.warning("dispatch lease event %s not stored: %s", kind, exc)

    def _set(self, st: LeaseState) -> None:
        expires = datetime.fromtimestamp(st.expires_at, tz=UTC)
        self.status = LeaseStatus("held" if st.held else "standby", st.holder, st.token, expires)

    async def acquire(self) -> None:
        """Return once this process holds the lease; until then retry every `renew_s` as standby."""
        told: str | None = None
        previous: str | None = None
        started = self.clock.now()
        while True:
            try:
                st = await self._try()
            except _UNREACHABLE as exc:
                log.warning("dispatch lease: cannot reach the store (%s); retry in %.0f s", exc, self.renew_s)
            else:
                self._set(st)
                if st.held:
                    self.acquired_at = self.clock.now()
                    waited_s = (self.acquired_at - started).total_seconds()
                    self.changes["acquired"] += 1
                    log.info("dispatch lease acquired by %s: fencing token %d", self.holder, st.token)
                    await asyncio.to_thread(
                        self._event,
                        "dispatch_lease_acquired",
                        "info" if previous is None else "warning",
                        f"dispatch lease acquired (fencing token {st.token})"
                        + (f", taken over from {previous}" if previous else ""),
                        holder=self.holder,
                        token=st.token,
                        previous=previous,
                        waited_s=round(waited_s, 3),
                    )
                    return
                previous = st.holder
                if st.holder != told:  # a state change logs once
                    log.warning("dispatch %s", self.status.describe())
                    told = st.holder
            await self.clock.sleep(self.renew_s)

    async def keep(self) -> None:
        """Renew every `renew_s` until cancelled; raise LeaseLostError once the lease is gone."""
        while True:
            await self.clock.sleep(self.renew_s)
            try:
                st = await self._try()
            except _UNREACHABLE as exc:
                expires = self.status.expires_at
                if expires is not None and self.clock.now() >= expires:
                    log.error("dispatch lease expired while the store was unreachable (%s)", exc)
                    self.changes["lost"] += 1
                    raise LeaseLostError(f"dispatch lease expired: {exc}") from exc
                log.warning("dispatch lease: renewal failed (%s); retry in %.0f s", exc, self.renew_s)
                continue
            if not st.held or st.token != self.status.token:
                self._set(st)
                self.changes["lost"] += 1
                log.error("dispatch lease lost to %s (token %d): stopping", st.holder, st.token)
                await asyncio.to_thread(
                    self._event,
                    "dispatch_lease_lost",
                    "error",
                    f"dispatch lease lost to {st.holder} (fencing token {st.token})",
                    holder=self.holder,
                    token=st.token,
                )
                raise LeaseLostError(f"dispatch lease lost to {st.holder}")
            self._set(st)

    def release(self) -> bool:
        """End the lease now if held (a clean exit: the standby takes over at its next attempt)."""
        if self.status.state != "held":
            return False
        try:
            released = self.store.release_lease(self.name, self.holder)
        except STORE_ERRORS as exc:
            log.warning("dispatch lease not released (%s): it expires by itself", exc)
            return False
        self.status = LeaseStatus("released", self.holder, self.status.token, None)
        self.changes["released"] += 1
        log.info("dispatch lease released by %s", self.holder)
        self._event("dispatch_lease_released", "info", "dispatch lease released", holder=self.holder)
        return released
