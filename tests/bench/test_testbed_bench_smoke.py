"""The test bed bench at a tiny size: 20 buildings over 2 processes with real agents, 1 ingest worker.

Checks that the whole pipeline runs and measures: every agent connects, what the agents
had PUBACKed is in the store after the drain (no loss), latency is positive and ordered,
every command the sender sent through the dispatcher's path came back `applied` from its
agent, every child process was measured and is gone afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_controller.live.types import AssetRef, SiteRef
from gridflex.bench.testbed import TestbedRun, bench_testbed
from gridflex.bench.testbed_roles import command_target
from protocols.messages import SITE_IMPORT_MAX_KW


@pytest.mark.slow  # ~30-40 s: four spawned processes import the controller and the agents
def test_testbed_bench_20_buildings_2_processes_stores_every_sample_and_every_command_is_applied() -> None:
    run = TestbedRun(
        buildings=20,
        processes=2,
        workers=1,
        duration_s=3.0,
        warmup_s=1.0,
        poll_s=1.0,
        max_age_s=1.0,
        anchor_messages=1000,
        command_every_s=1.0,
    )
    fig = bench_testbed(run)
    # every point every poll: 20 buildings x >= 3 points (meter p, q, energy...) x 1/s
    assert fig.produced_per_s > 20 * 3 * 0.5
    assert fig.published_total > 0 and fig.lost == 0 and fig.stored_total >= fig.published_total
    assert abs(fig.stored - fig.produced) <= 0.2 * fig.produced + 50
    assert 0 < fig.latency_p50_ms <= fig.latency_p99_ms < 5_000
    assert fig.latency_n > 0
    # the controller's share (batch published → stored) is part of the whole sample → stored latency
    assert 0 < fig.publish_p50_ms <= fig.latency_p99_ms
    # a round a second over the 3 s window: every site one command per round, each acked applied
    c = fig.commands
    assert c is not None and c.rounds >= 3
    assert c.sent == 20 * c.rounds
    assert c.acks == {"applied": c.sent}, c.reasons
    assert c.missing == 0 and c.publish_failed == 0 and not c.reasons
    assert len(c.applied_ms) == c.sent
    assert 0 < c.applied_ms[len(c.applied_ms) // 2] <= c.applied_ms[-1] < 5_000
    roles = {load.role for load in fig.loads}
    assert roles == {"buildings-0", "buildings-1", "ingest-0", "commands", "mosquitto"}
    assert all(load.cpu_pct > 0 for load in fig.loads if load.role != "mosquitto")
    assert all(load.rss_mb > 1 for load in fig.loads)
    assert fig.anchor["received"] == 1000
    left = [load for load in fig.loads if Path(f"/proc/{load.pid}").exists()]
    assert not left, f"children left running: {left}"


@pytest.mark.slow  # ~40-120 s: the same with a loopback PostgreSQL server for the ingest worker
def test_testbed_bench_on_postgres_stores_every_published_sample_and_measures_the_server() -> None:
    run = TestbedRun(
        buildings=10,
        processes=1,
        workers=1,
        duration_s=3.0,
        warmup_s=1.0,
        poll_s=1.0,
        max_age_s=1.0,
        anchor_messages=0,
        store="postgres",
        commands=False,
    )
    fig = bench_testbed(run)
    assert fig.published_total > 0 and fig.lost == 0 and fig.stored_total >= fig.published_total
    assert 0 < fig.latency_p50_ms <= fig.latency_p99_ms < 5_000
    loads = {load.role: load for load in fig.loads}
    assert set(loads) == {"buildings-0", "ingest-0", "mosquitto", "postgres"}
    assert loads["postgres"].cpu_pct > 0 and loads["postgres"].rss_mb > 1
    assert not fig.anchor and fig.commands is None
    left = [load for load in fig.loads if Path(f"/proc/{load.pid}").exists()]
    assert not left, f"children left running: {left}"


def test_testbed_run_rejects_a_split_beyond_999_per_process() -> None:
    with pytest.raises(ValueError, match="999 buildings per process"):
        TestbedRun(buildings=1000, processes=1)
    with pytest.raises(ValueError, match="max_age_s"):
        TestbedRun(poll_s=5.0, max_age_s=1.0)
    assert TestbedRun(buildings=1001, processes=2).split() == [501, 500]
    with pytest.raises(ValueError, match="sqlite or postgres"):
        TestbedRun(store="influx")
    with pytest.raises(ValueError, match="command_every_s"):
        TestbedRun(command_every_s=0.0)


def test_command_target_addresses_the_battery_else_a_device_limit_else_the_site_cap() -> None:
    bat = AssetRef("bat1", "battery", p_nominal_kw=5.0, capacity_kwh=10.0)
    ev, pv, meter = (
        AssetRef("ev1", "ev", p_nominal_kw=11.0),
        AssetRef("pv1", "pv", p_nominal_kw=8.0),
        AssetRef("meter", "meter"),
    )

    def site(*assets: AssetRef) -> SiteRef:
        return SiteRef(site="b001", region_site=0, assets=(meter, *assets))

    assert command_target(site(pv, ev, bat)) == ("bat1", "p_setpoint_kw", 0.0)
    assert command_target(site(pv, ev)) == ("ev1", "p_limit_kw", 11.0)
    assert command_target(site(pv)) == ("pv1", "p_limit_kw", 8.0)
    assert command_target(site()) == ("meter", SITE_IMPORT_MAX_KW, 50.0)
    with pytest.raises(ValueError, match="no asset"):
        command_target(SiteRef(site="b002", region_site=1, assets=()))
