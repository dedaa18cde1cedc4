"""One contract, two stores: SQLite (one file) and PostgreSQL (a real server) must answer alike.

Every test runs against both; a difference in duplicates, watermark, windows, event
order or lease tokens between them is a bug in one of them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from cloud_controller.store import STORE_ERRORS, SqliteStore, Store
from cloud_controller.store.postgres import PostgresStore
from gridflex.ops.postgres import LoopbackPostgres
from protocols.assets import PointKey
from protocols.messages import Ack, Event, Quality, Sample, new_msg_id

pytestmark = pytest.mark.integration

T0 = datetime(2030, 1, 15, tzinfo=UTC)
P_KW = PointKey("meter", "p_kw")
SOC = PointKey("battery", "soc_pct")


def _s(
    seq: int,
    *,
    point: PointKey = P_KW,
    at_s: float | None = None,
    value: float | None = None,
    quality: Quality = "good",
) -> Sample:
    """Sample `seq` at T0 + seq s (or `at_s`), value seq unless given."""
    return Sample(
        seq=seq,
        asset=point.asset,
        point=point.point,
        unit="kW",
        value=float(seq) if value is None and quality == "good" else value,
        ts=T0 + timedelta(seconds=seq if at_s is None else at_s),
        quality=quality,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind (Postgres: the session's schema, emptied)."""
    st: Store
    if request.param == "sqlite":
        st = SqliteStore(tmp_path / "cloud.sqlite")
    else:
        pg: LoopbackPostgres = request.getfixturevalue("pg_server")
        st = PostgresStore(request.getfixturevalue("pg_dsn"), password=pg.password_file.read_text().strip())
    try:
        yield st
    finally:
        st.close()


def test_duplicates_are_counted_and_the_watermark_stops_at_the_first_gap(store: Store) -> None:
    first = store.write_samples("b1", [_s(0), _s(1), _s(2), _s(4), _s(5)])
    assert (first.inserted, first.duplicates, first.watermark) == (5, 0, 2)
    assert store.highest_contiguous_seq("b1") == 2
    # the gap fills, two samples are resent: the watermark jumps over what was waiting
    second = store.write_samples("b1", [_s(1), _s(2), _s(3)])
    assert (second.inserted, second.duplicates, second.watermark) == (1, 2, 5)
    other = store.write_samples("b2", [_s(7)])  # another site: its own seq space, nothing contiguous
    assert (other.inserted, other.duplicates, other.watermark) == (1, 0, -1)
    assert store.count_samples("b1") == 6 and store.count_samples() == 7
    assert store.watermarks() == {"b1": 5}
    assert store.highest_contiguous_seq("b2") == -1 and store.highest_contiguous_seq("nobody") == -1


def test_a_batch_of_messages_is_one_write_with_per_message_counts_and_each_sites_watermark(
    store: Store,
) -> None:
    store.write_samples("b1", [_s(0), _s(1)])
    results = store.write_batches(
        [
            ("b1", [_s(3), _s(4)]),  # above a hole: waits
            ("b2", [_s(0), _s(1), _s(1)]),  # a seq twice in one message: a duplicate
            ("b1", [_s(1), _s(2), _s(2)]),  # fills the hole; 1 was stored, 2 repeated
            ("b3", [_s(5)]),  # nothing contiguous
        ]
    )
    counts = [(r.inserted, r.duplicates, r.previous, r.watermark) for r in results]
    assert counts == [(2, 0, 1, 4), (2, 1, -1, 1), (1, 2, 1, 4), (1, 0, -1, -1)]
    assert store.watermarks() == {"b1": 4, "b2": 1}
    assert store.count_samples("b1") == 5 and store.count_samples() == 8
    assert store.latest()["b1"]["meter/p_kw"] == (T0 + timedelta(seconds=4), 4.0)
    # a seq in two messages of one batch: stored once, counted for the first message
    again = store.write_batches([("b3", [_s(0)]), ("b3", [_s(0), _s(1)])])
    assert [(r.inserted, r.duplicates, r.watermark) for r in again] == [(1, 0, 1), (1, 1, 1)]
    assert store.write_batches([]) == []


def test_a_failed_batch_leaves_nothing_behind(store: Store) -> None:
    store.write_samples("b1", [_s(0)])
    bad = _s(3).model_copy(update={"unit": object()})  # no driver can bind it: the transaction fails
    with pytest.raises(STORE_ERRORS):
        store.write_batches([("b1", [_s(1), _s(2)]), ("b2", [_s(0)]), ("b1", [bad])])
    assert store.count_samples() == 1 and store.watermarks() == {"b1": 0}
    assert store.write_batches([("b1", [_s(1), _s(2)])])[0].watermark == 2


def test_raise_floor_skips_what_the_agent_dropped_but_never_lowers(store: Store) -> None:
    store.write_samples("b1", [_s(0), _s(1), _s(5), _s(6)])
    assert store.raise_floor("b1", 5) == 6  # seqs 2-4 dropped at the edge: 5 and 6 are contiguous
    assert store.raise_floor("b1", 3) == 6
    assert store.write_samples("b1", [_s(7)]).watermark == 7
    assert store.watermarks() == {"b1": 7}


def test_latest_keeps_the_newest_good_value_of_each_point(store: Store) -> None:
    store.write_samples("b1", [_s(0, value=1.5), _s(1, point=SOC, value=40.0), _s(2, at_s=100, value=2.5)])
    store.write_samples("b1", [_s(3, at_s=50, value=9.0), _s(4, at_s=200, quality="bad")])  # older; bad
    store.write_samples("b2", [_s(0, value=-3.0)])
    assert store.latest() == {
        "b1": {
            "meter/p_kw": (T0 + timedelta(seconds=100), 2.5),
            "battery/soc_pct": (T0 + timedelta(seconds=1), 40.0),
        },
        "b2": {"meter/p_kw": (T0, -3.0)},
    }


def test_read_series_and_history_answer_half_open_windows_of_good_values(store: Store) -> None:
    samples = [_s(i, point=P_KW if i % 2 == 0 else SOC) for i in range(10)]
    samples[4] = _s(4, quality="bad")
    samples[6] = _s(6, quality="stale", value=6.0)
    store.write_samples("b1", samples)
    store.write_samples("b2", [_s(0), _s(2)])

    def at(*secs: int) -> list[tuple[datetime, float]]:
        return [(T0 + timedelta(seconds=s), float(s)) for s in secs]

    assert store.read_series("b1", "meter", "p_kw", T0, T0 + timedelta(seconds=8)) == at(0, 2)
    assert store.read_series(
        "b1", "meter", "p_kw", T0 + timedelta(seconds=1), T0 + timedelta(seconds=9)
    ) == at(2, 8)
    end = T0 + timedelta(seconds=9)
    assert store.read_history("b1", T0, end) == {P_KW: at(0, 2, 8), SOC: at(1, 3, 5, 7)}
    missing = PointKey("pv", "p_kw")
    assert store.read_history("b1", T0, end, [SOC, missing]) == {SOC: at(1, 3, 5, 7), missing: []}
    assert store.read_history("b1", T0, end, max_rows=3) == {P_KW: at(0, 2), SOC: at(1)}  # newest dropped
    assert store.read_history("b1", end, end + timedelta(hours=1)) == {SOC: at(9)}
    assert store.read_history("b1", T0 + timedelta(hours=1), T0 + timedelta(hours=2)) == {}


def test_events_come_newest_first_and_filter_by_site_kind_and_time(store: Store) -> None:
    for i, (site, kind) in enumerate(
        [("b1", "fallback"), ("b2", "fallback"), ("b1", "driver"), ("b1", "fallback")]
    ):
        store.write_event(
            Event(site=site, ts=T0 + timedelta(seconds=i), kind=kind, message=f"e{i}", details={"i": i})
        )
    assert [e.message for e in store.read_events()] == ["e3", "e2", "e1", "e0"]
    assert [e.message for e in store.read_events(site="b1", kind="fallback")] == ["e3", "e0"]
    assert [e.message for e in store.read_events(since=T0 + timedelta(seconds=2))] == ["e3", "e2"]
    assert [e.message for e in store.read_events(limit=1)] == ["e3"]
    assert store.read_events()[0].details == {"i": 3}
    assert (store.count_events(), store.count_events("fallback"), store.count_events("none")) == (4, 3, 0)


def _acks(store: Store) -> list[tuple[str, str]]:
    """(cmd_id, status) rows as stored: the store has no reader for acks, so ask its database."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            return [(str(c), str(s)) for c, s in db.execute("SELECT cmd_id, status FROM acks ORDER BY ts")]
    assert isinstance(store, PostgresStore)
    with psycopg.connect(store._dsn, password=store._password) as db:
        return [(str(c), str(s)) for c, s in db.execute("SELECT cmd_id, status FROM acks ORDER BY ts")]


def test_a_repeated_ack_replaces_the_earlier_one(store: Store) -> None:
    cmd, other = new_msg_id(), new_msg_id()
    store.write_ack(Ack(site="b1", ts=T0, cmd_id=cmd, asset="battery", status="failed", reason="timeout"))
    store.write_ack(
        Ack(site="b1", ts=T0 + timedelta(seconds=1), cmd_id=other, asset="battery", status="applied")
    )
    store.write_ack(
        Ack(site="b1", ts=T0 + timedelta(seconds=2), cmd_id=cmd, asset="battery", status="clamped")
    )
    assert _acks(store) == [(other, "applied"), (cmd, "clamped")]


def test_lease_is_renewed_refused_taken_over_and_its_token_only_grows(store: Store) -> None:
    a = store.acquire_lease("dispatch", "A", now_s=0.0, ttl_s=10.0)
    assert (a.held, a.holder, a.token, a.expires_at) == (True, "A", 1, 10.0)
    b = store.acquire_lease("dispatch", "B", now_s=5.0, ttl_s=10.0)
    assert (b.held, b.holder, b.token, b.expires_at) == (False, "A", 1, 10.0)
    renewed = store.acquire_lease("dispatch", "A", now_s=8.0, ttl_s=10.0)
    assert (renewed.held, renewed.token, renewed.expires_at) == (True, 1, 18.0)  # a renewal keeps the token
    taken = store.acquire_lease("dispatch", "B", now_s=18.0, ttl_s=10.0)  # expired at 18: B takes it
    assert (taken.held, taken.holder, taken.token) == (True, "B", 2)
    late = store.acquire_lease("dispatch", "A", now_s=19.0, ttl_s=10.0)
    assert (late.held, late.holder, late.token) == (False, "B", 2)
    assert store.release_lease("dispatch", "A") is False
    assert store.release_lease("dispatch", "B") is True
    assert store.read_lease("dispatch") == ("B", 2, 0.0)
    again = store.acquire_lease("dispatch", "B", now_s=20.0, ttl_s=10.0)  # re-taken after a release
    assert (again.held, again.token) == (True, 3)
    assert store.acquire_lease("other", "A", now_s=20.0, ttl_s=10.0).token == 1  # leases are independent
    assert store.read_lease("never") is None


def test_envelopes_are_replaced_as_a_set_kept_in_order_and_dropped_when_expired(store: Store) -> None:
    store.replace_envelopes([(100.0, '{"e": "b"}'), (50.0, '{"e": "a"}'), (200.0, '{"e": "c"}')])
    assert store.read_envelopes(10.0) == ['{"e": "b"}', '{"e": "a"}', '{"e": "c"}']  # the order given
    assert store.read_envelopes(60.0) == ['{"e": "b"}', '{"e": "c"}']  # until 50 has passed
    assert store.read_envelopes(10.0) == ['{"e": "b"}', '{"e": "c"}']  # ... and is gone for good
    store.replace_envelopes([(300.0, '{"e": "d"}')])
    assert store.read_envelopes(60.0) == ['{"e": "d"}']
    store.replace_envelopes([])
    assert store.read_envelopes(0.0) == []


def test_probe_write_writes_and_a_closed_store_raises_a_store_error(store: Store) -> None:
    store.probe_write("readyz", 1.0)
    store.probe_write("readyz", 2.0)
    store.close()
    with pytest.raises(STORE_ERRORS):
        store.probe_write("readyz", 3.0)
