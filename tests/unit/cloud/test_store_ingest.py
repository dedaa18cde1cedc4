"""Store watermark, dedupe, gaps and queue floors; ingest of raw MQTT payloads; command tracking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud_controller.commands import CommandTracker
from cloud_controller.ingest import Ingest
from cloud_controller.live.types import SiteSnapshot
from cloud_controller.store import SqliteStore
from protocols.codec import encode
from protocols.messages import Ack, Command, Event, Sample, SiteState, TelemetryBatch
from protocols.topics import site_topic

T0 = datetime(2030, 1, 15, 12, tzinfo=UTC)


def _samples(seqs: list[int], value: float = 1.0) -> list[Sample]:
    return [
        Sample(seq=s, asset="meter", point="p_kw", value=value + s, unit="kW", ts=T0 + timedelta(seconds=s))
        for s in seqs
    ]


def test_watermark_is_contiguous_dedupes_and_survives_restart(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    assert store.highest_contiguous_seq("b001") == -1
    r = store.write_samples("b001", _samples([0, 1, 2]))
    assert (r.inserted, r.duplicates, r.watermark) == (3, 0, 2)
    r = store.write_samples("b001", _samples([5, 6]))  # gap 3..4
    assert r.watermark == 2
    r = store.write_samples("b001", _samples([2, 3, 4]))  # one duplicate, fills the gap
    assert (r.inserted, r.duplicates, r.watermark) == (2, 1, 6)
    store.close()
    again = SqliteStore(tmp_path / "s.sqlite")
    assert again.highest_contiguous_seq("b001") == 6
    assert again.count_samples("b001") == 7
    rows = again.read_series("b001", "meter", "p_kw", T0, T0 + timedelta(seconds=3))
    assert [v for _, v in rows] == [1.0, 2.0, 3.0]


def test_two_workers_on_one_file_agree_on_the_watermark(tmp_path: Path) -> None:
    """`$share` gives one site's batches to different ingest workers: each must advance the
    watermark from what the file holds, not from what it wrote itself."""
    a = SqliteStore(tmp_path / "s.sqlite")
    b = SqliteStore(tmp_path / "s.sqlite")
    assert a.write_samples("b001", _samples(list(range(0, 10)))).watermark == 9
    assert b.write_samples("b001", _samples(list(range(20, 30)))).watermark == 9  # hole 10..19
    assert a.write_samples("b001", _samples(list(range(10, 20)))).watermark == 29  # sees b's rows
    assert b.highest_contiguous_seq("b001") == 29  # b never wrote 10..19 but reads the file
    assert b.watermarks() == {"b001": 29}
    assert b.write_samples("b001", _samples([29, 30])).watermark == 30  # one duplicate, advances
    a.close()
    b.close()


def test_queue_floor_moves_the_watermark_past_dropped_samples(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.write_samples("b001", _samples([0, 1]))
    store.write_samples("b001", _samples([10, 11]))
    assert store.highest_contiguous_seq("b001") == 1
    assert store.raise_floor("b001", 10) == 11  # the agent dropped 2..9 and said so


async def test_ingest_counts_invalid_unknown_gaps_and_tracks_state(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    snaps = {"b001": SiteSnapshot(site="b001", mode="unknown")}
    ingest = Ingest(store, snaps, CommandTracker())
    topic = site_topic("b001", "telemetry")
    await ingest.handle(topic, b"{not json")
    await ingest.handle(
        site_topic("b002", "telemetry"), encode(TelemetryBatch(site="b002", ts=T0, samples=_samples([0])))
    )
    await ingest.handle(topic, encode(TelemetryBatch(site="b001", ts=T0, samples=_samples([0, 1]))))
    await ingest.handle(topic, encode(TelemetryBatch(site="b001", ts=T0, samples=_samples([4]))))
    await ingest.handle(topic, encode(TelemetryBatch(site="b001", ts=T0, samples=_samples([0, 1]))))
    await ingest.handle(site_topic("b001", "state"), encode(SiteState(site="b001", ts=T0, status="online")))
    st = ingest.stats
    assert (st.invalid, st.unknown_site, st.samples_stored, st.duplicates, st.gaps) == (1, 1, 3, 2, 1)
    assert store.highest_contiguous_seq("b001") == 1
    assert snaps["b001"].mode == "online" and snaps["b001"].p_net_kw == 5.0  # latest by ts: seq 4
    assert ingest.dirty == {"b001"}
    floor = Event(site="b001", ts=T0, kind="queue_floor", details={"min_seq": 4})
    await ingest.handle(site_topic("b001", "event"), encode(floor))
    assert store.highest_contiguous_seq("b001") == 4


def test_tracker_counts_acks_and_missing_and_marks_sites() -> None:
    tracker = CommandTracker()
    cmds = [
        Command(
            site=site,
            ts=T0,
            cmd_id=f"c{i}",
            asset="bat1",
            kind="p_setpoint_kw",
            value=1.0,
            valid_from=T0,
            valid_until=T0 + timedelta(minutes=20),
        )
        for i, site in enumerate(["b001", "b002", "b003"])
    ]
    for c in cmds:
        tracker.on_sent(c)
    assert tracker.on_ack(Ack(site="b001", ts=T0, cmd_id="c0", asset="bat1", status="applied"))
    assert tracker.on_ack(Ack(site="b002", ts=T0, cmd_id="c1", asset="bat1", status="failed"))
    assert not tracker.on_ack(Ack(site="b001", ts=T0, cmd_id="zz", asset="bat1", status="applied"))
    late = tracker.expire(T0 + timedelta(minutes=25))
    assert [t.command.cmd_id for t in late] == ["c2"]
    assert tracker.counts == {"sent": 3, "applied": 1, "failed": 1}
    assert tracker.missing == 1 and tracker.unknown_acks == 1
    assert tracker.uncontrollable == {"b002", "b003"}


def test_latest_values_for_a_dispatch_worker_that_does_not_ingest(tmp_path: Path) -> None:
    from cloud_controller.config import CloudConfig
    from cloud_controller.live.types import AssetRef, SiteRef
    from cloud_controller.registry import Registry
    from cloud_controller.service import CloudController
    from protocols.clock import RealClock

    ingest = SqliteStore(tmp_path / "s.sqlite")
    ingest.write_samples("b001", _samples([0, 1, 2]))  # p_kw 1, 2, 3 at T0 + 0..2 s
    ingest.write_samples("b001", _samples([3], value=-10.0))  # seq 3: -7 at T0 + 3 s
    late = Sample(seq=4, asset="meter", point="p_kw", value=99.0, unit="kW", ts=T0)  # older than the newest
    ingest.write_samples("b001", [late])
    assert ingest.latest() == {"b001": {"meter/p_kw": (T0 + timedelta(seconds=3), -7.0)}}
    cfg = CloudConfig.model_validate(
        {"store": {"path": str(tmp_path / "s.sqlite")}, "api": {"enabled": False}}
    )
    registry = Registry(sites=(SiteRef("b001", 0, (AssetRef("meter", "meter"),)),))
    dispatcher = CloudController(cfg, registry, clock=RealClock(), role="dispatch")
    dispatcher._refresh_from_store()
    snap = dispatcher.snapshots["b001"]
    assert snap.p_net_kw == -7.0 and snap.measured_at == T0 + timedelta(seconds=3)
    dispatcher.store.close()
    ingest.close()
