"""The controller's Prometheus exposition (`GET /metrics`): counters as counters, ack latency as a histogram.

Why a collector that reads at scrape time: the counters already live in the controller
(`stats`, `ingest.stats`, `tracker`); a second copy kept in prometheus_client objects would
have to be updated at every increment and could drift. The one thing that needs state of
its own is the ack-latency histogram: Prometheus wants it cumulative, while the tracker
keeps only its most recent 50,000 commands, so each scrape adds the answers it has not
counted yet and never takes one away.

The names here are the ones `deploy/grafana/gridflex-dashboard.json` queries; a unit
test holds the two together.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["ACK_LATENCY_BUCKETS_S", "COMMAND_STATUSES", "CONTENT_TYPE", "SITE_MODES", "ControllerMetrics"]

#: Prometheus text format 0.0.4 (what prometheus_client writes and every scraper reads)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Plan decision to ack, host seconds: loopback round trips are milliseconds, a slow
#: agent's Modbus write-and-read-back a few seconds; past 30 s it is as good as missing.
ACK_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SITE_MODES = ("online", "offline", "fallback", "degraded", "unknown")
COMMAND_STATUSES = ("sent", "applied", "clamped", "rejected", "expired", "failed")


class _AckLatencyHistogram:
    """A cumulative histogram of decision-to-ack seconds, fed from the tracker at each scrape."""

    def __init__(self) -> None:
        self.counts = [0] * (len(ACK_LATENCY_BUCKETS_S) + 1)  # last: above the largest bound
        self.sum_s = 0.0
        self.count = 0
        self._counted: set[str] = set()
        self._lock = threading.Lock()  # FastAPI runs sync routes in a thread pool: scrapes may overlap

    def absorb(self, controller: CloudController) -> None:
        """Count every answered command not counted yet; forget ids the tracker no longer keeps."""
        kept = list(controller.tracker.sent.items())  # one C-level copy: the loop thread mutates the dict
        with self._lock:
            for cmd_id, tracked in kept:
                latency_ms = tracked.ack_latency_ms
                if latency_ms is None or cmd_id in self._counted:
                    continue
                self._counted.add(cmd_id)
                latency_s = latency_ms / 1000.0
                self.counts[bisect.bisect_left(ACK_LATENCY_BUCKETS_S, latency_s)] += 1
                self.sum_s += latency_s
                self.count += 1
            if len(self._counted) > len(kept):
                self._counted.intersection_update(cmd_id for cmd_id, _ in kept)

    def family(self) -> HistogramMetricFamily:
        """The histogram as Prometheus wants it: cumulative `le` buckets ending in +Inf."""
        with self._lock:
            cumulative, running = [], 0
            for bound, n in zip((*ACK_LATENCY_BUCKETS_S, float("inf")), self.counts, strict=True):
                running += n
                cumulative.append((_le(bound), float(running)))
            return HistogramMetricFamily(
                "gridflex_command_ack_latency_seconds",
                "Plan decision to the agent's ack, host seconds (commands answered since start)",
                buckets=cumulative,
                sum_value=self.sum_s,
            )


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class ControllerMetrics:
    """One per app: `render()` is the body of `GET /metrics`."""

    def __init__(self, controller: CloudController) -> None:
        self.controller = controller
        self.ack_latency = _AckLatencyHistogram()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def render(self) -> bytes:
        """The exposition text of every metric below."""
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """Called by prometheus_client at each scrape."""
        yield from self._ingest()
        yield from self._control()
        yield from self._commands()
        yield from self._sites()
        from cloud_controller.web.forecast_api import forecast_metrics  # web imports this module

        yield from forecast_metrics(self.controller.congestion)

    def _ingest(self) -> Iterator[Metric]:
        ing = self.controller.ingest.stats
        for name, doc, value in (
            ("gridflex_telemetry_batches", "Telemetry batches from registered sites", ing.batches),
            ("gridflex_samples_stored", "Samples stored (distinct site, seq)", ing.samples_stored),
            ("gridflex_duplicates", "Duplicate samples dropped", ing.duplicates),
            ("gridflex_gaps", "Batches that arrived after a gap in seq", ing.gaps),
            ("gridflex_invalid_messages", "Messages refused by the contract", ing.invalid),
            (
                "gridflex_unknown_site_messages",
                "Valid messages from a site not in the registry",
                ing.unknown_site,
            ),
            ("gridflex_events", "Events stored", ing.events),
            ("gridflex_acks", "Acks received from registered sites", ing.acks),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        writer = self.controller.ingest.writer
        if writer is None:
            return
        w = writer.stats
        for name, doc, value in (
            ("gridflex_ingest_flushes", "Write-behind flushes (one store transaction each)", w.flushes),
            ("gridflex_ingest_flush_failures", "Failed flush attempts (each retried)", w.flush_failures),
            (
                "gridflex_ingest_flushes_abandoned",
                "Flushes given up: their messages unacknowledged, redelivered by the broker",
                w.batches_abandoned,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "gridflex_ingest_queued", "Telemetry messages accepted, not yet committed", writer.queued
        )

    def _control(self) -> Iterator[Metric]:
        st = self.controller.stats
        for name, doc, value in (
            ("gridflex_dispatch", "Control periods planned", st.dispatch_count),
            ("gridflex_dispatch_errors", "Control periods whose plan failed", st.dispatch_errors),
            ("gridflex_guard_steps", "Fleet-guard steps run", st.guard_steps),
            ("gridflex_guard_commands", "Commands sent by the fleet guard", st.guard_commands),
            (
                "gridflex_guard_dr_overrides",
                "Fleet-guard moves of a DR-reserved battery off its setpoint (a limit was over)",
                st.guard_dr_overrides,
            ),
            (
                "gridflex_commands_publish_failed",
                "Commands the broker did not take",
                st.commands_publish_failed,
            ),
            ("gridflex_watermarks_published", "Watermarks published to the agents", st.watermarks_published),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "gridflex_dispatch_solve_ms", "Solve time of the last plan, ms", value=st.last_solve_ms
        )
        yield GaugeMetricFamily(
            "gridflex_last_plan_timestamp_seconds",
            "Unix time of the last plan (0 before the first)",
            value=st.last_plan_at.timestamp() if st.last_plan_at else 0.0,
        )
        yield GaugeMetricFamily(
            "gridflex_mqtt_connected",
            "1 while the controller's MQTT session is up",
            value=1.0 if self.controller.session.connected.is_set() else 0.0,
        )

    def _commands(self) -> Iterator[Metric]:
        tracker = self.controller.tracker
        counts = dict(tracker.counts)
        by_status = CounterMetricFamily(
            "gridflex_commands",
            "Commands sent, and how they were answered (missing: no ack in time)",
            labels=["status"],
        )
        for status in (*COMMAND_STATUSES, *sorted(set(counts) - set(COMMAND_STATUSES))):
            by_status.add_metric([status], counts.get(status, 0))
        by_status.add_metric(["missing"], tracker.missing)
        yield by_status
        yield CounterMetricFamily(
            "gridflex_unknown_acks",
            "Acks that answer no command the controller kept",
            value=tracker.unknown_acks,
        )
        self.ack_latency.absorb(self.controller)
        yield self.ack_latency.family()
        yield GaugeMetricFamily(
            "gridflex_sites_uncontrollable",
            "Sites whose last commands failed or went unanswered",
            value=len(tracker.uncontrollable),
        )

    def _sites(self) -> Iterator[Metric]:
        modes = [s.mode for s in list(self.controller.snapshots.values())]
        by_mode = GaugeMetricFamily("gridflex_sites", "Registered sites by mode", labels=["mode"])
        for mode in (*SITE_MODES, *sorted(set(modes) - set(SITE_MODES))):
            by_mode.add_metric([mode], sum(1 for m in modes if m == mode))
        yield by_mode
