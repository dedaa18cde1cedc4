"""Manual MQTT acknowledgements: a QoS 1 message's PUBACK only once its handler's work is durable.

paho acknowledges a QoS 1 PUBLISH as soon as it has read it, before the application has
done anything with it; a crash then loses what was read but not yet stored, and the
broker never resends it. With `manual_ack`, `MqttSession` registers every QoS 1 message
here before its handler runs; the handler may return a future (the controller's ingest
returns one that completes at the store commit) and the PUBACK waits for it. PUBACKs
leave in the order the PUBLISHes came (MQTT 5 §4.6): a message done early waits for the
ones before it. If a future fails, nothing more is acknowledged on this connection and
`abort` is called: the session reconnects (persistent session) and the broker
redelivers every unacknowledged message, which the store deduplicates by (site, seq).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AckQueue"]

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    mid: int
    done: bool = False


class AckQueue:
    """One connection's pending QoS 1 acknowledgements, released in arrival order."""

    def __init__(self, send: Callable[[int], object], abort: Callable[[], object]) -> None:
        """`send(mid)`: the PUBACK; `abort()`: drop the connection so the broker redelivers."""
        self._send = send
        self._abort = abort
        self._pending: deque[_Entry] = deque()
        self.closed = False
        self.acked = 0

    @property
    def pending(self) -> int:
        """Messages read and not yet acknowledged."""
        return len(self._pending)

    def add(self, mid: int) -> _Entry:
        """Register a QoS 1 message before its handler runs."""
        entry = _Entry(mid)
        self._pending.append(entry)
        return entry

    def settle(self, entry: _Entry, outcome: object) -> None:
        """The handler returned `outcome`: a future to wait for, or anything else (done now)."""
        if isinstance(outcome, asyncio.Future):
            outcome.add_done_callback(lambda f: self._finished(entry, f))
        else:
            self._mark(entry)

    def close(self) -> None:
        """The connection is gone: nothing more is sent on it (the broker redelivers the rest)."""
        self.closed = True
        self._pending.clear()

    def _finished(self, entry: _Entry, future: asyncio.Future[object]) -> None:
        if future.cancelled() or future.exception() is not None:
            if not self.closed:
                log.error(
                    "MQTT message %d was not processed (%s): reconnecting so the broker redelivers it",
                    entry.mid,
                    "cancelled" if future.cancelled() else future.exception(),
                )
                self.close()
                self._abort()
            return
        self._mark(entry)

    def _mark(self, entry: _Entry) -> None:
        entry.done = True
        while self._pending and self._pending[0].done and not self.closed:
            self._send(self._pending.popleft().mid)
            self.acked += 1
