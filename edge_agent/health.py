"""Health: JSON log lines, `/healthz` and Prometheus `/metrics` on a local port."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["AgentStats", "HealthServer", "JsonFormatter"]


@dataclass
class AgentStats:
    """What the agent reports: counters for metrics, the demo and tests."""

    state: str = "starting"  # starting | online | fallback | stopped
    connected: bool = False
    published: int = 0
    dropped: int = 0
    #: samples lost because the queue refused the write (full disk, I/O error)
    write_dropped: int = 0
    #: why the agent runs degraded (queue faults), None when healthy; published on `state`
    degraded: str | None = None
    queue_depth: int = 0
    device_faults: int = 0
    commands: dict[str, int] = field(default_factory=dict)
    last_broker_ack: datetime | None = None
    stored_seq: int = -1  # the cloud's retained watermark
    next_seq: int = 0  # seq the next stored sample gets
    #: the connection limit in force (the tighter of grid_connection and a valid DSO cap), kW
    limit_import_max_kw: float | None = None
    limit_export_max_kw: float | None = None
    #: True while a local measure (battery, EV/HP cap, PV curtailment) holds the limit
    limit_active: bool = False
    #: what no measure could remove (the §14a minimum plus uncontrollable load above the limit)
    limit_excess_kw: float = 0.0
    #: episodes of such a residual excess
    limit_exceeded: int = 0


class JsonFormatter(logging.Formatter):
    """One JSON object per line (ts, level, logger, msg, exc), for journald/Loki."""

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as one JSON line."""
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


class _StatsCollector:
    """Reads the agent's stats at scrape time (no second copy of the counters to keep in sync)."""

    def __init__(self, stats: Callable[[], AgentStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        yield GaugeMetricFamily(
            "gridflex_edge_queue_depth", "Samples stored, not yet released", value=s.queue_depth
        )
        yield CounterMetricFamily(
            "gridflex_edge_samples_published", "Samples published (PUBACKed)", value=s.published
        )
        yield CounterMetricFamily(
            "gridflex_edge_samples_dropped", "Samples dropped by the queue bounds", value=s.dropped
        )
        yield CounterMetricFamily(
            "gridflex_edge_samples_write_dropped",
            "Samples dropped because the queue refused the write (disk full, I/O error)",
            value=s.write_dropped,
        )
        yield GaugeMetricFamily(
            "gridflex_edge_degraded",
            "1 while a queue fault degrades the agent",
            value=1.0 if s.degraded else 0.0,
        )
        yield CounterMetricFamily(
            "gridflex_edge_device_faults", "Device fault episodes", value=s.device_faults
        )
        yield GaugeMetricFamily(
            "gridflex_edge_last_broker_ack_timestamp_seconds",
            "Unix time of the last PUBACK",
            value=s.last_broker_ack.timestamp() if s.last_broker_ack else 0.0,
        )
        yield GaugeMetricFamily(
            "gridflex_edge_broker_connected", "1 when connected", value=1.0 if s.connected else 0.0
        )
        yield GaugeMetricFamily(
            "gridflex_edge_fallback", "1 while in fallback", value=1.0 if s.state == "fallback" else 0.0
        )
        yield GaugeMetricFamily(
            "gridflex_edge_limit_active",
            "1 while a local measure holds the site's connection limit",
            value=1.0 if s.limit_active else 0.0,
        )
        yield GaugeMetricFamily(
            "gridflex_edge_limit_excess_kw",
            "Import/export above the connection limit that no measure removes",
            value=s.limit_excess_kw,
        )
        yield CounterMetricFamily(
            "gridflex_edge_limit_exceeded", "Episodes of excess above the limit", value=s.limit_exceeded
        )
        commands = CounterMetricFamily("gridflex_edge_commands", "Commands by ack status", labels=["status"])
        for status in ("applied", "clamped", "rejected", "expired", "failed"):
            commands.add_metric([status], s.commands.get(status, 0))
        yield commands
        yield CounterMetricFamily(
            "gridflex_edge_comfort_vetoes",
            "DR writes released by the comfort veto (zone out of its band, CO2 at the limit)",
            value=s.commands.get("comfort_veto", 0),
        )


class HealthServer:
    """`GET /healthz` (200 while running, JSON stats) and `GET /metrics` (Prometheus text)."""

    def __init__(self, host: str, port: int, stats: Callable[[], AgentStats]) -> None:
        self.host = host
        self.port = port
        self._stats = stats
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(stats))
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen for `/healthz` and `/metrics`; `port` becomes the bound port (useful with 0)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await reader.readline()
                while (await reader.readline()).strip():
                    pass
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else ""
            if path == "/healthz":
                s = self._stats()
                body = json.dumps(
                    {
                        "status": "ok",
                        "state": s.state,
                        "connected": s.connected,
                        "queue_depth": s.queue_depth,
                        "degraded": s.degraded,
                    }
                ).encode()
                status, ctype = "200 OK", "application/json"
            elif path == "/metrics":
                body, status, ctype = generate_latest(self.registry), "200 OK", CONTENT_TYPE_LATEST
            else:
                body, status, ctype = b"not found\n", "404 Not Found", "text/plain"
            head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()
