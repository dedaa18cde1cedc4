"""Two processes writing one area at once (forked, each with its own connection): exact counts, no duplicate, no lost update.

Each race runs on SQLite (one file, two connections) and PostgreSQL (two sessions). The
writers start together at a barrier and interleave their check-then-write calls; without
the area's write section the checks below fail (both accept one offer id, both clear one
request, a DR contract's events_per_day is exceeded, two OpenADR programs share a place).
"""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.dr.service import DrConflict, DrRefused, DrService
from cloud_controller.market.book import Book, Refused
from cloud_controller.market.store import MarketStore
from cloud_controller.openadr.oauth import Client
from cloud_controller.openadr.resources import Vtn, VtnError
from cloud_controller.openadr.store import OpenAdrStore
from cloud_controller.store.records import records_of
from gridflex.ops.postgres import LoopbackPostgres
from protocols.clock import SimClock
from tests.integration.store.conftest import Records
from tests.integration.store.records_cases import (
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
N = 20  # ids per kind per writer
FSPS = ("fsp-a", "fsp-b")
Worker = Callable[[Records, int, Barrier], Any]


def _child(work: Worker, records: Records, index: int, barrier: Barrier, out: Queue[Any]) -> None:
    try:
        out.put((index, work(records, index, barrier)))
    except BaseException as exc:
        out.put((index, f"failed: {exc!r}"))
        raise


def race(records: Records, work: Worker, n: int = 2) -> list[Any]:
    """Run `work(records, index, barrier)` in `n` forked processes; their results by index."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n)
    out: Queue[Any] = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(work, records, i, barrier, out)) for i in range(n)]
    for p in procs:
        p.start()
    try:
        results = dict(out.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(10)
            assert p.exitcode == 0, f"writer exited {p.exitcode}: {results}"
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
    return [results[i] for i in range(n)]


def _post_offers(records: Records, index: int, barrier: Barrier) -> tuple[list[str], int]:
    book = Book(MARKET, MarketStore(records.open("market")))
    fsp = FSPS[index]
    accepted: list[str] = []
    conflicts = 0
    barrier.wait(30)
    for i in range(N):
        for oid in (f"shared-{i}", f"{fsp}-{i}"):
            try:
                book.post_offer(offer(oid, fsp=fsp), fsp, NOW)
                accepted.append(oid)
            except Refused as exc:
                assert exc.status == 409, exc
                conflicts += 1
    book.store.close()
    return accepted, conflicts


def test_two_processes_posting_offers_accept_each_id_once_and_lose_none(records: Records) -> None:
    results = race(records, _post_offers)
    accepted = [oid for got, _ in results for oid in got]
    assert len(accepted) == len(set(accepted)) == 3 * N  # N shared + N own per writer, none twice
    assert sum(c for _, c in results) == N  # every shared id refused exactly once, as a 409
    store = MarketStore(records.open("market"))
    try:
        stored = {o.offer_id: o.fsp for o, _, _ in store.offers()}
        assert len(stored) == 3 * N
        for fsp, (got, _) in zip(FSPS, results, strict=True):  # the stored offer is the accepting writer's
            assert all(stored[oid] == fsp for oid in got)
    finally:
        store.close()


ROUNDS = 3


def _clear(records: Records, index: int, barrier: Barrier) -> list[str | None]:
    book = Book(MARKET, MarketStore(records.open("market")))
    got: list[str | None] = []
    for k in range(ROUNDS):
        if index == 0:  # one writer sets the round up: the DSO's need and two offers
            book.post_request(market_request(f"need-{k}"), NOW)
            for fsp in FSPS:
                book.post_offer(offer(f"{fsp}-r{k}", fsp=fsp), fsp, NOW)
        barrier.wait(30)  # the round is set up
        barrier.wait(30)  # both clear at once
        record = book.clear(NOW)
        got.append(None if record is None else record.clearing_id)
        barrier.wait(30)  # both are done before the next round is set up
    book.store.close()
    return got


def test_two_processes_clearing_at_once_clear_each_request_once(records: Records) -> None:
    results = race(records, _clear)
    for k in range(ROUNDS):
        winners = [r[k] for r in results if r[k] is not None]
        assert len(winners) == 1, f"round {k}: {results}"
    store = MarketStore(records.open("market"))
    try:
        clearings = store.clearings()
        assert len(clearings) == ROUNDS
        assert len({c["clearing_id"] for c in clearings}) == ROUNDS  # numbered apart, none replaced
        assert [s for _, s in store.requests()] == ["cleared"] * ROUNDS
        orders = store.orders()
        assert len(orders) == len({o.order_id for o in orders}) == 2 * ROUNDS  # 15 kW needed: both offers
        assert Counter(o.clearing_id for o in orders) == Counter({c["clearing_id"]: 2 for c in clearings})
    finally:
        store.close()


def _submit(records: Records, index: int, barrier: Barrier) -> list[tuple[str, str]]:
    dr = DrService(records.open("dr"), clock=SimClock(NOW), contracts_file=None, step_minutes=15)
    dr.contracts.put_contract(contract("b001", events_per_day=5))  # both controllers load the same file
    outcomes: list[tuple[str, str]] = []
    ids = [f"w{index}-{i}" for i in range(6)] + [f"s{i}" for i in range(3)]
    barrier.wait(30)
    for i, rid in enumerate(ids):
        try:
            outcomes.append((rid, dr.submit(dr_request(rid, start=T0 + timedelta(minutes=5 * i)), {}).status))
        except DrRefused:
            outcomes.append((rid, "refused"))
        except DrConflict:
            outcomes.append((rid, "conflict"))
    dr.close()
    return outcomes


def test_two_processes_submitting_dr_requests_never_exceed_events_per_day(records: Records) -> None:
    results = race(records, _submit)
    selected = [rid for r in results for rid, s in r if s == "selected"]
    assert len(selected) == len(set(selected)) == 5  # the contract's events_per_day, not 6 or more
    conflicts = [rid for r in results for rid, s in r if s == "conflict"]
    assert all(rid in selected for rid in conflicts)  # a conflict only where the other recorded it
    dr = DrService(records.open("dr"), clock=SimClock(NOW), contracts_file=None, step_minutes=15)
    try:
        assert dr.contracts.events_on_day("peak", T0) == {"b001": 5}
        stored = {r.request.request_id: r.status for r in dr.requests.all()}
        assert len(stored) == 2 * 6 + 3
        assert sorted(rid for rid, s in stored.items() if s == "selected") == sorted(selected)
    finally:
        dr.close()


def _create_programs(records: Records, index: int, barrier: Barrier) -> tuple[list[str], int]:
    vtn = Vtn(OpenAdrStore(records.open("openadr")), clock=SimClock(NOW))
    made: list[str] = []
    conflicts = 0
    barrier.wait(30)
    for i in range(N):
        for name in (f"shared-{i}", f"w{index}-{i}"):
            try:
                made.append(vtn.create(BL, "programs", program(name))["programName"])
            except VtnError as exc:
                assert exc.status == 409, exc.problem
                conflicts += 1
    vtn.store.close()
    return made, conflicts


def test_two_processes_creating_openadr_programs_keep_names_unique_and_places_distinct(
    records: Records,
) -> None:
    results = race(records, _create_programs)
    made = [name for got, _ in results for name in got]
    assert len(made) == len(set(made)) == 3 * N and sum(c for _, c in results) == N
    store = OpenAdrStore(records.open("openadr"))
    try:
        assert sorted(p["programName"] for p in store.all("programs")) == sorted(made)
        seqs = [
            int(s)
            for (s,) in store.db.query(
                "SELECT seq FROM oa3_objects WHERE kind = ? ORDER BY seq", ("programs",)
            )
        ]
        assert seqs == list(range(1, 3 * N + 1))  # one place each, no gap, none shared
    finally:
        store.close()


def test_two_controllers_with_separate_folders_share_their_records_on_one_postgres(
    pg_server: LoopbackPostgres, pg_schema: str, tmp_path: Path
) -> None:
    """Controllers A and B (own working folders, no shared file) see each other's DR, market and VTN writes."""
    import psycopg

    from tests.integration.store.conftest import RECORD_TABLES

    dsn = pg_server.dsn(pg_schema)
    with psycopg.connect(dsn, password=pg_server.password, autocommit=True) as db:
        db.execute("; ".join(f"DELETE FROM {t}" for t in RECORD_TABLES))
    configs = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "pg.password").write_text(pg_server.password + "\n")
        store = {
            "kind": "postgres",
            "dsn": dsn,
            "password_file": str(folder / "pg.password"),
            "path": str(folder / "cloud.sqlite"),
        }
        configs.append(CloudConfig.model_validate({"store": store}))

    def stores(cfg: CloudConfig) -> tuple[DrService, Book, Vtn]:
        here = cfg.store.path.parent
        dr = DrService(
            records_of(cfg, "dr", here / "dr.sqlite"),
            clock=SimClock(NOW),
            contracts_file=None,
            step_minutes=15,
        )
        book = Book(MARKET, MarketStore(records_of(cfg, "market", here / "market.sqlite")))
        vtn = Vtn(OpenAdrStore(records_of(cfg, "openadr", here / "openadr.sqlite")), clock=SimClock(NOW))
        return dr, book, vtn

    (dr_a, book_a, vtn_a), (dr_b, book_b, vtn_b) = stores(configs[0]), stores(configs[1])
    try:
        dr_a.contracts.put_contract(contract("b001"))
        assert dr_b.submit(dr_request("r1"), {}).status == "selected"  # B sees A's contract
        with pytest.raises(DrConflict):
            dr_a.submit(dr_request("r1"), {})  # A sees B's request
        book_a.post_request(market_request("need-1"), NOW)
        book_b.post_offer(offer("o-1"), "fsp-a", NOW)
        with pytest.raises(Refused, match="exists already"):
            book_a.post_offer(offer("o-1"), "fsp-a", NOW)
        cleared = book_a.clear(NOW)  # A clears B's offer against its own request
        assert cleared is not None and [o.offer_id for o in cleared.orders] == ["o-1"]
        assert book_b.clear(NOW) is None and [o.order_id for o in book_b.store.orders()] == ["o-1:o1"]
        prog = vtn_a.create(BL, "programs", program("congestion"))
        assert vtn_b.get(BL, "programs", prog["id"]) == prog
        with pytest.raises(VtnError, match="exists already"):
            vtn_b.create(BL, "programs", program("congestion"))
        assert not list(tmp_path.rglob("*.sqlite*"))  # nothing went to a local file
    finally:
        for dr, book, vtn in ((dr_a, book_a, vtn_a), (dr_b, book_b, vtn_b)):
            dr.close()
            book.store.close()
            vtn.store.close()
