"""`GET /metrics` after real traffic (Mosquitto, the controller's ingest, uvicorn), read by
prometheus_client's own parser: every family has the type Prometheus expects and the value
the traffic implies.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from cloud_controller.metrics import ACK_LATENCY_BUCKETS_S
from gridflex.ops.broker import MosquittoBroker
from protocols.assets import BATTERY
from protocols.codec import encode
from protocols.messages import Ack
from protocols.topics import site_topic
from tests.integration.web import harness

N_SITES = 5


def _scrape(url: str) -> tuple[dict[str, str], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """(type by family name, value by (sample name, sorted labels)) of one scrape."""
    r = httpx.get(url + "/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    types: dict[str, str] = {}
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(r.text):
        types[family.name] = family.type
        for s in family.samples:
            assert isinstance(s, Sample)
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, values


def _ack(site: str, cmd_id: str, status: str) -> tuple[str, bytes, bool]:
    ack = Ack(site=site, ts=datetime.now(UTC), cmd_id=cmd_id, asset=BATTERY, status=status)  # type: ignore[arg-type]
    return site_topic(site, "ack"), encode(ack), False


def test_metrics_export_counters_a_latency_histogram_and_unknown_sites_after_real_traffic(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    with harness.controller(mosquitto.port, tmp_path, N_SITES) as running:
        ctl, port = running.ctl, mosquitto.port
        sites = harness.site_ids(N_SITES)
        harness.bring_online(running, port, sites)  # 5 batches of 2 samples
        now = datetime.now(UTC)
        harness.publish(
            running,
            port,
            [
                (
                    site_topic(sites[0], "telemetry"),
                    harness.telemetry(sites[0], 0, [now], [1.0], 50.0),
                    False,
                ),
                (site_topic("zz99", "telemetry"), harness.telemetry("zz99", 0, [now], [1.0], 50.0), False),
                (site_topic(sites[1], "telemetry"), b"{not json", False),
            ],
        )
        # Bad messages are counted on arrival, stored batches after their commit (ingest's write queue)
        harness.wait_until(
            lambda: (
                ctl.ingest.stats.invalid == 1
                and ctl.ingest.stats.unknown_site == 1
                and ctl.ingest.stats.batches == 6
            )
        )
        running.call(ctl.dispatch_once())  # the stand-in planner: one battery command per site
        sent = {t.command.site: t.command.cmd_id for t in ctl.tracker.sent.values()}
        assert sorted(sent) == sites
        acks = [_ack(sites[0], sent[sites[0]], "applied"), _ack(sites[1], sent[sites[1]], "applied")]
        acks += [_ack(sites[2], sent[sites[2]], "rejected"), _ack(sites[3], "c-no-such-command", "applied")]
        harness.publish(running, port, acks)
        harness.wait_until(lambda: ctl.ingest.stats.acks == 4)

        types, values = _scrape(running.url)
        counters = {
            "gridflex_telemetry_batches": 6,  # the duplicate batch counts, the unknown site's does not
            "gridflex_samples_stored": 10,
            "gridflex_duplicates": 2,
            "gridflex_unknown_site_messages": 1,
            "gridflex_invalid_messages": 1,
            "gridflex_acks": 4,
            "gridflex_unknown_acks": 1,
            "gridflex_dispatch": 1,
        }
        for name, expected in counters.items():
            assert types[name] == "counter", name
            assert values[(f"{name}_total", ())] == expected, name
        assert types["gridflex_commands"] == "counter"
        for status, n in (("sent", 5), ("applied", 2), ("rejected", 1), ("clamped", 0), ("missing", 0)):
            assert values[("gridflex_commands_total", (("status", status),))] == n, status

        hist = "gridflex_command_ack_latency_seconds"
        assert types[hist] == "histogram"
        buckets = [
            values[(f"{hist}_bucket", (("le", le),))] for le in [*map(repr, ACK_LATENCY_BUCKETS_S), "+Inf"]
        ]
        assert buckets == sorted(buckets) and buckets[-1] == 3  # cumulative; three of ours answered
        assert values[(f"{hist}_count", ())] == 3
        expected_sum = (
            sum(v for v in (t.ack_latency_ms for t in ctl.tracker.sent.values()) if v is not None) / 1e3
        )
        assert abs(values[(f"{hist}_sum", ())] - expected_sum) < 1e-9 and expected_sum > 0

        assert types["gridflex_sites"] == "gauge"
        assert values[("gridflex_sites", (("mode", "online"),))] == N_SITES
        assert values[("gridflex_sites", (("mode", "offline"),))] == 0
        assert values[("gridflex_sites_uncontrollable", ())] == 1  # the rejected one
        assert values[("gridflex_mqtt_connected", ())] == 1

        _, again = _scrape(running.url)  # a second scrape counts no answer twice
        assert again[(f"{hist}_count", ())] == 3 and again[("gridflex_acks_total", ())] == 4
