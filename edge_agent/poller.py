"""Poller: one task per device reads its due points, and a pure filter decides what is published.

`SampleFilter` is the pure part (deadband, max-age heartbeat, quality transitions);
`DevicePoller` is the shell (schedule, driver call, reconnect backoff, events). A
device that hangs or fails only ever delays its own task: every call is bounded by
the driver's timeout, and the other devices poll in their own tasks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from edge_agent.config import PollConfig
from edge_agent.drivers.base import DeviceError, Driver, PointRef, Reading
from protocols.backoff import Backoff
from protocols.clock import Clock
from protocols.messages import Quality

__all__ = ["DevicePoller", "Latest", "PendingSample", "PollLog", "SampleFilter"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PendingSample:
    """A sample before the buffer gives it its `seq`."""

    asset: str
    point: str
    value: float | None
    unit: str
    ts: datetime
    quality: Quality
    reason: str | None


class PollLog:
    """`buffer.poll_log_file`: one `site,asset/point,ts,seq` line per sample, flushed per poll.

    Why: "samples lost" is only provable against what was polled, and a sample lost
    between poll and queue commit leaves no trace anywhere else. Lines are written and
    flushed *before* the commit, so a SIGKILL after the flush shows the sample as polled;
    `seq` is the one the queue is about to assign (a refused commit reuses it: compare by
    point and ts, not by seq alone).
    """

    def __init__(self, path: Path, site: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.site = site
        self._file = path.open("a", encoding="utf-8")

    def write(self, samples: Sequence[PendingSample], first_seq: int) -> None:
        """Append and flush one line per sample (to the OS: it survives a crash of the agent)."""
        self._file.write(
            "".join(
                f"{self.site},{s.asset}/{s.point},{s.ts.isoformat()},{first_seq + i}\n"
                for i, s in enumerate(samples)
            )
        )
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


@dataclass(slots=True)
class Latest:
    """The most recent reading of a point (for commands' ramp/read-back and the flex estimate)."""

    value: float | None
    quality: Quality
    ts: datetime
    mono: float


@dataclass(slots=True)
class _Published:
    value: float | None
    quality: Quality
    mono: float


@dataclass
class SampleFilter:
    """Decide whether a reading becomes a sample: on change beyond deadband, quality change, or max age."""

    poll: PollConfig
    _last: dict[str, _Published] = field(default_factory=dict)

    def accept(self, ref: PointRef, reading: Reading, mono: float) -> bool:
        """Whether `reading` of `ref` is published, remembering it as the last published if so."""
        last = self._last.get(ref.key)
        # A quarter interval of slack: a fixed-rate poll lands a hair early as often as late.
        interval_s = ref.point.interval_s or self.poll.interval_s
        max_age_s = (ref.point.max_age_s or self.poll.max_age_s) - 0.25 * interval_s
        publish = (
            last is None
            or last.quality != reading.quality
            or mono - last.mono >= max_age_s
            or (
                reading.value is not None
                and last.value is not None
                and (
                    abs(reading.value - last.value) > ref.point.deadband
                    if ref.point.deadband > 0
                    else reading.value != last.value
                )
            )
        )
        if publish:
            self._last[ref.key] = _Published(reading.value, reading.quality, mono)
        return publish


SampleSink = Callable[[Sequence[PendingSample]], None]
EventSink = Callable[[str, str, str, str | None], None]  # kind, severity, message, asset


class DevicePoller:
    """Poll one device's points on their intervals until cancelled."""

    def __init__(
        self,
        device_id: str,
        driver: Driver,
        points: Sequence[PointRef],
        *,
        poll: PollConfig,
        clock: Clock,
        sink: SampleSink,
        events: EventSink,
        latest: dict[str, Latest],
        backoff: Backoff | None = None,
    ) -> None:
        self.device_id = device_id
        self.driver = driver
        self.points = list(points)
        self.poll = poll
        self.clock = clock
        self.sink = sink
        self.events = events
        self.latest = latest
        self.filter = SampleFilter(poll)
        self.backoff = backoff or Backoff(min_s=0.2, max_s=10.0)
        self.faulted = False
        self.fault_count = 0
        self.reads = 0
        self._bad_points: set[str] = set()
        self.stopping = False  # set by the agent on stop; see EdgeAgent._stopping

    def interval_s(self, ref: PointRef) -> float:
        """The point's poll interval, else the site's."""
        return ref.point.interval_s or self.poll.interval_s

    async def run(self) -> None:
        """Poll each point on its fixed-rate schedule until stopped, backing off after a device fault."""
        due = dict.fromkeys((r.key for r in self.points), self.clock.monotonic())
        while not self.stopping:
            now = self.clock.monotonic()
            wanted = [r for r in self.points if due[r.key] <= now + 1e-9]
            if not wanted:
                await self.clock.sleep(min(1.0, max(0.0, min(due.values()) - now)))
                continue
            ok = await self.poll_once(wanted)
            for ref in wanted:
                # Fixed-rate schedule; a late device skips missed slots instead of bursting.
                step = self.interval_s(ref)
                due[ref.key] = max(due[ref.key] + step, self.clock.monotonic() if step > 0 else 0)
            if not ok:
                await self.clock.sleep(self.backoff.next_delay_s())

    async def poll_once(self, refs: Sequence[PointRef]) -> bool:
        """Read `refs` once and hand accepted samples to the sink; False if the device failed."""
        t0 = self.clock.monotonic()
        ts = self.clock.now()
        try:
            readings = await self.driver.read(refs)
        except DeviceError as exc:
            self._on_fault(refs, ts, t0, str(exc))
            return False
        self.reads += 1
        elapsed_s = self.clock.monotonic() - t0
        if self.faulted:
            self.faulted = False
            self.backoff.reset()
            log.info("device %s answers again", self.device_id)
            self.events("device_recovered", "info", f"device {self.device_id} answers again", None)
        out: list[PendingSample] = []
        for ref in refs:
            reading = readings.get(ref.key) or Reading(None, "bad", "no value returned")
            if reading.value is not None and not math.isfinite(reading.value):
                reading = Reading(None, "bad", f"not a finite number ({reading.value})")
            if reading.quality == "good" and elapsed_s > 2 * self.interval_s(ref):
                reading = Reading(reading.value, "stale", f"read took {elapsed_s:.2f} s")
            self._track_point(ref, reading)
            self.latest[ref.key] = Latest(reading.value, reading.quality, ts, t0)
            if self.filter.accept(ref, reading, t0):
                out.append(_pending(ref, reading, ts))
        if out:
            self.sink(out)
        return True

    def _track_point(self, ref: PointRef, reading: Reading) -> None:
        if reading.quality == "bad" and ref.key not in self._bad_points:
            self._bad_points.add(ref.key)
            self.events("point_bad", "warning", f"{ref.key}: {reading.reason}", ref.asset)
        elif reading.quality != "bad" and ref.key in self._bad_points:
            self._bad_points.discard(ref.key)
            self.events("point_recovered", "info", f"{ref.key} reads again", ref.asset)

    def _on_fault(self, refs: Sequence[PointRef], ts: datetime, mono: float, reason: str) -> None:
        if not self.faulted:
            self.faulted = True
            self.fault_count += 1
            log.warning("device %s fault: %s", self.device_id, reason)
            self.events("device_fault", "error", reason, None)
        bad = Reading(None, "bad", reason[:500])
        out = []
        for ref in refs:
            self.latest[ref.key] = Latest(None, "bad", ts, mono)
            if self.filter.accept(ref, bad, mono):
                out.append(_pending(ref, bad, ts))
        if out:
            self.sink(out)


def _pending(ref: PointRef, reading: Reading, ts: datetime) -> PendingSample:
    return PendingSample(
        asset=ref.asset,
        point=ref.point.name,
        value=reading.value,
        unit=ref.point.unit,
        ts=ts,
        quality=reading.quality,
        reason=reading.reason,
    )
