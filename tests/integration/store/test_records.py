"""The DR, market and OpenADR stores on both back ends: round trip, restart survival, conflicts, the write section.

Every test runs on real SQLite files and on a real PostgreSQL (`records` in conftest.py);
a "restart" closes every store and opens new ones (new connections) on the same data.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.dr.requests_store import DrRecord, DrRequestStore
from cloud_controller.dr.service import DrConflict, DrRefused, DrService
from cloud_controller.dr.store import DrStore
from cloud_controller.market.book import Book, Refused
from cloud_controller.market.store import MarketStore
from cloud_controller.openadr.oauth import Client
from cloud_controller.openadr.resources import Vtn, VtnError
from cloud_controller.openadr.store import OpenAdrStore
from cloud_controller.store.base import StoreError
from cloud_controller.store.records import RecordConflict, SqliteRecords, records_of
from gridflex.ops.postgres import LoopbackPostgres
from protocols.clock import SimClock
from protocols.errors import ConfigError
from protocols.market import (
    MarketDispute,
    MarketIsp,
    MarketOrder,
    MarketPrognosis,
    MarketSettlement,
    PrognosisIsp,
    SettledIsp,
)
from tests.integration.store.conftest import Records
from tests.integration.store.records_cases import (
    CP,
    DELIVERY,
    MARKET,
    NOW,
    T0,
    dr_request,
    market_request,
    offer,
    program,
)
from tests.unit.dr.test_contracts import contract  # the DR tests' contract (accepts dr_request())

BL = Client(client_id="bl", secret="x", role="bl")


def test_dr_contracts_events_requests_and_runs_survive_a_restart(records: Records) -> None:
    db = records.open("dr")
    contracts, requests = DrStore(db), DrRequestStore(db)
    contracts.put_contract(contract("b001"))
    contracts.put_contract(contract("b002", p_max_kw=5.0))
    contracts.put_contract(contract("b002", p_max_kw=7.5))  # replaces, not a second row
    contracts.record_event("r1", "b001", "peak", T0, T0 + timedelta(minutes=30))
    contracts.record_event("r1", "b001", "peak", T0, T0 + timedelta(minutes=30))  # a repeat: no-op
    contracts.record_event("r2", "b001", "peak", T0 + timedelta(hours=2), T0 + timedelta(hours=3))
    contracts.record_event("r3", "b002", "peak", T0 + timedelta(days=1), T0 + timedelta(days=1, hours=1))
    req = dr_request("r1")  # its msg_id is random: compared as this object
    record = DrRecord(req, NOW.timestamp(), "selected", {"unmet_kw": [0.0, 1.5]}, [])
    requests.put(record)
    requests.put(DrRecord(record.request, record.received_ts, "active", record.selection, []))
    requests.put_run("r1", {"step": 3, "acks": {"b001": "applied"}})
    db.close()
    db.close()  # both stores share the database: closing twice is harmless

    db = records.open("dr")
    contracts, requests = DrStore(db), DrRequestStore(db)
    try:
        assert [(c.site, c.p_max_kw) for c in contracts.contracts("peak")] == [("b001", 20.0), ("b002", 7.5)]
        assert contracts.contracts("other") == []
        assert contracts.events_on_day("peak", T0) == {"b001": 2}
        assert contracts.events_on_day("peak", T0 + timedelta(days=1)) == {"b002": 1}
        assert contracts.delete_contract("b002", "peak") and not contracts.delete_contract("b002", "peak")
        got = requests.get("r1")
        assert got is not None and got.status == "active" and got.request == req
        assert got.selection == {"unmet_kw": [0.0, 1.5]} and got.received_ts == NOW.timestamp()
        assert [r.request.request_id for r in requests.all()] == ["r1"] and requests.get("nope") is None
        assert requests.get_run("r1") == {"step": 3, "acks": {"b001": "applied"}}
    finally:
        db.close()


def test_market_records_survive_a_restart_in_their_order(records: Records) -> None:
    store = MarketStore(records.open("market"))
    store.put_request(market_request("need-1"), "open", NOW.timestamp())
    for k, oid in enumerate(["off-b", "off-a", "off-c"]):  # received in this order
        store.put_offer(offer(oid), "open", NOW.timestamp() + k)
    store.set_offer_status("off-a", "revoked")
    orders = [
        MarketOrder(
            order_id=f"{oid}:o1",
            clearing_id="c1",
            offer_id=oid,
            option_id="o1",
            fsp="fsp-a",
            congestion_point=CP,
            ts=NOW,
            factor=1.0,
            isps=[MarketIsp(start=DELIVERY, kw=10.0)],
            price_eur_per_kwh=10.0,
            price_eur=25.0,
        )
        for oid in ("off-c", "off-b")  # cleared in this order, not by id
    ]
    store.put_clearing("c1", NOW.timestamp(), {"clearing_id": "c1", "cost_eur": 50.0}, orders)
    store.set_request_status("need-1", "cleared")
    isp = SettledIsp(
        start=DELIVERY, baseline_kw=30.0, ordered_kw=10.0, actual_kw=21.0, delivered_kw=9.0, deficiency_kw=1.0
    )
    settlement = MarketSettlement(
        order_id="off-c:o1",
        fsp="fsp-a",
        congestion_point=CP,
        ts=NOW,
        baseline="nodes_5wd",
        isps=[isp],
        price_eur=25.0,
        penalty_eur=1.0,
        net_eur=24.0,
        delivered_kwh=2.25,
        deficiency_kwh=0.25,
    )
    store.put_settlement(settlement)
    store.close()

    store = MarketStore(records.open("market"))
    try:
        assert store.requests() == [(market_request("need-1"), "cleared")]
        assert [(o.offer_id, s) for o, s, _ in store.offers()] == [
            ("off-b", "open"),
            ("off-a", "revoked"),
            ("off-c", "open"),
        ]
        assert [o.offer_id for o, _, _ in store.offers(status="open")] == ["off-b", "off-c"]
        assert store.offer("off-a") == (offer("off-a"), "revoked", NOW.timestamp() + 1)
        assert [o.order_id for o in store.orders()] == ["off-c:o1", "off-b:o1"]
        assert store.orders("fsp-b") == []
        assert store.clearings() == [{"clearing_id": "c1", "cost_eur": 50.0}]
        assert store.settlements("fsp-a") == [settlement]
    finally:
        store.close()


def test_openadr_objects_keep_their_creation_order_across_a_restart(records: Records) -> None:
    store = OpenAdrStore(records.open("openadr"))
    for name in ("p1", "p2", "p3"):
        store.put("programs", {"id": name, "programName": name})
    store.put("programs", {"id": "p1", "programName": "p1-renamed"})  # replaced: keeps its place
    store.put("events", {"id": "e1", "programID": "p2"})
    assert store.delete("programs", "p2") and not store.delete("programs", "p2")
    store.close()

    store = OpenAdrStore(records.open("openadr"))
    try:
        store.put("programs", {"id": "p4", "programName": "p4"})  # after the highest place, not a gap's
        assert [p["programName"] for p in store.all("programs")] == ["p1-renamed", "p3", "p4"]
        assert (
            store.get("events", "e1") == {"id": "e1", "programID": "p2"} and store.get("events", "x") is None
        )
    finally:
        store.close()


def test_a_dr_request_id_recorded_twice_is_a_conflict_but_a_refused_one_may_come_again(
    records: Records,
) -> None:
    dr = DrService(records.open("dr"), clock=SimClock(NOW), contracts_file=None, step_minutes=15)
    try:
        with pytest.raises(DrRefused, match="program"):  # no contract yet: refused, and recorded so
            dr.submit(dr_request("r1"), {})
        refused = dr.requests.get("r1")
        assert refused is not None and refused.status == "refused"  # kept although DrRefused was raised
        dr.contracts.put_contract(contract("b001"))
        first = dr.submit(dr_request("r1"), {})
        assert first.status == "selected" and dr.contracts.events_on_day("peak", T0) == {"b001": 1}
        with pytest.raises(DrConflict, match="'r1' exists already \\(selected\\)"):
            dr.submit(dr_request("r1", p_kw=5.0), {})
        got = dr.requests.get("r1")
        assert got is not None and got.request.p_kw == 10.0  # the first stays as it was
        assert dr.contracts.events_on_day("peak", T0) == {"b001": 1}
    finally:
        dr.close()


def test_the_market_book_refuses_a_known_offer_id_and_the_store_backs_it_with_its_key(
    records: Records,
) -> None:
    store = MarketStore(records.open("market"))
    book = Book(MARKET, store)
    try:
        book.post_offer(offer("o-1"), "fsp-a", NOW)
        with pytest.raises(Refused, match="exists already") as refused:
            book.post_offer(offer("o-1", price=1.0), "fsp-a", NOW)
        assert refused.value.status == 409
        store.db.execute(
            "INSERT INTO market_clearings VALUES (?, ?, ?)", ("c1", 0.0, "{}")
        )  # a plain insert of a known key is a RecordConflict on both back ends
        with pytest.raises(RecordConflict):
            store.db.execute("INSERT INTO market_clearings VALUES (?, ?, ?)", ("c1", 1.0, "{}"))
    finally:
        store.close()


def test_an_openadr_program_name_is_unique_and_a_failed_write_section_leaves_nothing(
    records: Records,
) -> None:
    store = OpenAdrStore(records.open("openadr"))
    vtn = Vtn(store, clock=SimClock(NOW))
    try:
        first = vtn.create(BL, "programs", program("congestion"))
        with pytest.raises(VtnError, match="programName 'congestion' exists already"):
            vtn.create(BL, "programs", program("congestion"))
        with pytest.raises(RuntimeError), store.write():
            store.put("programs", {"id": "x", "programName": "x"})
            raise RuntimeError("the caller fails inside the section")
        assert [p["id"] for p in store.all("programs")] == [first["id"]]  # rolled back
    finally:
        store.close()


def test_a_write_section_makes_the_other_writer_wait_and_see_its_commit(records: Records) -> None:
    """A second connection's section starts only after the first commits, and reads what it wrote."""
    a, b = OpenAdrStore(records.open("openadr")), OpenAdrStore(records.open("openadr"))
    seen: list[int] = []
    entered = threading.Event()

    def second() -> None:
        entered.wait(5)
        with b.write():
            seen.append(len(b.all("programs")))

    t = threading.Thread(target=second)
    t.start()
    try:
        with a.write():
            entered.set()
            time.sleep(0.3)  # the other is waiting now
            a.put("programs", {"id": "p1", "programName": "p1"})
        t.join(10)
        assert seen == [1]
    finally:
        a.close()
        b.close()


def test_postgres_write_section_that_cannot_get_the_lock_fails_naming_the_area(
    pg_server: LoopbackPostgres, pg_schema: str
) -> None:
    """PostgreSQL only (SQLite's bound is open_sqlite's busy timeout): a held area times the other out."""
    from cloud_controller.store.records_pg import PostgresRecords

    dsn = pg_server.dsn(pg_schema)
    holder = PostgresRecords(dsn, "market", password=pg_server.password)
    impatient = PostgresRecords(dsn, "market", password=pg_server.password, lock_timeout_ms=200)
    other_area = PostgresRecords(dsn, "dr", password=pg_server.password, lock_timeout_ms=200)
    try:
        with holder.write():
            t0 = time.perf_counter()
            with (
                pytest.raises(StoreError, match="'market' write section longer than 200 ms"),
                impatient.write(),
            ):
                pass
            assert 0.15 < time.perf_counter() - t0 < 5.0
            with other_area.write():  # another area does not wait for this one
                pass
        with impatient.write():  # free again; and the failed section left the connection usable
            assert impatient.query("SELECT 1") == [(1,)]
    finally:
        holder.close()
        impatient.close()
        other_area.close()


def test_records_of_follows_the_store_kind_and_names_an_unreadable_password_file(
    pg_server: LoopbackPostgres, pg_schema: str, tmp_path: Path
) -> None:
    from cloud_controller.store.records_pg import PostgresRecords

    local = records_of(
        CloudConfig.model_validate({"store": {"path": str(tmp_path / "s.sqlite")}}),
        "dr",
        tmp_path / "dr.sqlite",
    )
    try:
        assert isinstance(local, SqliteRecords) and local.where == str(tmp_path / "dr.sqlite")
    finally:
        local.close()
    store = {"kind": "postgres", "dsn": pg_server.dsn(pg_schema), "password_file": str(tmp_path / "pw")}
    with pytest.raises(ConfigError, match="cannot read PostgreSQL password") as err:
        records_of(CloudConfig.model_validate({"store": store}), "market", tmp_path / "unused.sqlite")
    assert str(tmp_path / "pw") in str(err.value)
    (tmp_path / "pw").write_text(pg_server.password + "\n")
    shared = records_of(CloudConfig.model_validate({"store": store}), "market", tmp_path / "unused.sqlite")
    try:
        assert isinstance(shared, PostgresRecords) and "password" not in shared.where
        assert not (tmp_path / "unused.sqlite").exists()
    finally:
        shared.close()


def test_a_dr_run_is_created_once_and_a_late_preparation_gets_the_stored_one(records: Records) -> None:
    first, late = DrRequestStore(records.open("dr")), DrRequestStore(records.open("dr"))
    try:
        assert first.create_run("r1", {"sent_steps": []}) == {"sent_steps": []}
        first.put_run("r1", {"sent_steps": [0]})  # the dispatcher sent step 0
        assert late.create_run("r1", {"sent_steps": []}) == {"sent_steps": [0]}  # not reset
        assert first.get_run("r1") == {"sent_steps": [0]}
    finally:
        first.close()
        late.close()


def test_prognoses_frozen_forecasts_and_disputes_survive_a_restart(records: Records) -> None:
    store = MarketStore(records.open("market"))
    prognosis = MarketPrognosis(
        offer_id="off-a", fsp="fsp-a", ts=NOW, isps=[PrognosisIsp(start=DELIVERY, kw=-12.5)]
    )
    store.put_prognosis(prognosis, NOW.timestamp())
    store.freeze_forecast("off-a", NOW.timestamp(), {DELIVERY.isoformat(): 40.0})
    store.freeze_forecast("off-a", NOW.timestamp() + 60, {DELIVERY.isoformat(): 99.0})  # written once
    for oid in ("off-b:o1", "off-a:o1"):  # disputed in this order
        store.put_dispute(MarketDispute(order_id=oid, fsp="fsp-a", ts=NOW, reason="baseline too low"))
    accepted = MarketDispute(
        order_id="off-a:o1",
        fsp="fsp-a",
        ts=NOW,
        reason="baseline too low",
        status="accepted",
        resolved_ts=NOW,
        resolution="ok",
        baseline="fsp_prognosis",
        net_before_eur=80.0,
        net_after_eur=100.0,
    )
    store.put_dispute(accepted)
    store.close()

    store = MarketStore(records.open("market"))
    try:
        assert store.prognosis("off-a") == prognosis and store.prognoses("fsp-b") == []
        assert store.frozen_forecast("off-a") == (NOW.timestamp(), {DELIVERY.isoformat(): 40.0})
        assert [d.order_id for d in store.disputes()] == ["off-b:o1", "off-a:o1"]
        assert store.disputes(status="accepted") == [accepted]
        assert store.dispute("off-b:o1") is not None and store.dispute("nope") is None
    finally:
        store.close()
