"""The ack outbox: acks wait here for their own task, so the command worker never waits for a PUBACK.

Up to `ACK_BATCH` acks are in flight at once (QoS 1); an ack that could not be published
(broker gone) goes back to the front and is retried once connected again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable

from edge_agent.telemetry import wait_event
from protocols.messages import Ack

__all__ = ["ACK_BATCH", "AckOutbox"]

log = logging.getLogger(__name__)

ACK_BATCH = 100  # acks in flight at once
ACK_OUTBOX_MAX = 100_000


class AckOutbox:
    """A bounded FIFO of acks and the loop that publishes them."""

    def __init__(self) -> None:
        self._acks: collections.deque[Ack] = collections.deque()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._acks)

    def put(self, ack: Ack) -> None:
        """Queue an ack for the publisher; dropped with a warning when the outbox is full."""
        if len(self._acks) >= ACK_OUTBOX_MAX:
            log.warning("ack outbox full: ack of %s dropped", ack.cmd_id)
            return
        self._acks.append(ack)
        self._wake.set()

    async def run(
        self,
        publish: Callable[[Ack], Awaitable[bool]],
        connected: asyncio.Event,
        stopping: Callable[[], bool],
    ) -> None:
        """Publish queued acks in batches until `stopping()`; `publish` says whether it got through."""
        while not stopping():
            if not self._acks:
                self._wake.clear()
                await wait_event(self._wake, 1.0)
                continue
            if not await wait_event(connected, 1.0):
                continue
            batch = [self._acks.popleft() for _ in range(min(ACK_BATCH, len(self._acks)))]
            sent = await asyncio.gather(*(publish(ack) for ack in batch))
            unsent = [ack for ack, ok in zip(batch, sent, strict=True) if not ok]
            self._acks.extendleft(reversed(unsent))  # retried once connected again
            if unsent:
                await asyncio.sleep(0.2)
