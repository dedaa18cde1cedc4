"""Ingest's write-behind queue: agents' telemetry messages reach the store in batches, one transaction each.

Why: agents report by exception, so a message holds 1–2 samples; written one transaction
per message (two thread hops and a commit each) a worker was latency-bound at ~150
messages/s and two workers on one SQLite file took its write lock in turn (the test bed
in docs/benchmarks.md). Here validated messages wait in a bounded queue; one writer task
takes them and flushes when `max_messages` are taken or the first has waited
`max_wait_s`, in ONE store transaction (`Store.write_batches`).

Nothing accepted is lost: `put` returns a future that completes only after the message's
batch committed, and the MQTT session sends the message's PUBACK only then (manual acks,
protocols/mqtt_acks.py), so a crash loses only what the broker still holds and
redelivers (duplicates are dropped by (site, seq)). A full queue makes `put` wait: the
backlog stays at the broker. A failed flush is retried `attempts` times with a doubling
pause, every failure counted and logged; a batch that still fails is abandoned: its
futures fail, so its messages are never acked and the session reconnects for the
broker to redeliver them (counted, logged at ERROR). Either way `on_fault` hears of it
(ingest keeps it as an event in the store). The waits are
wall time (the loop's), not the service's clock: they bound commit latency, which an
accelerated demo clock must not stretch or shrink.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cloud_controller.store.batch import SiteSamples
from cloud_controller.store.sqlite import WriteResult
from protocols.errors import GridflexError
from protocols.messages import TelemetryBatch

__all__ = ["BatchWriter", "FlushFailedError", "WriterSettings", "WriterStats"]

log = logging.getLogger(__name__)

MAX_RETRY_PAUSE_S = 5.0

#: The store's batched write (run in a worker thread): one result per message, in order.
WriteBatches = Callable[[Sequence[SiteSamples]], list[WriteResult]]
#: Called on the loop, in order, for every message of a committed batch.
OnWritten = Callable[[TelemetryBatch, WriteResult], None]
#: Called on the loop after a flush that failed at least once: (its messages, failed attempts,
#: the last error, whether it was abandoned in the end).
OnFault = Callable[[list[TelemetryBatch], int, str, bool], None]


class FlushFailedError(GridflexError):
    """A batch could not be stored after every attempt: its messages are not acknowledged."""


@dataclass(frozen=True)
class WriterSettings:
    """When to flush, how much may wait, how hard to retry, how long shutdown may flush."""

    max_messages: int = 200
    max_wait_s: float = 0.1
    max_queued: int = 5_000  # messages waiting before `put` blocks (back-pressure onto the broker)
    attempts: int = 5
    retry_s: float = 0.2  # pause after the first failed attempt; doubled after each, capped at 5 s
    close_timeout_s: float = 10.0


@dataclass
class WriterStats:
    """What the writer did: flushes, messages in them, failed attempts, abandoned batches."""

    flushes: int = 0
    messages_flushed: int = 0
    largest_flush: int = 0
    flush_failures: int = 0  # failed attempts (each retried until `attempts`)
    batches_abandoned: int = 0  # given up: not acknowledged, the broker redelivers
    last_error: str = ""


@dataclass
class _Pending:
    batch: TelemetryBatch
    done: asyncio.Future[None]


class BatchWriter:
    """Bounded queue + one writer task; `run()` until cancelled (it then flushes, bounded)."""

    def __init__(
        self,
        write: WriteBatches,
        on_written: OnWritten,
        settings: WriterSettings | None = None,
        *,
        on_fault: OnFault | None = None,
    ) -> None:
        self.settings = settings or WriterSettings()
        self.stats = WriterStats()
        self._write = write
        self._on_written = on_written
        self._on_fault = on_fault
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=self.settings.max_queued)
        self._taken: list[_Pending] = []  # taken from the queue, not yet flushed
        self._inflight: asyncio.Future[None] | None = None  # the flush running (shielded from cancel)

    @property
    def queued(self) -> int:
        """Messages accepted and not yet committed (waiting or in the batch being gathered)."""
        return self._queue.qsize() + len(self._taken)

    async def put(self, batch: TelemetryBatch) -> asyncio.Future[None]:
        """Queue one validated message; the future completes once it is committed (fails if abandoned)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(batch, done))
        return done

    async def run(self) -> None:
        """Gather and flush until cancelled; then flush what was accepted, within `close_timeout_s`."""
        try:
            while True:
                await self._gather()
                batch, self._taken = self._taken, []
                self._inflight = asyncio.ensure_future(self._flush(batch))
                await asyncio.shield(self._inflight)
        except asyncio.CancelledError:
            await self._flush_on_close()
            raise

    async def _gather(self) -> None:
        """Take messages until `max_messages` or `max_wait_s` after the first one."""
        loop = asyncio.get_running_loop()
        self._taken.append(await self._queue.get())
        deadline = loop.time() + self.settings.max_wait_s
        while len(self._taken) < self.settings.max_messages:
            try:
                self._taken.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                async with asyncio.timeout(remaining):
                    self._taken.append(await self._queue.get())
            except TimeoutError:
                return

    async def _flush_on_close(self) -> None:
        """Shutdown: what was taken and what waits is flushed (batch by batch), bounded in time."""
        pending = self._taken
        self._taken = []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        inflight = self._inflight
        if not pending and (inflight is None or inflight.done()):
            return
        try:
            async with asyncio.timeout(self.settings.close_timeout_s):
                if inflight is not None:
                    await inflight  # the batch being written when the cancel came
                step = self.settings.max_messages
                for i in range(0, len(pending), step):
                    await self._flush(pending[i : i + step])
        except TimeoutError:
            left = [p for p in pending if not p.done.done()]
            log.error(
                "shutdown: %d accepted messages not stored in time; the broker redelivers them", len(left)
            )
            for p in left:
                p.done.set_exception(FlushFailedError("not stored before shutdown"))

    async def _flush(self, batch: list[_Pending]) -> None:
        """One transaction for `batch`, retried; then results in order, futures completed."""
        items = [(p.batch.site, p.batch.samples) for p in batch]
        failures = 0
        while True:
            try:
                results = await asyncio.to_thread(self._write, items)
                break
            except Exception as exc:  # a store fault or a bug: counted and retried, never silent
                failures += 1
                self.stats.flush_failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if failures >= self.settings.attempts:
                    self._abandon(batch)
                    self._fault(batch, failures, abandoned=True)
                    return
                pause_s = min(self.settings.retry_s * 2 ** (failures - 1), MAX_RETRY_PAUSE_S)
                log.warning(
                    "ingest flush of %d messages failed (attempt %d of %d): %s; retry in %.2f s",
                    len(batch),
                    failures,
                    self.settings.attempts,
                    self.stats.last_error,
                    pause_s,
                )
                await asyncio.sleep(pause_s)
        if failures:
            log.warning("ingest flush of %d messages stored after %d failed attempts", len(batch), failures)
            self._fault(batch, failures, abandoned=False)
        self.stats.flushes += 1
        self.stats.messages_flushed += len(batch)
        self.stats.largest_flush = max(self.stats.largest_flush, len(batch))
        for p, result in zip(batch, results, strict=True):
            try:
                self._on_written(p.batch, result)
            except Exception:  # bookkeeping must not keep a committed message from its ack
                log.exception("ingest bookkeeping after a commit failed for %s", p.batch.site)
            if not p.done.done():
                p.done.set_result(None)

    def _abandon(self, batch: list[_Pending]) -> None:
        self.stats.batches_abandoned += 1
        log.error(
            "ingest flush of %d messages abandoned after %d attempts (%s): not acknowledged, "
            "the broker redelivers them",
            len(batch),
            self.settings.attempts,
            self.stats.last_error,
        )
        for p in batch:
            if not p.done.done():
                p.done.set_exception(FlushFailedError(self.stats.last_error))

    def _fault(self, batch: list[_Pending], failures: int, *, abandoned: bool) -> None:
        if self._on_fault is not None:
            try:
                self._on_fault([p.batch for p in batch], failures, self.stats.last_error, abandoned)
            except Exception:
                log.exception("ingest flush fault report failed")
