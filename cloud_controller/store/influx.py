"""Production time-series sink: every stored sample also goes to InfluxDB (line protocol).

Two write APIs: v2 (`/api/v2/write`, org + bucket + token, through `influxdb-client`) for
InfluxDB 2.x/3.x and VictoriaMetrics, and v1 (`/write?db=`, plain HTTP) for InfluxDB 1.x
and 2.x's compatibility endpoint. The history is read back by `influx_history`.

Why a sink next to SQLite and not instead of it: the watermark that lets agents delete
their queues must only move once a sample is durable, and InfluxDB acknowledges writes
it may still drop on a full disk or a retention change; so the local SQLite file stays
the record of *which* samples arrived (and serves the planner's short history), while
InfluxDB holds the long history for dashboards and analysis. Writes are batched,
retried with backoff, and never block ingest: a bounded queue drops the oldest batch
(counted) when InfluxDB is down for long — the samples are still in SQLite.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from protocols.backoff import Backoff
from protocols.messages import Sample

__all__ = ["InfluxSink", "InfluxSinkStats", "line_protocol"]

log = logging.getLogger(__name__)

MEASUREMENT = "telemetry"


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def line_protocol(site: str, samples: Sequence[Sample]) -> list[str]:
    """One line per sample with a value: tags site/asset/point/quality, fields value + seq, ms time."""
    lines = []
    for s in samples:
        if s.value is None:
            continue
        lines.append(
            f"{MEASUREMENT},site={_tag(site)},asset={_tag(s.asset)},point={_tag(s.point)},quality={s.quality} "
            f"value={float(s.value)!r},seq={s.seq}i {int(s.ts.timestamp() * 1000)}"
        )
    return lines


@dataclass
class InfluxSinkStats:
    """Counters of the InfluxDB sink: lines and batches written, write errors, lines dropped."""

    lines_written: int = 0
    batches_written: int = 0
    write_errors: int = 0
    lines_dropped: int = 0


class InfluxSink:
    """Batched, retried, non-blocking copy of every stored sample to InfluxDB (v1 or v2 write API)."""

    def __init__(
        self,
        url: str,
        *,
        org: str,
        bucket: str,
        token: str,
        api: str = "v2",
        database: str | None = None,
        batch_lines: int = 5_000,
        max_queued_lines: int = 2_000_000,
    ) -> None:
        if api not in ("v1", "v2"):
            raise ValueError(f"InfluxDB api must be v1 or v2, not {api!r}")
        self.org, self.bucket, self.api = org, bucket, api
        self.database = database or bucket
        self._client: Any = None
        self._write_api: Any = None
        self._http: httpx.Client | None = None
        if api == "v2":
            from influxdb_client.client.influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS

            self._client = InfluxDBClient(url=url, token=token, org=org, timeout=10_000)
            self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        else:
            headers = {"Authorization": f"Token {token}"} if token else {}
            self._http = httpx.Client(base_url=url, headers=headers, timeout=10.0)
        self.batch_lines = batch_lines
        self.max_queued_lines = max_queued_lines
        self._queue: deque[str] = deque()
        self._wake = asyncio.Event()
        self.stats = InfluxSinkStats()

    def enqueue(self, site: str, samples: Sequence[Sample]) -> None:
        """Queue samples for writing (non-blocking); the oldest lines go first when full."""
        self._queue.extend(line_protocol(site, samples))
        overflow = len(self._queue) - self.max_queued_lines
        for _ in range(max(0, overflow)):
            self._queue.popleft()
            self.stats.lines_dropped += 1
        self._wake.set()

    @property
    def queued(self) -> int:
        """Lines waiting to be written."""
        return len(self._queue)

    def _write(self, lines: list[str]) -> None:
        if self._http is not None:  # v1: 204 on success; 4xx/5xx carry InfluxDB's reason
            r = self._http.post(
                "/write", params={"db": self.database, "precision": "ms"}, content="\n".join(lines)
            )
            if r.status_code != 204:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text.strip()[:200]}")
            return
        from influxdb_client.domain.write_precision import WritePrecision

        self._write_api.write(
            bucket=self.bucket, org=self.org, record=lines, write_precision=WritePrecision.MS
        )

    async def run(self) -> None:
        """Write batches until cancelled; on errors retry the same batch with backoff."""
        backoff = Backoff(min_s=0.5, max_s=30.0)
        try:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                batch = [self._queue[i] for i in range(min(self.batch_lines, len(self._queue)))]
                try:
                    await asyncio.to_thread(self._write, batch)
                except Exception as exc:  # network, HTTP 5xx, auth: retry; the lines stay queued
                    self.stats.write_errors += 1
                    delay = backoff.next_delay_s()
                    log.warning(
                        "InfluxDB write of %d lines failed (%s); retry in %.1f s", len(batch), exc, delay
                    )
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                for _ in batch:
                    if self._queue:
                        self._queue.popleft()
                self.stats.lines_written += len(batch)
                self.stats.batches_written += 1
        finally:
            if self._client is not None:
                self._client.close()
            if self._http is not None:
                self._http.close()
