"""Ingest: MQTT messages from the agents → validated → store, site snapshots, command tracker.

Pure of sockets: `Ingest.handle(topic, payload)` is called by the service's MQTT session
for every message, so the same code is unit-tested with bytes. Invalid payloads are
counted and logged, never raised: one broken agent must not stop the others' ingest.
With a `RegistryCheck`, what the sites report is checked against the registry: an
unregistered site, a registered asset that never reports, a point of an unregistered
asset are each logged once at WARNING (the asset findings also as a warning event in the
store), and the snapshot's `missing_assets` keeps the planner from commanding them.

Telemetry is stored in batches when `enable_batching` was called (the service does, unless
`store.ingest_batch_messages` is 0): `handle` queues the validated message in the
write-behind queue (`ingest_writer.BatchWriter`) and returns a future that completes when
its batch is committed; the MQTT session acknowledges the message only then. The site's
snapshot is updated at once (the planner's live view); counters, the `stored`
watermark's "publish again" mark and the InfluxDB copy follow the commit (`_stored`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cloud_controller.commands import CommandTracker
from cloud_controller.ingest_writer import BatchWriter, WriterSettings
from cloud_controller.live.types import SiteSnapshot
from cloud_controller.registry.check import RegistryCheck, SiteFindings
from cloud_controller.store import Store
from cloud_controller.store.influx import InfluxSink
from cloud_controller.store.sqlite import WriteResult
from protocols.assets import Points
from protocols.codec import decode
from protocols.errors import ContractError
from protocols.messages import Ack, Event, FlexEnvelope, SiteState, TelemetryBatch

__all__ = ["Ingest", "IngestStats"]

log = logging.getLogger(__name__)

#: The telemetry key ("asset/point") of the grid meter's power: the site's net load.
METER_P_KW = str(Points.METER_P_KW)

FLOOR_EVENTS = frozenset({"queue_dropped", "queue_floor"})


@dataclass
class IngestStats:
    """Counters of what ingest saw: batches, samples stored, duplicates, gaps, rejects, events."""

    batches: int = 0
    samples_stored: int = 0
    duplicates: int = 0
    gaps: int = 0
    invalid: int = 0
    unknown_site: int = 0
    registry_mismatches: int = 0  # warning events written for registry/report mismatches
    events: int = 0
    acks: int = 0
    flushes_abandoned: int = 0  # write-behind batches given up (not acked: the broker redelivers)
    last_error: str = ""
    per_site_gaps: dict[str, int] = field(default_factory=dict)


class Ingest:
    """Validates every agent message and routes it to the store, site snapshots and command tracker."""

    def __init__(
        self,
        store: Store,
        snapshots: dict[str, SiteSnapshot],
        tracker: CommandTracker,
        check: RegistryCheck | None = None,
        *,
        meters: dict[str, SiteSnapshot] | None = None,
        wall_s: Callable[[], float] = time.monotonic,
    ) -> None:
        """`meters`: the grid meters' snapshots, kept apart from the sites' (`snapshots`)."""
        self.store = store
        self.check = check
        # wall time, not the service's clock: the registry check's grace is about drivers
        # connecting and backlogs replaying, which an accelerated demo clock does not speed up
        self._wall_s = wall_s
        self.snapshots = snapshots
        self.meters: dict[str, SiteSnapshot] = {} if meters is None else meters
        self.tracker = tracker
        self.stats = IngestStats()
        self.dirty: set[str] = set()  # sites whose watermark must be (re)published
        self.sink: InfluxSink | None = None  # production copy of every stored sample
        self._latest_ts: dict[tuple[str, str], datetime] = {}
        self._fault_writes: set[asyncio.Task[None]] = set()  # fault events being written
        self.writer: BatchWriter | None = None  # the write-behind queue, once `enable_batching` made it
        #: called after every stored telemetry message with its result (instrumentation: the test bed)
        self.on_stored: list[Callable[[TelemetryBatch, WriteResult], None]] = []

    def enable_batching(self, settings: WriterSettings) -> BatchWriter:
        """Store telemetry through a write-behind queue; the caller runs `writer.run()` as a task."""
        self.writer = BatchWriter(
            self.store.write_batches, self._stored, settings, on_fault=self._flush_fault
        )
        return self.writer

    async def handle(self, topic: str, payload: bytes) -> asyncio.Future[None] | None:
        """Take one MQTT message; invalid or unregistered ones are counted and logged, never raised.

        Returns a future when the message is not stored yet (a queued telemetry batch): it
        completes at the commit, or fails if the batch was abandoned. None: handled.
        """
        try:
            msg = decode(topic, payload)
        except ContractError as exc:
            self.stats.invalid += 1
            self.stats.last_error = str(exc)
            log.warning("invalid message on %s: %s", topic, exc)
            return None
        snap = self._snapshot_of(msg, topic)
        if snap is None:
            return None
        if isinstance(msg, TelemetryBatch):
            return await self._telemetry(msg, snap)
        if isinstance(msg, SiteState):
            snap.mode = msg.status
            snap.last_seen = msg.ts
        elif isinstance(msg, FlexEnvelope):
            snap.flex = msg
        elif isinstance(msg, Ack):
            self.stats.acks += 1
            if not self.tracker.on_ack(msg):
                log.info("ack %s from %s answers no command of ours", msg.cmd_id, msg.site)
            snap.uncontrollable = msg.site in self.tracker.uncontrollable
            await asyncio.to_thread(self.store.write_ack, msg)
        elif isinstance(msg, Event):
            self.stats.events += 1
            await asyncio.to_thread(self.store.write_event, msg)
            min_seq = msg.details.get("min_seq")
            if msg.kind in FLOOR_EVENTS and isinstance(min_seq, int) and not isinstance(min_seq, bool):
                await asyncio.to_thread(self.store.raise_floor, msg.site, min_seq)
                self.dirty.add(msg.site)
        return None

    def _snapshot_of(self, msg: object, topic: str) -> SiteSnapshot | None:
        """The message's site's (or grid meter's) snapshot; None (counted, logged once) if unregistered."""
        site = getattr(msg, "site", None)
        snap = None
        if isinstance(site, str):
            snap = self.snapshots.get(site) or self.meters.get(site)
        if snap is None:
            self.stats.unknown_site += 1
            if self.check is not None and isinstance(site, str):
                if self.check.unknown_site(site):
                    log.warning(
                        "site %r is not in the registry: its messages are dropped (first on %s)", site, topic
                    )
            else:
                log.debug("message from unregistered site on %s", topic)
        return snap

    async def _telemetry(self, batch: TelemetryBatch, snap: SiteSnapshot) -> asyncio.Future[None] | None:
        await self._observe(batch, snap)
        if self.writer is not None:
            return await self.writer.put(batch)
        result = await asyncio.to_thread(self.store.write_samples, batch.site, batch.samples)
        self._stored(batch, result)
        return None

    def _stored(self, batch: TelemetryBatch, result: WriteResult) -> None:
        """After the commit: counters, the InfluxDB copy, and the site marked if its watermark moved.

        A gap is a message that starts above the watermark + 1 the commit left: a hole
        remains below it (in a batch, a later message that fills the hole is no gap).
        """
        site = batch.site
        self.stats.batches += 1
        self.stats.samples_stored += result.inserted
        if self.sink is not None and result.inserted:
            self.sink.enqueue(site, batch.samples)
        self.stats.duplicates += result.duplicates
        if min(s.seq for s in batch.samples) > result.watermark + 1:
            self.stats.gaps += 1
            self.stats.per_site_gaps[site] = self.stats.per_site_gaps.get(site, 0) + 1
        if result.watermark != result.previous:
            self.dirty.add(site)
        for hook in self.on_stored:
            hook(batch, result)

    def _flush_fault(self, batches: list[TelemetryBatch], failures: int, error: str, abandoned: bool) -> None:
        """A flush failed `failures` times: counted, and kept as an event (written when the store takes it)."""
        sites = sorted({b.site for b in batches})
        if abandoned:
            self.stats.flushes_abandoned += 1
            self.stats.last_error = f"{len(batches)} telemetry messages not stored: {error}"
        event = Event(
            site=sites[0],
            ts=max(b.ts for b in batches),
            kind="ingest_flush_abandoned" if abandoned else "ingest_flush_retried",
            severity="error" if abandoned else "warning",
            message=f"ingest: {len(batches)} messages of {len(sites)} sites, {failures} failed attempts: {error}"[
                :500
            ],
            details={"messages": len(batches), "sites": len(sites), "failures": failures},
        )
        task = asyncio.create_task(asyncio.to_thread(self.store.write_event, event))
        self._fault_writes.add(task)
        task.add_done_callback(self._fault_written)

    def _fault_written(self, task: asyncio.Task[None]) -> None:
        self._fault_writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ingest flush fault event not stored: %s", task.exception())

    async def _observe(self, batch: TelemetryBatch, snap: SiteSnapshot) -> None:
        """The site's live snapshot and the registry check, from the message as received."""
        site = batch.site
        for s in batch.samples:
            if s.value is None or s.quality != "good":
                continue
            key = f"{s.asset}/{s.point}"
            seen = self._latest_ts.get((site, key))
            if seen is not None and s.ts < seen:
                continue  # an older sample replayed after an outage
            self._latest_ts[site, key] = s.ts
            snap.points[key] = float(s.value)
            if key == METER_P_KW:
                snap.p_net_kw = float(s.value)
            if snap.measured_at is None or s.ts > snap.measured_at:
                snap.measured_at = s.ts
        snap.last_seen = batch.ts
        if self.check is not None and site in self.snapshots:  # a grid meter has no assets to check
            keys = (f"{s.asset}/{s.point}" for s in batch.samples)
            found = self.check.observe(site, keys, now_s=self._wall_s())
            snap.missing_assets = self.check.missing_assets(site)
            if found.any:
                await self._report(batch, found)

    async def _report(self, batch: TelemetryBatch, found: SiteFindings) -> None:
        """Log a registry mismatch once per asset and keep it as a warning event beside the agents' own."""
        site = batch.site
        for asset in found.reappeared_assets:
            log.info("site %s: asset %r reports now; it is commanded again", site, asset)
        if not (found.missing_assets or found.unregistered_assets):
            return
        parts = []
        if found.missing_assets:
            parts.append(
                f"registered assets not reporting: {', '.join(found.missing_assets)} (never commanded)"
            )
        if found.unregistered_assets:
            parts.append(
                f"assets not in the registry: {', '.join(found.unregistered_assets)} "
                f"(points {', '.join(found.unregistered_points)})"
            )
        message = f"registry mismatch at {site}: " + "; ".join(parts)
        log.warning("%s", message)
        details: dict[str, str | int] = {
            "missing_assets": ",".join(found.missing_assets)[:64],
            "unregistered_assets": ",".join(found.unregistered_assets)[:64],
            "n_unregistered_points": len(found.unregistered_points),
        }
        event = Event(
            site=site,
            ts=batch.ts,
            kind="registry_mismatch",
            severity="warning",
            message=message[:500],
            details=details,  # type: ignore[arg-type]
        )
        self.stats.registry_mismatches += 1
        await asyncio.to_thread(self.store.write_event, event)
