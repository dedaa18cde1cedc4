"""The event outbox: the agent's `Event`s wait here (newest 1,000) for their own publishing task.

Split out of `edge_agent.agent` so the agent composes it like the ack outbox: any part of
the agent queues an event without waiting for the broker, and one loop publishes them in
order once connected.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Mapping

from edge_agent.telemetry import wait_event
from protocols.clock import Clock
from protocols.messages import Event

__all__ = ["EVENTS_KEPT", "EventOutbox"]

EVENTS_KEPT = 1000  # events kept in memory while the broker is away; the oldest go first


class EventOutbox:
    """A bounded FIFO of `Event`s for one site and the loop that publishes them."""

    def __init__(self, site: str, clock: Clock) -> None:
        self._site = site
        self._clock = clock
        self._events: collections.deque[Event] = collections.deque(maxlen=EVENTS_KEPT)
        #: Set when an event is queued or the broker (re)connects: the loop looks again.
        self.wake = asyncio.Event()

    def put(
        self,
        kind: str,
        severity: str,
        message: str,
        asset: str | None,
        details: Mapping[str, float | int | str] | None = None,
    ) -> None:
        """Queue an `Event` for the `event` topic (kept in memory, newest 1,000)."""
        self._events.append(
            Event.model_validate(
                {
                    "site": self._site,
                    "ts": self._clock.now(),
                    "kind": kind,
                    "severity": severity,
                    "message": message[:500],
                    "asset": asset,
                    "details": dict(details or {}),
                }
            )
        )
        self.wake.set()

    async def run(
        self,
        publish: Callable[[Event], Awaitable[bool]],
        connected: asyncio.Event,
        stopping: Callable[[], bool],
    ) -> None:
        """Publish queued events oldest first until `stopping()`; `publish` says whether it got through."""
        while not stopping():
            if not await wait_event(connected, 1.0):
                continue
            while self._events:
                if not await publish(self._events[0]):
                    break
                self._events.popleft()
            self.wake.clear()
            await wait_event(self.wake, 1.0)
