"""Market offers/s through the book's write section: SQLite (one file) and PostgreSQL, 1 and 2 writer processes.

Each writer is its own process with its own market store (its own connection, as two
controllers have) and posts its own offers through `Book.post_offer`: the whole
check-then-write path (request looked up, offer id checked unique, offer stored) inside
the market area's write section, one transaction per offer. Offers are built before the
clock starts; the time runs from one `go` to the last writer's end. Afterwards the store
must hold exactly every offer (none lost, none twice).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any, Literal

__all__ = ["OfferFigures", "bench_offer_writers"]

RecordsKind = Literal["sqlite", "postgres"]
NOW = datetime(2030, 1, 15, 12, tzinfo=UTC)
DELIVERY = datetime(2030, 1, 15, 17, tzinfo=UTC)
CP = "feeder-1"
WAIT_S = 600.0


@dataclass(frozen=True)
class OfferFigures:
    """One run: back end, writers, offers stored, seconds, and whether the store holds exactly them."""

    kind: RecordsKind
    writers: int
    offers: int
    seconds: float
    exact: bool

    @property
    def offers_per_s(self) -> float:
        """All writers together (0 if nothing was timed)."""
        return self.offers / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Job:
    """What one writer process does (picklable for spawn)."""

    kind: RecordsKind
    location: str
    password: str | None
    index: int
    n_offers: int


def _open(job: _Job | tuple[RecordsKind, str, str | None]) -> Any:
    from cloud_controller import MarketStore, PostgresRecords

    kind, location, password = (job.kind, job.location, job.password) if isinstance(job, _Job) else job
    if kind == "sqlite":
        return MarketStore(Path(location))
    return MarketStore(PostgresRecords(location, "market", password=password))


def _config() -> Any:
    from cloud_controller import MarketConfig

    return MarketConfig(fsps={"fsp-a": {}, "fsp-b": {}}, congestion_points={CP: ["a1"]})


def _writer(job: _Job, go: MpEvent, out: Any) -> None:
    """Spawn target: build this writer's offers, say ready, post them on `go`, report the count."""
    from cloud_controller import Book
    from protocols.market import MarketIsp, MarketOffer, MarketOption

    fsp = ("fsp-a", "fsp-b")[job.index % 2]
    isps = [MarketIsp(start=DELIVERY + timedelta(minutes=15 * k), kw=10.0) for k in range(4)]
    offers = [
        MarketOffer(
            offer_id=f"w{job.index}-{i}",
            fsp=fsp,
            congestion_point=CP,
            ts=NOW,
            sites=["a1"],
            expires=DELIVERY + timedelta(hours=1),
            options=[
                MarketOption(option_id="o1", isps=isps, price_eur_per_kwh=10.0, min_activation_factor=0.0)
            ],
        )
        for i in range(job.n_offers)
    ]
    try:
        store = _open(job)
        book = Book(_config(), store)
        out.put(("ready", job.index, 0))
        go.wait(WAIT_S)
        for o in offers:
            book.post_offer(o, fsp, NOW)
        store.close()
    except Exception as exc:  # the parent says why instead of waiting out WAIT_S
        out.put(("failed", job.index, f"{type(exc).__name__}: {exc}"))
        raise
    out.put(("done", job.index, len(offers)))


def _report(out: Any) -> tuple[str, int, Any]:
    kind, index, value = out.get(timeout=WAIT_S)
    if kind == "failed":
        raise RuntimeError(f"offer writer {index} failed: {value}")
    return kind, index, value


def bench_offer_writers(
    kind: RecordsKind, n_writers: int, *, location: str, password: str | None = None, n_offers: int = 500
) -> OfferFigures:
    """Time `n_writers` processes posting `n_offers` offers each into an empty market store at `location`.

    `location` is the SQLite file or the PostgreSQL DSN (its market tables empty).
    """
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    out = ctx.Queue()
    _open((kind, location, password)).close()  # create/migrate once, outside the timing
    procs = [
        ctx.Process(
            target=_writer,
            args=(_Job(kind, location, password, i, n_offers), go, out),
            name=f"offer-writer-{i}",
        )
        for i in range(n_writers)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            _report(out)  # every writer's offers are built and its store is open
        t0 = time.perf_counter()
        go.set()
        posted = sum(int(_report(out)[2]) for _ in procs)
        seconds = time.perf_counter() - t0
        for p in procs:
            p.join(timeout=30)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
    store = _open((kind, location, password))
    try:
        ids = [o.offer_id for o, _, _ in store.offers()]
    finally:
        store.close()
    expected = {f"w{i}-{k}" for i in range(n_writers) for k in range(n_offers)}
    exact = len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    return OfferFigures(kind, n_writers, posted, seconds, exact and posted == len(expected))
