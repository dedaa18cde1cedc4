"""Ingest throughput with one or several controller workers on the `$share` subscription.

Each worker is its own process (`CloudController(role="ingest")`, its own MQTT client
id, the same SQLite file or the same PostgreSQL schema), as `deploy/k8s` runs them; a
publisher process pushes batched telemetry of many sites through a real Mosquitto on
loopback. Figures: samples/s from the first publish until every sample is stored, and
how the broker split the batches between the workers (the watermark stays right because
every worker advances it from the store; see cloud_controller/store/sqlite.py and
postgres.py). `IngestStore.batch_messages` is the workers' `store.ingest_batch_messages`:
0 stores each message in its own transaction (acked on receipt, the path before the
write-behind queue), N flushes up to N messages per transaction (acked after the commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from gridflex.bench.proc import RoleCpu
from protocols.assets import METER, Points

__all__ = [
    "InProcessIngest",
    "IngestFigures",
    "IngestStore",
    "WritePathFigures",
    "bench_ingest_workers",
    "ingest_in_process",
    "store_reader",
    "store_section",
    "telemetry_payloads",
    "write_path_figures",
]

T0 = datetime(2030, 1, 15, 12, tzinfo=UTC)
#: a worker's start (spawn, imports, connect): ~5 s idle, 40-90 s on a shared machine at load 10+
READY_S = 240.0


@dataclass(frozen=True)
class IngestStore:
    """Where the workers store: SQLite (a file in the run's folder) or PostgreSQL (`dsn`, one schema a run)."""

    kind: str = "sqlite"  # "sqlite" | "postgres"
    dsn: str | None = None
    password_file: str | None = None
    batch_messages: int = 0


@dataclass(frozen=True)
class IngestFigures:
    """One `bench_ingest_workers` run: samples stored, seconds, each worker's share, watermark check."""

    workers: int
    samples: int
    seconds: float
    per_worker: tuple[int, ...]  # samples each worker stored
    watermarks_ok: bool
    #: CPU seconds of each role over the timed phase (publisher, ingest-<k>, bench = this
    #: process counting rows, and the `watch`ed ones: mosquitto, postgres with its backends)
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        """Ingest throughput of all workers together (0 if nothing was timed)."""
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def _sites(n: int) -> list[str]:
    return [f"s{i:03d}" for i in range(n)]


def _worker(
    port: int,
    store: dict[str, Any],
    n_sites: int,
    index: int,
    ready: MpEvent,
    stop: MpEvent,
    stored: Synchronized[int],
    out: Any,
) -> None:
    """Spawn target: one ingest worker until `stop`; its stored-sample count in `stored` as it goes, then on `out`.

    The bench waits on these counters (committed samples) rather than polling the store:
    a `count(*)` every few ms would be PostgreSQL CPU the figures then charge to ingest.
    """
    from cloud_controller import AssetRef, CloudConfig, CloudController, Registry, SiteRef
    from protocols.clock import RealClock

    registry = Registry(
        sites=tuple(SiteRef(s, i, (AssetRef(METER, "meter"),)) for i, s in enumerate(_sites(n_sites)))
    )
    cfg = CloudConfig.model_validate(
        {
            "broker": {"port": port, "client_id": f"bench-ingest-{index}"},
            "store": store,
            "control": {"dispatch": False},
            "api": {"enabled": False},
        }
    )

    async def run() -> int:
        ctl = CloudController(cfg, registry, clock=RealClock(), role="ingest")
        task = asyncio.create_task(ctl.run())
        await ctl.session.wait_connected(20)
        await asyncio.sleep(0.5)  # the subscription is in place before the publisher starts
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.02)
            stored.value = ctl.ingest.stats.samples_stored
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return ctl.ingest.stats.samples_stored

    out.put((index, asyncio.run(run())))


def telemetry_payloads(sites: list[str], n_batches: int, size: int) -> list[tuple[str, bytes]]:
    """(topic, encoded batch) for every site's `n_batches` batches of `size` meter samples.

    Seq 0.. contiguous per site, batch by batch across the sites.
    """
    from protocols.codec import encode
    from protocols.messages import Sample, TelemetryBatch
    from protocols.topics import site_topic

    out: list[tuple[str, bytes]] = []
    for b in range(n_batches):
        for site in sites:
            samples = [
                Sample(
                    seq=b * size + i,
                    asset=Points.METER_P_KW.asset,
                    point=Points.METER_P_KW.point,
                    value=float(i),
                    unit="kW",
                    ts=T0 + timedelta(seconds=b * size + i),
                )
                for i in range(size)
            ]
            out.append(
                (site_topic(site, "telemetry"), encode(TelemetryBatch(site=site, ts=T0, samples=samples)))
            )
    return out


def _publisher(
    port: int, n_sites: int, n_batches: int, size: int, built: MpEvent, go: MpEvent, done: MpEvent
) -> None:
    """Spawn target: every site's batches, QoS 1, as fast as the broker takes them.

    Sets `built` once its payloads are encoded and it is connected (the clock starts at
    `go`, not before), and stays alive until `done` so its CPU seconds can be read.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    payloads = telemetry_payloads(_sites(n_sites), n_batches, size)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    built.set()
    go.wait(60)
    infos = [client.publish(topic, payload, qos=1) for topic, payload in payloads]
    for info in infos:
        info.wait_for_publish(60)
    done.wait(300)
    client.loop_stop()
    client.disconnect()


def store_section(store: IngestStore, path: Path) -> dict[str, Any]:
    """The workers' `store:` section."""
    section: dict[str, Any] = {"path": str(path), "ingest_batch_messages": store.batch_messages}
    if store.kind == "postgres":
        section |= {"kind": "postgres", "dsn": store.dsn, "password_file": store.password_file}
    return section


def store_reader(store: IngestStore, path: Path) -> Any:
    """A store object of this process, to count what the workers stored."""
    from cloud_controller import PostgresStore, SqliteStore

    if store.kind != "postgres":
        return SqliteStore(path)
    assert store.dsn is not None and store.password_file is not None
    return PostgresStore(store.dsn, password=Path(store.password_file).read_text().strip())


def bench_ingest_workers(
    workers: int,
    *,
    port: int,
    workdir: Path,
    n_sites: int = 20,
    n_batches: int = 20,
    size: int = 500,
    store: IngestStore | None = None,
    watch: dict[str, int] | None = None,
) -> IngestFigures:
    """Run `workers` ingest processes against the broker on `port`; time the whole load.

    `watch`: more processes whose CPU seconds the figures give, role -> PID (a role
    named "postgres" counts the PID with its children: the backends do the writes).
    """
    store = store or IngestStore()
    workdir.mkdir(parents=True, exist_ok=True)
    store_path = workdir / f"ingest-{workers}-{store.batch_messages}.sqlite"
    store_path.unlink(missing_ok=True)
    reader = store_reader(store, store_path)  # PostgreSQL: migrates the run's schema before the workers start
    section = store_section(store, store_path)
    ctx = mp.get_context("spawn")
    stop, go, built, done = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event()
    out = ctx.Queue()
    readies = [ctx.Event() for _ in range(workers)]
    stored_by = [ctx.Value("q", 0) for _ in range(workers)]
    procs = [
        ctx.Process(target=_worker, args=(port, section, n_sites, k, readies[k], stop, stored_by[k], out))
        for k in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        for r in readies:
            if not r.wait(READY_S):
                raise RuntimeError(f"an ingest worker did not connect within {READY_S:.0f} s")
        pub = ctx.Process(target=_publisher, args=(port, n_sites, n_batches, size, built, go, done))
        pub.start()
        if not built.wait(READY_S):  # the publisher builds its payloads before the clock starts
            raise RuntimeError(f"the publisher did not build its payloads within {READY_S:.0f} s")
        total = n_sites * n_batches * size
        roles = {"publisher": pub.pid or 0, "bench": os.getpid()}
        roles |= {f"ingest-{k}": p.pid or 0 for k, p in enumerate(procs)} | (watch or {})
        cpu = RoleCpu(roles, with_children=frozenset({"postgres"}))
        cpu.start()
        t0 = time.perf_counter()
        go.set()
        deadline = t0 + 300
        while sum(v.value for v in stored_by) < total and time.perf_counter() < deadline:
            time.sleep(0.01)
        seconds = time.perf_counter() - t0
        cpu_used = cpu.stop()
        done.set()
        stored = reader.count_samples()
        expected_wm = n_batches * size - 1
        watermarks_ok = all(reader.highest_contiguous_seq(s) == expected_wm for s in _sites(n_sites))
        reader.close()
        pub.join(60)
    finally:
        done.set()
        stop.set()
        counts: dict[int, int] = {}
        for _ in procs:
            with contextlib.suppress(Exception):
                k, n = out.get(timeout=30)
                counts[k] = n
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.terminate()
    return IngestFigures(
        workers=workers,
        samples=stored,
        seconds=seconds,
        per_worker=tuple(counts.get(k, 0) for k in range(workers)),
        watermarks_ok=watermarks_ok,
        cpu_s=cpu_used,
    )


@dataclass(frozen=True)
class InProcessIngest:
    """One `ingest_in_process` run: samples stored, seconds, duplicates the controller dropped."""

    samples: int
    seconds: float
    duplicates: int

    @property
    def samples_per_s(self) -> float:
        """Ingest throughput of the one controller (0 if nothing was timed)."""
        return self.samples / self.seconds if self.seconds > 0 else 0.0


async def ingest_in_process(
    port: int, store_path: Path, *, n_sites: int = 20, n_batches: int = 20, size: int = 500
) -> InProcessIngest:
    """One controller (all roles, dispatch off) in this process; an aiomqtt publisher pushes the batches.

    Published QoS 1; timed from the first publish until every sample is stored.
    """
    import aiomqtt

    from cloud_controller import AssetRef, CloudConfig, CloudController, Registry, SiteRef
    from protocols.clock import RealClock

    sites = _sites(n_sites)
    registry = Registry(sites=tuple(SiteRef(s, i, (AssetRef(METER, "meter"),)) for i, s in enumerate(sites)))
    cfg = CloudConfig.model_validate(
        {
            "broker": {"port": port, "client_id": "bench-cloud"},
            "store": {"path": str(store_path)},
            "control": {"dispatch": False},
            "api": {"enabled": False},
        }
    )
    ctl = CloudController(cfg, registry, clock=RealClock())
    task = asyncio.create_task(ctl.run())
    payloads = telemetry_payloads(sites, n_batches, size)
    total = n_sites * n_batches * size
    try:
        await ctl.session.wait_connected(10)
        async with aiomqtt.Client("127.0.0.1", port, max_queued_outgoing_messages=0) as pub:
            t0 = time.perf_counter()
            for topic, payload in payloads:
                await pub.publish(topic, payload, qos=1)
            async with asyncio.timeout(120):
                while ctl.ingest.stats.samples_stored < total:  # noqa: ASYNC110 (a counter, no event to wait on)
                    await asyncio.sleep(0.01)
            seconds = time.perf_counter() - t0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return InProcessIngest(samples=total, seconds=seconds, duplicates=ctl.ingest.stats.duplicates)


@dataclass(frozen=True)
class WritePathFigures:
    """The store side alone: the same small messages one transaction each, then `batch` per transaction."""

    kind: str
    messages: int
    per_message_s: float
    batched_s: float
    batch: int

    @property
    def speedup(self) -> float:
        """How many times faster the batched writes stored the same messages."""
        return self.per_message_s / self.batched_s if self.batched_s > 0 else 0.0


def write_path_figures(
    store_of: Any, kind: str, *, n_sites: int = 20, n_messages: int = 2_000, size: int = 2, batch: int = 200
) -> WritePathFigures:
    """Time `write_samples` per message (the anchor) against `write_batches` of `batch` messages.

    `store_of(tag)` opens an empty store; both halves write the same messages (seq
    contiguous per site, sites interleaved), so every watermark must end at the last seq.
    """
    from protocols.messages import Sample

    sites = _sites(n_sites)
    messages = [
        (
            sites[m % n_sites],
            [
                Sample(
                    seq=(m // n_sites) * size + i,
                    asset=Points.METER_P_KW.asset,
                    point=Points.METER_P_KW.point,
                    value=float(i),
                    unit="kW",
                    ts=T0 + timedelta(seconds=(m // n_sites) * size + i),
                )
                for i in range(size)
            ],
        )
        for m in range(n_messages)
    ]
    last = (n_messages // n_sites) * size - 1
    one = store_of("per-message")
    t0 = time.perf_counter()
    for site, samples in messages:
        one.write_samples(site, samples)
    per_message_s = time.perf_counter() - t0
    ok = set(one.watermarks().values()) == {last}
    one.close()
    many = store_of("batched")
    t0 = time.perf_counter()
    for k in range(0, len(messages), batch):
        many.write_batches(messages[k : k + batch])
    batched_s = time.perf_counter() - t0
    ok = ok and set(many.watermarks().values()) == {last}
    many.close()
    if not ok:
        raise RuntimeError(f"{kind}: a watermark is not at seq {last}")
    return WritePathFigures(kind, n_messages, per_message_s, batched_s, batch)
