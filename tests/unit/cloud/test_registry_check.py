"""The registry against what sites report: missing assets after the grace, unregistered points and
sites, each reported once (log, warning event, API), and never a command for a missing asset."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud_controller.commands import CommandTracker
from cloud_controller.ingest import Ingest
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
from cloud_controller.registry import Registry
from cloud_controller.registry.check import RegistryCheck
from cloud_controller.store import SqliteStore
from protocols.assets import Points
from protocols.codec import encode
from protocols.messages import Sample, SiteState, TelemetryBatch
from protocols.topics import site_topic

T0 = datetime(2030, 1, 15, 12, tzinfo=UTC)
REGISTRY = Registry(
    sites=(
        SiteRef(
            "b001",
            0,
            (
                AssetRef("meter", "meter"),
                AssetRef("ev1", "ev", 11.0),
                AssetRef("bat1", "battery", 5.0, 10.0),  # the building has none
            ),
        ),
    )
)


class Agent:
    """Telemetry batches as b001's agent publishes them: one device's points per batch, 10 s apart."""

    def __init__(self) -> None:
        self.seq = 0
        self.t = T0

    def batch(self, *keys: str) -> bytes:
        samples = []
        for key in keys:
            asset, point = key.split("/")
            samples.append(Sample(seq=self.seq, asset=asset, point=point, value=1.0, unit="kW", ts=self.t))
            self.seq += 1
        self.t += timedelta(seconds=10)
        return encode(TelemetryBatch(site="b001", ts=self.t, samples=samples))


class Wall:
    """Arrival time the test moves: each batch arrives 10 s after the previous one."""

    def __init__(self) -> None:
        self.s = 0.0

    def __call__(self) -> float:
        self.s += 10.0
        return self.s


def _ingest(tmp_path: Path) -> tuple[Ingest, dict[str, SiteSnapshot]]:
    snaps = {"b001": SiteSnapshot(site="b001", mode="online")}
    check = RegistryCheck(REGISTRY, grace_s=60.0, grace_batches=3)
    store = SqliteStore(tmp_path / "s.sqlite")
    return Ingest(store, snaps, CommandTracker(), check, wall_s=Wall()), snaps


async def test_a_registered_asset_that_never_reports_is_missing_after_the_grace_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ingest, snaps = _ingest(tmp_path)
    agent = Agent()
    topic = site_topic("b001", "telemetry")
    caplog.set_level(logging.INFO, logger="cloud_controller.ingest")
    # one device per batch, 10 s apart: within the 60 s grace nothing is missing yet, even
    # though every batch lacks most assets
    for _ in range(3):
        await ingest.handle(topic, agent.batch(str(Points.METER_P_KW)))
        await ingest.handle(topic, agent.batch("ev1/p_kw", "ev1/p_limit_kw"))
    assert snaps["b001"].missing_assets == frozenset()
    assert ingest.check is not None and ingest.check.mismatch("b001").missing_assets == []
    for _ in range(2):  # 60 s after the last new asset (the EV) appeared
        await ingest.handle(topic, agent.batch(str(Points.METER_P_KW)))
    assert snaps["b001"].missing_assets == frozenset({"bat1"})
    m = ingest.check.mismatch("b001")
    assert (m.missing_assets, m.unregistered_points) == (["bat1"], [])
    events = ingest.store.read_events(site="b001", kind="registry_mismatch")
    assert len(events) == 1 and events[0].severity == "warning"
    assert "bat1" in events[0].message and "meter" not in events[0].message
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "bat1" in warnings[0].getMessage()


async def test_points_of_an_unregistered_asset_are_listed_and_reported_once(tmp_path: Path) -> None:
    ingest, _ = _ingest(tmp_path)
    agent = Agent()
    topic = site_topic("b001", "telemetry")
    await ingest.handle(topic, agent.batch("meter/p_kw", "zone1/zone_t_c"))
    await ingest.handle(topic, agent.batch("zone1/co2_ppm", "zone1/zone_t_c"))
    assert ingest.check is not None
    assert ingest.check.mismatch("b001").unregistered_points == ["zone1/co2_ppm", "zone1/zone_t_c"]
    events = ingest.store.read_events(site="b001", kind="registry_mismatch")
    assert len(events) == 1 and "zone1" in events[0].message  # a new point of zone1 is no new event
    assert ingest.stats.registry_mismatches == 1


async def test_an_unregistered_site_is_a_warning_once_counted_and_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ingest, _ = _ingest(tmp_path)
    caplog.set_level(logging.WARNING, logger="cloud_controller.ingest")
    for _ in range(3):
        await ingest.handle(
            site_topic("b404", "state"), encode(SiteState(site="b404", ts=T0, status="online"))
        )
    assert ingest.stats.unknown_site == 3
    assert ingest.check is not None and ingest.check.unregistered_sites == {"b404": 3}
    lines = [r.getMessage() for r in caplog.records if "b404" in r.getMessage()]
    assert len(lines) == 1 and "not in the registry" in lines[0]


def test_an_asset_seen_once_is_never_missing() -> None:
    check = RegistryCheck(REGISTRY, grace_s=0.0, grace_batches=1)
    first = check.observe("b001", ["meter/p_kw", "ev1/p_kw", "bat1/p_kw"], now_s=0.0)
    assert first.missing_assets == ()
    later = check.observe("b001", ["meter/p_kw"], now_s=3600.0)
    assert later.missing_assets == () and check.missing_assets("b001") == frozenset()


def test_a_slow_driver_restarts_the_grace_and_a_late_asset_is_commanded_again() -> None:
    """The EV charger's driver connects 50 s after the meter's: it restarts the grace, so only
    the battery, which never comes, is called missing; an asset that shows up later is cleared."""
    check = RegistryCheck(REGISTRY, grace_s=60.0, grace_batches=1)
    for t in range(0, 50, 10):  # the meter alone for 40 s
        check.observe("b001", ["meter/p_kw"], now_s=float(t))
    check.observe("b001", ["ev1/p_kw"], now_s=50.0)
    check.observe("b001", ["meter/p_kw"], now_s=100.0)
    assert check.missing_assets("b001") == frozenset()  # 50 s since the EV: inside the grace
    found = check.observe("b001", ["meter/p_kw"], now_s=110.0)
    assert found.missing_assets == ("bat1",) and check.missing_assets("b001") == frozenset({"bat1"})
    back = check.observe("b001", ["bat1/p_kw"], now_s=500.0)
    assert back.reappeared_assets == ("bat1",) and check.missing_assets("b001") == frozenset()
