"""Batched ingest through a real Mosquitto: in order, nothing lost, acknowledged only after the commit.

The controller runs as an ingest worker (its own MQTT 5 session, manual acks) on a real
SQLite store; a publisher sends QoS 1 telemetry. The second test crashes a worker whose
store never commits: had the worker acknowledged on receipt (paho's default), the broker
would have nothing left to give the next worker of the same identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt

from cloud_controller import AssetRef, CloudConfig, CloudController, Registry, SiteRef
from cloud_controller.ingest_writer import WriterSettings
from cloud_controller.store import WriteResult
from cloud_controller.store.batch import SiteSamples
from gridflex.ops.broker import MosquittoBroker
from protocols.assets import METER
from protocols.clock import RealClock
from protocols.codec import encode
from protocols.messages import Sample, TelemetryBatch
from protocols.topics import site_topic

T0 = datetime(2030, 1, 15, tzinfo=UTC)
SITES = tuple(f"b{i:03d}" for i in range(5))
REGISTRY = Registry(sites=tuple(SiteRef(s, i, (AssetRef(METER, "meter"),)) for i, s in enumerate(SITES)))


def _config(port: int, store: Path) -> CloudConfig:
    return CloudConfig.model_validate(
        {
            "broker": {"port": port, "client_id": "batch-test"},
            "store": {"path": str(store), "ingest_batch_messages": 50, "ingest_batch_ms": 50},
            "control": {"dispatch": False},
            "api": {"enabled": False},
        }
    )


def _payloads(n_messages: int, size: int) -> list[tuple[str, bytes]]:
    """Each site's messages in seq order, the sites interleaved."""
    out = []
    for m in range(n_messages):
        for site in SITES:
            samples = [
                Sample(
                    seq=m * size + k,
                    asset="meter",
                    point="p_kw",
                    value=float(m * size + k),
                    unit="kW",
                    ts=T0 + timedelta(seconds=m * size + k),
                )
                for k in range(size)
            ]
            out.append(
                (site_topic(site, "telemetry"), encode(TelemetryBatch(site=site, ts=T0, samples=samples)))
            )
    return out


async def _publish(port: int, payloads: Sequence[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port, max_queued_outgoing_messages=0) as pub:
        for topic, payload in payloads:
            await pub.publish(topic, payload, qos=1)


async def _until(check: object, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _in_order_and_complete(port: int, store: Path) -> None:
    ctl = CloudController(_config(port, store), REGISTRY, clock=RealClock(), role="ingest")
    assert ctl.ingest.writer is not None and ctl.session.manual_ack
    task = asyncio.create_task(ctl.run())
    try:
        await ctl.session.wait_connected(20)
        await asyncio.sleep(0.3)  # subscribed
        await _publish(port, _payloads(n_messages=60, size=2))
        await _until(lambda: ctl.ingest.stats.samples_stored >= 600, 60)
        await _until(lambda: ctl.session.acks is not None and ctl.session.acks.pending == 0, 10)
        st, w = ctl.ingest.stats, ctl.ingest.writer.stats
        assert (st.batches, st.samples_stored, st.duplicates, st.gaps) == (300, 600, 0, 0)
        assert ctl.store.watermarks() == dict.fromkeys(SITES, 119)
        assert ctl.store.count_samples() == 600
        assert w.messages_flushed == 300 and w.flushes < 300 and w.largest_flush <= 50
        assert ctl.session.acks is not None and ctl.session.acks.acked == 300
    finally:
        await _stop(task)


def test_batched_ingest_stores_every_message_in_order_and_acknowledges_each_after_its_commit(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    asyncio.run(_in_order_and_complete(mosquitto.port, tmp_path / "cloud.sqlite"))


async def _crash_then_redelivery(port: int, tmp: Path) -> tuple[int, int, int]:
    """(flushes the crashed worker committed, samples the next worker stored, its watermark of b000)."""
    gate = threading.Event()

    def never_commits(_batches: Sequence[SiteSamples]) -> list[WriteResult]:
        gate.wait(30)  # released at the end; then it fails rather than write
        raise OSError("the worker crashed before this commit")

    first = CloudController(_config(port, tmp / "a.sqlite"), REGISTRY, clock=RealClock(), role="ingest")
    first.store.write_batches = never_commits  # type: ignore[method-assign,assignment]
    writer = first.ingest.enable_batching(
        WriterSettings(max_messages=50, max_wait_s=0.05, close_timeout_s=0.3)
    )
    task = asyncio.create_task(first.run())
    try:
        await first.session.wait_connected(20)
        await asyncio.sleep(0.3)
        every = _payloads(n_messages=4, size=1)  # site-major: index 5 m + site
        await _publish(port, [*every[:4], every[5], every[10], every[15]])  # b000..b003 seq 0; b000 seq 1..3
        await _until(lambda: first.session.acks is not None and first.session.acks.pending >= 7, 20)
        assert first.session.acks is not None and first.session.acks.acked == 0
    finally:
        await _stop(task)  # the worker goes away with its messages read and unacknowledged
        gate.set()
    second = CloudController(_config(port, tmp / "b.sqlite"), REGISTRY, clock=RealClock(), role="ingest")
    task = asyncio.create_task(second.run())
    try:
        await _until(lambda: second.ingest.stats.samples_stored >= 7, 30)  # redelivered by the broker
        return writer.stats.flushes, second.store.count_samples(), second.store.highest_contiguous_seq("b000")
    finally:
        await _stop(task)


def test_a_worker_that_dies_before_its_commit_leaves_every_message_to_the_broker_to_redeliver(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    flushed, stored, wm = asyncio.run(_crash_then_redelivery(mosquitto.port, tmp_path))
    assert flushed == 0  # the first worker committed nothing
    assert stored == 7 and wm == 3  # b000 seq 0..3 and b001..b003 seq 0: all of them, from the broker
