"""The N-building test bed, measured: buildings and their agents over P processes, one Mosquitto, k ingest workers.

Why: the docs said the simulated test bed scales to "1,000 buildings across processes"
without a figure. This runs it for real on loopback and measures it:

- P building processes, each a `TestBed` (its Modbus servers on loopback ports) with a
  real `EdgeAgent` per building (`gridflex.loop.agents.Fleet`): the agents poll Modbus and
  publish their real telemetry batches, QoS 1, store-and-forward.
- a command sender (`--commands`, `testbed_roles.run_command_sender`): a controller in the
  `dispatch` role that, in the window, sends every site one valid command per round through
  the dispatcher's own path (`CommandBuilder`, `_publish_commands`) and matches the acks in
  its `CommandTracker`: decision → ack p50/p99 and what became of every command.
- one Mosquitto (`MosquittoBroker`), and k controller processes in the `ingest` role
  (`CloudController(role="ingest")`, the `$share` subscription) storing into one SQLite
  file or one PostgreSQL schema (`LoopbackPostgres`, `TestbedRun.store`), as `deploy/k8s`
  runs them. The processes themselves are in `gridflex/bench/testbed_roles.py`.

Figures over a bounded window after every agent is connected and a warm-up: samples/s
produced (PUBACKed by the broker, the agents' own counter) and stored (the workers'
counter), loss (published minus stored in the file after a bounded drain), latency from a
sample's timestamp (taken by the agent at its poll) to the worker's store commit, p50/p99,
and CPU (% of one core) and RSS per process (PostgreSQL: the postmaster with its backends). The anchor in the same run: the same
broker with no controller, a paho publisher and one decoding subscriber (bench contract).

Every child is a `spawn` process stopped by its own event, then by PID (SIGTERM) if it
does not end within a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from gridflex.bench.ingest import IngestStore, store_reader, store_section
from gridflex.bench.proc import cpu_s, descendants, rss_mb
from gridflex.bench.testbed_roles import (
    ACK_WAIT_S,
    CONNECT_S,
    READY_S,
    CommandFigures,
    run_buildings,
    run_command_sender,
    run_ingest_worker,
)

__all__ = ["CommandFigures", "ProcessLoad", "TestbedFigures", "TestbedRun", "bench_testbed", "percentile"]

JOIN_S = 20.0  # bound on a child's orderly stop before SIGTERM by PID
DRAIN_S = 30.0  # bound on the drain after the buildings stop


@dataclass(frozen=True)
class TestbedRun:
    """What to run: `buildings` split evenly over `processes`, `workers` ingest processes."""

    __test__ = False  # not a pytest class

    buildings: int = 1000
    processes: int = 2
    workers: int = 2
    duration_s: float = 30.0
    warmup_s: float = 10.0
    poll_s: float = 5.0  # agent poll interval (real seconds)
    #: the agents' heartbeat: a point unchanged beyond its deadband is sent again after this
    #: long (None = `gridflex testbed`'s max(60, 15 x poll_s)); = poll_s sends every point every poll
    max_age_s: float | None = None
    seed: int = 1
    anchor_messages: int = 5_000  # 0 = no anchor run
    anchor_rate_per_s: float = 1_000.0  # QoS 1 messages/s of the anchor (bench contract's paced run)
    #: the workers' `store.ingest_batch_messages` (0: one transaction per message, as before batching)
    batch_messages: int = 200
    store: str = "sqlite"  # "sqlite" (one file) | "postgres" (a loopback server, one schema)
    commands: bool = True  # a command sender: every site one command per round in the window
    command_every_s: float = 5.0  # its round interval (wall s)
    #: the agents' Modbus request timeout (the product's default 1 s; a saturated bed's devices answer late)
    modbus_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if self.processes < 1 or self.workers < 1:
            raise ValueError("processes and workers must be >= 1")
        if self.buildings < self.processes:
            raise ValueError(f"{self.buildings} buildings cannot be split over {self.processes} processes")
        if -(-self.buildings // self.processes) > 999:
            raise ValueError("at most 999 buildings per process (site ids b001..b999)")
        if self.duration_s <= 0 or self.warmup_s < 0 or self.poll_s <= 0:
            raise ValueError("duration_s and poll_s must be > 0, warmup_s >= 0")
        if self.store not in {"sqlite", "postgres"}:
            raise ValueError(f"store {self.store!r}: sqlite or postgres")
        if self.command_every_s <= 0:
            raise ValueError("command_every_s must be > 0")
        if self.modbus_timeout_s <= 0:
            raise ValueError("modbus_timeout_s must be > 0")
        if self.max_age_s is not None and self.max_age_s < self.poll_s:
            raise ValueError(f"max_age_s {self.max_age_s} must be >= poll_s {self.poll_s}")

    @property
    def heartbeat_s(self) -> float:
        """The agents' max age of an unchanged point."""
        return max(60.0, 15 * self.poll_s) if self.max_age_s is None else self.max_age_s

    def split(self) -> list[int]:
        """Buildings per process, as even as possible."""
        q, r = divmod(self.buildings, self.processes)
        return [q + (1 if k < r else 0) for k in range(self.processes)]


@dataclass(frozen=True)
class ProcessLoad:
    """One process's CPU over the window (% of one core) and RSS at its end."""

    role: str
    pid: int
    cpu_pct: float
    rss_mb: float


@dataclass(frozen=True)
class TestbedFigures:
    """One `bench_testbed` run's figures."""

    run: TestbedRun
    start_s: float  # building processes ready → every agent connected
    window_s: float
    produced: int  # samples PUBACKed in the window
    stored: int  # samples stored in the window
    published_total: int
    stored_total: int  # rows in the store after the drain
    latency_p50_ms: float
    latency_p99_ms: float
    latency_n: int
    #: from the batch's own ts (the agent's publish) to stored: the controller side's share
    publish_p50_ms: float
    publish_p99_ms: float
    loads: tuple[ProcessLoad, ...]
    per_worker: tuple[int, ...]
    anchor: dict[str, float] = field(default_factory=dict)
    commands: CommandFigures | None = None  # None: run without the command sender

    @property
    def produced_per_s(self) -> float:
        """Samples/s the agents published (broker-acknowledged) in the window."""
        return self.produced / self.window_s

    @property
    def stored_per_s(self) -> float:
        """Samples/s the ingest workers stored in the window."""
        return self.stored / self.window_s

    @property
    def lost(self) -> int:
        """Published samples not in the store after the drain (never negative: a replayed sample counts once)."""
        return max(0, self.published_total - self.stored_total)


def _stop_all(procs: list[BaseProcess]) -> None:
    """Join each child within JOIN_S, then SIGTERM it by PID, then SIGKILL: nothing is left running."""
    for p in procs:
        p.join(JOIN_S)
        if p.is_alive():
            p.terminate()  # SIGTERM to this PID
            p.join(5)
        if p.is_alive():
            p.kill()
            p.join(5)


def percentile(sorted_values: list[float], q: float) -> float:
    """The `q` quantile of `sorted_values` (nearest rank below), NaN for none."""
    if not sorted_values:
        return float("nan")
    return sorted_values[int(q * (len(sorted_values) - 1))]


def _wait_for(cond: Any, timeout_s: float, what: str, errors: Any) -> float:
    """Poll `cond()` until true; raise with the children's errors if one failed or on timeout."""
    t0 = time.monotonic()
    while not cond():
        with contextlib.suppress(Exception):
            name, detail = errors.get_nowait()
            raise RuntimeError(f"{name} failed: {detail}")
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"{what} not within {timeout_s:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - t0


def _collect(
    procs: list[BaseProcess], out: Any
) -> dict[int, tuple[int, list[tuple[float, float]], list[tuple[float, float]]]]:
    """Each stopped worker's (stored, [(t_commit, latency_s)]) by index, then the workers joined."""
    results: dict[int, tuple[int, list[tuple[float, float]], list[tuple[float, float]]]] = {}
    for _ in procs:
        with contextlib.suppress(Exception):
            i, n_i, timings, lags = out.get(timeout=JOIN_S)
            results[i] = (n_i, timings, lags)
    _stop_all(procs)
    return results


def _drain(reader: Any, published_total: int) -> int:
    """Rows in the store once it holds `published_total`, or it made no progress for 5 s, or DRAIN_S passed."""
    deadline, last, last_t = time.monotonic() + DRAIN_S, -1, time.monotonic()
    while time.monotonic() < deadline:
        n_stored = reader.count_samples()
        if n_stored >= published_total:
            break
        if n_stored != last:
            last, last_t = n_stored, time.monotonic()
        elif time.monotonic() - last_t > 5.0:
            break  # no progress for 5 s: what is missing is lost
        time.sleep(0.2)
    return int(reader.count_samples())


def _role_pids(role: str, pid: int) -> list[int]:
    """The PIDs a role's CPU and RSS sum: PostgreSQL's postmaster with its backends, else the one process."""
    return descendants(pid) if role == "postgres" else [pid]


def bench_testbed(run: TestbedRun, *, workdir: Path | None = None) -> TestbedFigures:  # noqa: C901, PLR0912, PLR0915
    """Run the test bed for `run.warmup_s + run.duration_s` after every agent connected; measure it."""
    from cloud_controller import Registry, SiteRef, registry_from_manifest
    from gridflex.bench.contract import mqtt_ingest_figures
    from gridflex.ops.broker import MosquittoBroker
    from gridflex.ops.postgres import LoopbackPostgres

    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="gridflex-testbed-bench-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    split = run.split()
    stop_b, stop_w, go = ctx.Event(), ctx.Event(), ctx.Event()
    errors, out = ctx.Queue(), ctx.Queue()
    published = [ctx.Value("q", 0) for _ in split]
    connected = [ctx.Value("q", 0) for _ in split]
    stored = [ctx.Value("q", 0) for _ in range(run.workers)]
    ready_b = [ctx.Event() for _ in split]
    ready_w = [ctx.Event() for _ in range(run.workers)]
    b_procs: list[BaseProcess] = []
    c_procs: list[BaseProcess] = []
    ready_c, go_c, stop_c, c_out = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
    commands: CommandFigures | None = None
    results: dict[int, tuple[int, list[tuple[float, float]], list[tuple[float, float]]]] = {}
    w_procs: list[BaseProcess] = []
    store_path = root / "controller.sqlite"
    pg = LoopbackPostgres() if run.store == "postgres" else None
    reader: Any = None
    broker = MosquittoBroker(workdir=root / "mosquitto", max_queued_messages=1_000_000)
    try:
        store = IngestStore()
        if pg is not None:
            pg.start()
            store = IngestStore("postgres", pg.dsn(pg.fresh_schema()), str(pg.password_file))
        reader = store_reader(store, store_path)  # PostgreSQL: migrates the schema before the workers start
        broker.start()
        for k, n in enumerate(split):
            d = root / f"buildings-{k}"
            args = (
                broker.port,
                k,
                n,
                run.seed,
                run.poll_s,
                run.heartbeat_s,
                run.modbus_timeout_s,
                str(d),
                ready_b[k],
                go,
                stop_b,
            )
            b_procs.append(
                ctx.Process(
                    target=run_buildings, args=(*args, published[k], connected[k], errors), name=f"b{k}"
                )
            )
        for p in b_procs:
            p.start()
        _wait_for(lambda: all(e.is_set() for e in ready_b), READY_S, "building processes ready", errors)
        sites: list[SiteRef] = []
        for k in range(len(split)):
            part = registry_from_manifest(root / f"buildings-{k}" / "manifest.json", run.buildings)
            sites += [replace(s, region_site=len(sites) + i) for i, s in enumerate(part.sites)]
        registry = Registry(sites=tuple(sites))
        for i in range(run.workers):
            args_w = (
                broker.port,
                store_section(store, store_path),
                registry,
                i,
                ready_w[i],
                stop_w,
                stored[i],
                out,
                run.batch_messages,
            )
            w_procs.append(ctx.Process(target=run_ingest_worker, args=args_w, name=f"ingest-{i}"))
        if run.commands:
            args_c = (broker.port, store_section(store, store_path), registry, run.command_every_s)
            c_procs.append(
                ctx.Process(
                    target=run_command_sender, args=(*args_c, ready_c, go_c, stop_c, c_out), name="commands"
                )
            )
        for p in w_procs + c_procs:
            p.start()
        _wait_for(
            lambda: all(e.is_set() for e in ready_w) and (ready_c.is_set() or not c_procs),
            READY_S,
            "ingest workers (and the command sender) connected",
            errors,
        )
        go.set()
        start_s = _wait_for(
            lambda: sum(c.value for c in connected) >= run.buildings,
            CONNECT_S,
            "every agent connected",
            errors,
        )
        time.sleep(run.warmup_s)
        pids = (
            [(f"buildings-{k}", p.pid) for k, p in enumerate(b_procs)]
            + [(f"ingest-{i}", p.pid) for i, p in enumerate(w_procs)]
            + [("commands", p.pid) for p in c_procs]
            + [("mosquitto", broker.pid)]
            + ([("postgres", pg.pid)] if pg is not None else [])
        )
        cpu0 = {p: cpu_s(p) for role, pid in pids if pid is not None for p in _role_pids(role, pid)}
        pub0, st0, t0 = sum(v.value for v in published), sum(v.value for v in stored), time.monotonic()
        t0_wall = time.time()
        go_c.set()
        time.sleep(run.duration_s)
        pub1, st1, t1 = sum(v.value for v in published), sum(v.value for v in stored), time.monotonic()
        t1_wall = time.time()
        window = t1 - t0
        loads = tuple(
            ProcessLoad(
                role,
                pid,
                100.0 * sum(max(0.0, cpu_s(p) - cpu0.get(p, 0.0)) for p in _role_pids(role, pid)) / window,
                sum(rss_mb(p) for p in _role_pids(role, pid)),
            )
            for role, pid in pids
            if pid is not None
        )
        with contextlib.suppress(Exception):
            name, detail = errors.get_nowait()
            raise RuntimeError(f"{name} failed during the window: {detail}")
        stop_c.set()  # the buildings keep running while the sender waits for the last acks
        if c_procs:
            commands = c_out.get(timeout=ACK_WAIT_S + JOIN_S)
            _stop_all(c_procs)
        stop_b.set()
        _stop_all(b_procs)
        published_total = sum(v.value for v in published)
        stored_total = _drain(reader, published_total)
        stop_w.set()
        results = _collect(w_procs, out)
        anchor: dict[str, float] = {}
        if run.anchor_messages:  # the same broker, the controller gone: what the bare path does
            anchor = asyncio.run(
                mqtt_ingest_figures(broker.port, run.anchor_messages, 1, run.anchor_rate_per_s)
            )
    finally:
        stop_b.set()
        stop_w.set()
        stop_c.set()
        go.set()
        go_c.set()
        if not results:
            results = _collect(w_procs, out)
        _stop_all(b_procs + w_procs + c_procs)
        broker.close()
        if reader is not None:
            reader.close()
        if pg is not None:
            pg.close()
        if own:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    pub = sorted(lag * 1000 for _, _, lags in results.values() for t, lag in lags if t0_wall <= t <= t1_wall)
    lat = sorted(
        lat_s * 1000 for _, timings, _ in results.values() for t, lat_s in timings if t0_wall <= t <= t1_wall
    )
    return TestbedFigures(
        run=run,
        start_s=start_s,
        window_s=window,
        produced=pub1 - pub0,
        stored=st1 - st0,
        published_total=published_total,
        stored_total=stored_total,
        latency_p50_ms=statistics.median(lat) if lat else float("nan"),
        latency_p99_ms=percentile(lat, 0.99),
        latency_n=len(lat),
        publish_p50_ms=statistics.median(pub) if pub else float("nan"),
        publish_p99_ms=percentile(pub, 0.99),
        loads=loads,
        per_worker=tuple(results.get(i, (0, [], []))[0] for i in range(run.workers)),
        anchor=anchor,
        commands=commands,
    )
