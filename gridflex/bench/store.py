"""Store write throughput: samples/s into SQLite (one file) and PostgreSQL with 1 and 2 writer processes.

Each writer is its own process with its own store object (its own connection, as two
controller workers have), writing interleaved batches of the same sites: batch b of
every site goes to writer b mod n. Batches are built before the clock starts; the time
runs from one `go` to the last writer's end. The anchor is SQLite with one writer in
the same run, so the ratios say what the shared database costs or gains here. After
each run every site's watermark must be its last seq (the check the tests make).
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any, Literal

__all__ = ["RollupWriteCost", "StoreFigures", "bench_store_writers", "rollup_write_cost"]

T0 = datetime(2030, 1, 15, 12, tzinfo=UTC)
StoreKind = Literal["sqlite", "postgres"]
WAIT_S = 600.0


@dataclass(frozen=True)
class StoreFigures:
    """One run: store kind, writers, samples stored, seconds, and whether every watermark came out right."""

    kind: StoreKind
    writers: int
    samples: int
    seconds: float
    watermarks_ok: bool
    cpu_s: float = 0.0  # the writer processes' own CPU seconds while writing (not a server's)

    @property
    def samples_per_s(self) -> float:
        """All writers together (0 if nothing was timed)."""
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def _open(kind: StoreKind, location: str, password: str | None, *, rollups: bool = True) -> Any:
    """The store at `location`; `rollups=False`: a subclass that keeps no ISP rollups (the write-cost anchor)."""
    from cloud_controller import PostgresStore, SqliteStore

    cls: Any = SqliteStore if kind == "sqlite" else PostgresStore
    if not rollups:
        cls = type(f"{cls.__name__}WithoutRollups", (cls,), {"KEEP_ROLLUPS": False})
    return cls(Path(location)) if kind == "sqlite" else cls(location, password=password)


@dataclass(frozen=True)
class _Job:
    """What one writer process does (picklable for spawn)."""

    kind: StoreKind
    location: str
    password: str | None
    index: int
    n_writers: int
    sites: tuple[str, ...]
    n_batches: int
    size: int
    rollups: bool = True


def _writer(job: _Job, go: MpEvent, out: Any) -> None:
    """Spawn target: build this writer's batches, say ready, write them on `go`, report the count."""
    from protocols.messages import Sample

    work = [
        (
            site,
            [
                Sample(
                    seq=q,
                    asset="meter",
                    point="p_kw",
                    value=float(q),
                    unit="kW",
                    ts=T0 + timedelta(seconds=q),
                )
                for q in range(b * job.size, (b + 1) * job.size)
            ],
        )
        for b in range(job.n_batches)
        if b % job.n_writers == job.index
        for site in job.sites
    ]
    store = _open(job.kind, job.location, job.password, rollups=job.rollups)
    out.put(("ready", job.index, 0))
    go.wait(WAIT_S)
    cpu = time.process_time()
    inserted = sum(store.write_samples(site, batch).inserted for site, batch in work)
    cpu = time.process_time() - cpu
    store.close()
    out.put(("done", job.index, inserted, cpu))


def bench_store_writers(
    kind: StoreKind,
    n_writers: int,
    *,
    location: str,
    password: str | None = None,
    n_sites: int = 20,
    n_batches: int = 20,
    size: int = 500,
    rollups: bool = True,
) -> StoreFigures:
    """Time `n_writers` processes writing n_sites × n_batches × size samples into an empty store at `location`.

    `location` is the SQLite file or the PostgreSQL DSN (its tables empty or absent).
    `rollups=False` writes without the ISP rollups (what they cost: `rollup_write_cost`).
    """
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    out = ctx.Queue()
    sites = [f"s{i:03d}" for i in range(n_sites)]
    _open(kind, location, password).close()  # create/migrate once, outside the timing
    procs = [
        ctx.Process(
            target=_writer,
            args=(
                _Job(kind, location, password, i, n_writers, tuple(sites), n_batches, size, rollups),
                go,
                out,
            ),
            name=f"store-writer-{i}",
        )
        for i in range(n_writers)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            out.get(timeout=WAIT_S)  # every writer's batches are built and its store is open
        t0 = time.perf_counter()
        go.set()
        done = [out.get(timeout=WAIT_S) for _ in procs]
        seconds = time.perf_counter() - t0
        inserted = sum(int(d[2]) for d in done)
        cpu_s = sum(float(d[3]) for d in done)
        for p in procs:
            p.join(timeout=30)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
    store = _open(kind, location, password)
    try:
        last = n_batches * size - 1
        ok = store.watermarks() == dict.fromkeys(sites, last) and store.count_samples() == inserted
    finally:
        store.close()
    return StoreFigures(
        kind, n_writers, inserted, seconds, ok and inserted == n_sites * n_batches * size, cpu_s
    )


@dataclass(frozen=True)
class RollupWriteCost:
    """Samples/s of one writer with and without the ISP rollups, alternating rounds (one store each)."""

    kind: StoreKind
    size: int  # samples per message (a transaction each)
    with_per_s: tuple[float, ...]
    without_per_s: tuple[float, ...]
    with_cpu_us: tuple[float, ...] = ()  # the writer's CPU microseconds per sample, with the rollups
    without_cpu_us: tuple[float, ...] = ()

    @property
    def ratio(self) -> float:
        """Median with / median without (1.0: the rollups cost nothing measurable)."""
        without = statistics.median(self.without_per_s) if self.without_per_s else 0.0
        return statistics.median(self.with_per_s) / without if without > 0 else 0.0


def rollup_write_cost(
    kind: StoreKind,
    location_of: Callable[[int], str],
    *,
    password: str | None = None,
    size: int = 10,
    samples: int = 20_000,
    n_sites: int = 20,
    rounds: int = 2,
) -> RollupWriteCost:
    """One writer, about `samples` samples in messages of `size`, without then with the rollups, `rounds` times.

    `location_of(k)` gives run k a fresh store (a new file or schema). The samples are one
    second apart, so a message lands in one or two ISPs, as an agent's do.
    """
    with_s: list[float] = []
    without_s: list[float] = []
    with_cpu: list[float] = []
    without_cpu: list[float] = []
    n_batches = max(1, samples // (n_sites * size))
    for r in range(rounds):
        for keep in (False, True):
            fig = bench_store_writers(
                kind,
                1,
                location=location_of(2 * r + int(keep)),
                password=password,
                n_sites=n_sites,
                n_batches=n_batches,
                size=size,
                rollups=keep,
            )
            if not fig.watermarks_ok:
                raise AssertionError(f"{kind}: a watermark or count came out wrong")
            (with_s if keep else without_s).append(fig.samples_per_s)
            (with_cpu if keep else without_cpu).append(1e6 * fig.cpu_s / max(1, fig.samples))
    return RollupWriteCost(kind, size, tuple(with_s), tuple(without_s), tuple(with_cpu), tuple(without_cpu))
