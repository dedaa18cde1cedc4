"""Telemetry path: poller samples -> SQLite queue -> `TelemetryBatch`es on MQTT, released by the cloud.

The cursor `sent_upto` lives in memory only: after a restart or a reconnect everything
not yet confirmed by the cloud's `stored` watermark is sent again (the cloud drops
duplicates by `(site, seq)`), which is what makes a crash of the broker or the agent
lose nothing.

Queue faults fail safe and loud. A corrupt queue file (at start or later) is moved
aside for forensics and a new queue opened; a write the disk refuses (full disk,
file-size limit, I/O error) drops the samples of that poll, counted in
`stats.write_dropped`, with a `queue_write_failed` event and `state: degraded` until a
write succeeds again. Dropped samples never got a seq, so the cloud sees no gap.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edge_agent.buffer import SampleBuffer, batch_payload, open_buffer
from edge_agent.config import SiteConfig
from edge_agent.health import AgentStats
from edge_agent.poller import PendingSample, PollLog
from edge_agent.sqlite_files import is_corruption, move_aside
from protocols.clock import Clock
from protocols.messages import Stored, new_msg_id
from protocols.mqtt import MqttSession, NotConnectedError, PublishError
from protocols.topics import site_topic

__all__ = ["RESEND_MAX_S", "TelemetryPipe", "wait_event"]

RESEND_MAX_S = 600.0

log = logging.getLogger(__name__)

EventSink = Callable[..., None]  # EdgeAgent.event(kind, severity, message, asset, details=)
DROP_EVENT_EVERY_S = 5.0
WATERMARK_WAIT_S = 2.0


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait for `event` at most `timeout_s`; True if it is set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


class TelemetryPipe:
    """Owns the queue: `store()` from pollers, `run()` publishes, `on_stored()` releases."""

    def __init__(self, config: SiteConfig, clock: Clock, stats: AgentStats, events: EventSink) -> None:
        self.config = config
        self.clock = clock
        self.stats = stats
        self.events = events
        self.topic = site_topic(config.site, "telemetry")
        #: cause -> why the agent is degraded (published on `state`); empty when healthy.
        self.degraded: dict[str, str] = {}
        self._write_dropped_unreported = 0
        self._write_event_at = -1e18
        self.buffer, moved = open_buffer(
            config.buffer.path,
            max_rows=config.buffer.max_rows,
            max_age_s=config.buffer.max_age_s,
            synchronous=config.buffer.synchronous,
            now=clock.now(),
        )
        if moved is not None:
            self._report_corrupt(moved, "at start")
        self.sent_upto = self.buffer.min_seq - 1
        self.wake = asyncio.Event()
        self.stopping = False
        # Resend timer (host time: it is about the network, not the simulated site).
        self._progress_at = time.monotonic()
        self._resend_after_s = config.cloud.resend_after_s
        self._dropped_unreported = 0
        # Set by the first `stored`: the retained watermark arrives right after the first
        # SUBACK, and a first batch sent before it could carry seqs the cloud already has
        # (a gateway whose queue file was lost). Waited for once per process, at most 2 s.
        self._watermark_seen = asyncio.Event()
        self._drop_event_at = -1e18
        self._sync_stats()
        log_path = config.buffer.poll_log_file
        self.poll_log = None if log_path is None else PollLog(log_path, config.site)

    def _sync_stats(self) -> None:
        self.stats.queue_depth = self.buffer.depth
        self.stats.next_seq = self.buffer.next_seq

    # ---- queue faults ----------------------------------------------------------------------

    def _set_degraded(self, cause: str, reason: str | None) -> None:
        if reason is None:
            self.degraded.pop(cause, None)
        else:
            self.degraded[cause] = reason
        self.stats.degraded = "; ".join(self.degraded.values()) or None

    def _report_corrupt(self, moved: Path, when: str) -> None:
        reason = f"queue file was corrupt ({when}): kept as {moved.name}, new queue opened"
        log.error("%s", reason)
        self._set_degraded("queue_corrupt", reason)
        self.events("queue_corrupt", "error", reason, None, details={"moved_to": moved.name[-64:]})

    def _replace_corrupt(self, exc: sqlite3.Error) -> None:
        """The queue broke while running: keep the file, start a new queue, resend from there."""
        log.error("queue file %s is corrupt: %s", self.config.buffer.path, exc)
        old = self.buffer
        old.close()
        moved = move_aside(old.path, self.clock.now())
        self.buffer = SampleBuffer(
            old.path,
            max_rows=old.max_rows,
            max_age_s=old.max_age_s,
            synchronous=self.config.buffer.synchronous,
        )
        if self.stats.stored_seq >= self.buffer.next_seq:  # keep seqs above what the cloud has
            self.buffer.renumber_after(self.stats.stored_seq)
        self.sent_upto = self.buffer.min_seq - 1
        self._sync_stats()
        self._report_corrupt(moved, "while running")

    def _write_failed(self, samples: Sequence[PendingSample], exc: sqlite3.Error) -> None:
        """The disk refused the write: drop these samples, count them, say so (at most every 5 s)."""
        n = len(samples)
        self.stats.write_dropped += n
        self._write_dropped_unreported += n
        name = str(getattr(exc, "sqlite_errorname", "") or type(exc).__name__)
        first = "queue_write" not in self.degraded
        self._set_degraded("queue_write", f"queue write failed ({name}: {exc}); new samples are dropped")
        now = time.monotonic()
        if first or now - self._write_event_at >= DROP_EVENT_EVERY_S:
            if first:
                log.warning("queue write failed (%s: %s): dropping new samples until it works", name, exc)
            self._write_event_at = now
            self.events(
                "queue_write_failed",
                "error",
                f"queue write failed ({name}: {exc}); dropped {self._write_dropped_unreported} new samples",
                None,
                details={
                    "error": name[:64],
                    "dropped": self._write_dropped_unreported,
                    "dropped_total": self.stats.write_dropped,
                },
            )
            self._write_dropped_unreported = 0

    def _write_recovered(self) -> None:
        log.info("queue writes work again")
        self._set_degraded("queue_write", None)
        self.events(
            "queue_write_recovered",
            "info",
            f"queue writes work again ({self.stats.write_dropped} samples dropped in all)",
            None,
            details={"dropped": self._write_dropped_unreported, "dropped_total": self.stats.write_dropped},
        )
        self._write_dropped_unreported = 0

    def _append(self, samples: Sequence[PendingSample]) -> int | None:
        """Append, replacing a corrupt queue once; the number dropped by the bounds, None if refused."""
        for attempt in (1, 2):
            try:
                _, dropped = self.buffer.append(samples)
                return dropped
            except sqlite3.DatabaseError as exc:
                if is_corruption(exc) and attempt == 1:
                    self._replace_corrupt(exc)
                    continue
                self._write_failed(samples, exc)
                return None
        return None  # pragma: no cover - the loop always returns

    # ---- the queue ---------------------------------------------------------------------------

    def store(self, samples: Sequence[PendingSample]) -> None:
        """Commit samples to the queue (durable when this returns) and wake the publisher.

        A refused write is counted and reported, never raised: the pollers, and with them
        `latest` (what commands and the flex estimate read), keep running.
        """
        if self.poll_log is not None and samples:
            self.poll_log.write(samples, self.buffer.next_seq)
        dropped = self._append(samples)
        if dropped is None:
            return
        if "queue_write" in self.degraded:
            self._write_recovered()
        self._sync_stats()
        if dropped:
            self.stats.dropped += dropped
            self._dropped_unreported += dropped
            now = time.monotonic()
            if now - self._drop_event_at >= DROP_EVENT_EVERY_S:
                self._drop_event_at = now
                self._announce_floor(
                    "queue_dropped", f"queue full: dropped {self._dropped_unreported} oldest samples"
                )
                self._dropped_unreported = 0
        self.wake.set()

    def _announce_floor(self, kind: str, message: str) -> None:
        """Tell the cloud that no seq below `min_seq` will ever be sent again.

        Rows leave the queue only when stored (watermark) or dropped, so the cloud may
        raise its contiguous watermark to `min_seq - 1`; without this, a dropped run
        would hold the watermark below the gap for ever and the queue would never drain.
        """
        self.events(
            kind,
            "warning",
            message,
            None,
            details={"min_seq": self.buffer.min_seq, "dropped": self._dropped_unreported},
        )

    def on_connect(self) -> None:
        """Resend whatever the cloud has not confirmed; restate the queue floor if it matters."""
        self.sent_upto = max(self.buffer.min_seq - 1, min(self.stats.stored_seq, self.buffer.next_seq - 1))
        if self.config.cloud.watermark and self.buffer.min_seq - 1 > self.stats.stored_seq:
            self._announce_floor("queue_floor", f"seqs below {self.buffer.min_seq} were dropped")
        self.wake.set()

    def on_stored(self, stored: Stored) -> None:
        """The cloud's watermark: release rows (watermark mode) and never resend below it."""
        self._watermark_seen.set()
        if stored.seq > self.stats.stored_seq:
            self._progress_at = time.monotonic()
            self._resend_after_s = self.config.cloud.resend_after_s
        self.stats.stored_seq = max(self.stats.stored_seq, stored.seq)
        try:
            self._apply_watermark(stored)
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                self._replace_corrupt(exc)
            else:  # rows stay queued; the next watermark releases them
                log.warning("queue release failed: %s", exc)

    def _apply_watermark(self, stored: Stored) -> None:
        buf = self.buffer
        if stored.seq >= buf.next_seq:
            shift = buf.renumber_after(stored.seq)
            self.sent_upto = buf.min_seq - 1
            self._sync_stats()
            self.events(
                "seq_jump",
                "warning",
                f"cloud has seq {stored.seq} >= our next seq: queue file lost? seqs moved up by {shift}",
                None,
            )
            return
        if self.config.cloud.watermark:
            buf.release_upto(stored.seq)
            self._sync_stats()
            self.sent_upto = max(self.sent_upto, min(stored.seq, buf.next_seq - 1))

    def _maybe_rewind(self) -> None:
        """Resend from the watermark when what was sent has gone unstored for too long.

        The cloud missed those batches (e.g. it was offline while the broker was up, and
        the broker had no session to queue them).
        """
        if not self.config.cloud.watermark or self.sent_upto <= self.stats.stored_seq:
            self._progress_at = time.monotonic()
            return
        if time.monotonic() - self._progress_at < self._resend_after_s:
            return
        rewind_to = max(self.buffer.min_seq - 1, self.stats.stored_seq)
        log.warning(
            "cloud watermark stuck at %d for %.0f s (sent up to %d): resending",
            self.stats.stored_seq,
            self._resend_after_s,
            self.sent_upto,
        )
        self.sent_upto = rewind_to
        self._progress_at = time.monotonic()
        self._resend_after_s = min(2 * self._resend_after_s, RESEND_MAX_S)

    async def run(self, session: MqttSession) -> None:
        """Publish queued samples in seq order, one QoS 1 batch at a time, until stopped."""
        while not self.stopping:
            if not await wait_event(session.connected, 1.0):
                continue
            if self.config.cloud.watermark and not self._watermark_seen.is_set():
                # A fresh cloud has no retained watermark yet: go on after a short wait.
                # (Later reconnects need no wait: the seq counter is known to be ahead.)
                await wait_event(self._watermark_seen, WATERMARK_WAIT_S)
                self._watermark_seen.set()
            self._maybe_rewind()
            try:
                batch = self.buffer.read(self.sent_upto, self.config.buffer.batch_max)
            except sqlite3.DatabaseError as exc:
                if is_corruption(exc):
                    self._replace_corrupt(exc)
                else:
                    log.warning("queue read failed: %s", exc)
                    await asyncio.sleep(1.0)
                continue
            if batch is None:
                self.wake.clear()
                await wait_event(self.wake, 1.0)
                continue
            payload = batch_payload(self.config.site, self.clock.now(), new_msg_id(), batch)
            try:
                await session.publish(self.topic, payload, qos=1)
            except (NotConnectedError, PublishError) as exc:
                log.info(
                    "telemetry publish interrupted (%s); will resend from seq %d", exc, self.sent_upto + 1
                )
                await asyncio.sleep(0.05)
                continue
            self.sent_upto = batch.last_seq
            self.stats.published += len(batch.samples_json)
            self.stats.last_broker_ack = self.clock.now()
            if not self.config.cloud.watermark:
                try:
                    self.buffer.release_upto(batch.last_seq)  # edge-only install: PUBACK is all we get
                except sqlite3.DatabaseError as exc:
                    log.warning("queue release failed: %s", exc)  # resent later; the cloud dedupes
                self._sync_stats()

    def close(self) -> None:
        """Close the queue (and the poll log)."""
        self.buffer.close()
        if self.poll_log is not None:
            self.poll_log.close()
