"""Ingest's write-behind queue on a real SQLite store: flush on size and on time, retries, shutdown, acks.

The store is the real `SqliteStore` in a temp folder; where a commit must fail, a thin
wrapper raises the error SQLite raises for a locked file before passing through.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud_controller.commands import CommandTracker
from cloud_controller.ingest import Ingest
from cloud_controller.ingest_writer import FlushFailedError, WriterSettings
from cloud_controller.live.types import SiteSnapshot
from cloud_controller.store import SqliteStore, WriteResult
from cloud_controller.store.batch import SiteSamples
from protocols.codec import encode
from protocols.messages import Sample, TelemetryBatch
from protocols.mqtt_acks import AckQueue
from protocols.topics import site_topic

T0 = datetime(2030, 1, 15, tzinfo=UTC)
SITES = ("b1", "b2")


class FlakyStore(SqliteStore):
    """The real store; its first `fail` batched writes raise "database is locked"; counts the calls."""

    def __init__(self, path: Path, fail: int = 0) -> None:
        super().__init__(path)
        self.fail = fail
        self.calls: list[int] = []  # messages per write_batches call, failed ones included

    def write_batches(self, batches: Sequence[SiteSamples]) -> list[WriteResult]:
        self.calls.append(len(batches))
        if self.fail > 0:
            self.fail -= 1
            raise sqlite3.OperationalError("database is locked")
        return super().write_batches(batches)


def _message(site: str, seq: int) -> bytes:
    sample = Sample(
        seq=seq, asset="meter", point="p_kw", value=float(seq), unit="kW", ts=T0 + timedelta(seconds=seq)
    )
    return encode(TelemetryBatch(site=site, ts=T0 + timedelta(seconds=seq), samples=[sample]))


def _ingest(store: SqliteStore, **settings: float) -> Ingest:
    ingest = Ingest(store, {s: SiteSnapshot(site=s, mode="online") for s in SITES}, CommandTracker())
    ingest.enable_batching(WriterSettings(**settings))  # type: ignore[arg-type]
    return ingest


async def _put(ingest: Ingest, site: str, seq: int) -> asyncio.Future[None]:
    done = await ingest.handle(site_topic(site, "telemetry"), _message(site, seq))
    assert done is not None  # queued, not stored yet
    return done


async def test_a_flush_on_size_writes_n_messages_in_one_transaction_long_before_the_time_limit(
    tmp_path: Path,
) -> None:
    store = FlakyStore(tmp_path / "cloud.sqlite")
    ingest = _ingest(store, max_messages=4, max_wait_s=30.0)
    assert ingest.writer is not None
    task = asyncio.create_task(ingest.writer.run())
    t0 = time.perf_counter()
    done = [await _put(ingest, SITES[k % 2], k // 2) for k in range(8)]
    await asyncio.wait_for(asyncio.gather(*done), 5)
    assert time.perf_counter() - t0 < 5  # not the 30 s limit
    assert store.calls == [4, 4]
    assert store.watermarks() == {"b1": 3, "b2": 3}
    assert (ingest.stats.batches, ingest.stats.samples_stored, ingest.stats.gaps) == (8, 8, 0)
    assert ingest.dirty == {"b1", "b2"}
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.close()


async def test_a_flush_on_time_writes_what_waited_max_wait_s_after_the_first(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "cloud.sqlite")
    ingest = _ingest(store, max_messages=200, max_wait_s=0.3)
    assert ingest.writer is not None
    task = asyncio.create_task(ingest.writer.run())
    t0 = time.perf_counter()
    done = [await _put(ingest, "b1", 0), await _put(ingest, "b1", 1)]
    await asyncio.sleep(0.15)
    assert not any(d.done() for d in done) and store.count_samples() == 0  # still waiting
    await asyncio.wait_for(asyncio.gather(*done), 5)
    assert 0.25 <= time.perf_counter() - t0 < 3.0
    assert store.calls == [2] and store.highest_contiguous_seq("b1") == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.close()


async def test_a_failed_commit_is_retried_counted_and_kept_as_an_event(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "cloud.sqlite", fail=2)
    ingest = _ingest(store, max_messages=3, max_wait_s=0.05, retry_s=0.01)
    assert ingest.writer is not None
    task = asyncio.create_task(ingest.writer.run())
    done = [await _put(ingest, "b1", k) for k in range(3)]
    await asyncio.wait_for(asyncio.gather(*done), 5)
    assert store.calls == [3, 3, 3]  # two failures, then the same batch committed
    assert ingest.writer.stats.flush_failures == 2 and ingest.writer.stats.flushes == 1
    assert "database is locked" in ingest.writer.stats.last_error
    assert store.count_samples() == 3 and store.highest_contiguous_seq("b1") == 2
    for _ in range(50):  # the fault event is written off the loop
        if store.count_events("ingest_flush_retried"):
            break
        await asyncio.sleep(0.02)
    [event] = store.read_events(kind="ingest_flush_retried")
    assert event.severity == "warning" and event.details["failures"] == 2 and event.details["messages"] == 3
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.close()


async def test_a_batch_failing_every_attempt_is_abandoned_unstored_and_its_futures_fail(
    tmp_path: Path,
) -> None:
    store = FlakyStore(tmp_path / "cloud.sqlite", fail=1_000)
    ingest = _ingest(store, max_messages=2, max_wait_s=0.05, attempts=3, retry_s=0.01)
    assert ingest.writer is not None
    task = asyncio.create_task(ingest.writer.run())
    done = [await _put(ingest, "b1", 0), await _put(ingest, "b1", 1)]
    for d in done:
        with pytest.raises(FlushFailedError, match="database is locked"):
            await asyncio.wait_for(d, 5)
    assert store.calls == [2, 2, 2]
    assert ingest.writer.stats.batches_abandoned == 1 and ingest.stats.flushes_abandoned == 1
    assert ingest.stats.samples_stored == 0 and store.fail > 0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.close()


async def test_shutdown_flushes_every_accepted_message_before_the_writer_ends(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "cloud.sqlite")
    ingest = _ingest(store, max_messages=3, max_wait_s=60.0)
    assert ingest.writer is not None
    task = asyncio.create_task(ingest.writer.run())
    done = [await _put(ingest, SITES[k % 2], k // 2) for k in range(7)]  # 2 flushes on size, 1 waits
    await asyncio.sleep(0.1)
    assert ingest.writer.queued >= 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert all(d.done() and d.exception() is None for d in done)
    assert store.count_samples() == 7 and store.watermarks() == {"b1": 3, "b2": 2}
    assert ingest.writer.queued == 0
    store.close()


def test_acks_leave_in_arrival_order_only_when_each_message_is_done_and_a_failure_aborts() -> None:
    async def run() -> tuple[list[int], list[int], bool]:
        loop = asyncio.get_running_loop()
        sent: list[int] = []
        aborted: list[bool] = []
        acks = AckQueue(send=sent.append, abort=lambda: aborted.append(True))
        first, second = loop.create_future(), loop.create_future()
        e1, e2, e3 = acks.add(1), acks.add(2), acks.add(3)
        acks.settle(e1, first)
        acks.settle(e2, None)  # handled at once, but after message 1
        acks.settle(e3, second)
        await asyncio.sleep(0)
        before = list(sent)
        first.set_result(None)
        await asyncio.sleep(0)
        after_first = list(sent)
        second.set_exception(FlushFailedError("store down"))
        late = acks.add(4)
        acks.settle(late, None)
        await asyncio.sleep(0)
        return before, after_first, bool(aborted) and sent == after_first and acks.closed

    before, after_first, aborted_cleanly = asyncio.run(run())
    assert before == []  # message 2 is done but waits for 1
    assert after_first == [1, 2]
    assert aborted_cleanly  # 3 failed: no more acks on this connection, the session reconnects
