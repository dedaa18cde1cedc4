"""`gridflex bench ingest|ingest-store|store`: samples/s into the controller's stores, through Mosquitto or direct."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer
from rich.table import Table

from gridflex.bench.common import console

__all__ = ["bench_ingest", "bench_ingest_store", "bench_store", "register"]


def register(app: typer.Typer) -> None:
    """Add `ingest`, `ingest-store` and `store` to `gridflex bench` (in this order: `--help` lists them so)."""
    app.command("ingest")(bench_ingest)
    app.command("ingest-store")(bench_ingest_store)
    app.command("store")(bench_store)


def bench_ingest(
    workers: Annotated[
        list[int] | None, typer.Option("--workers", help="worker counts to run (repeat)")
    ] = None,
    sites: Annotated[int, typer.Option(help="sites publishing")] = 20,
    batches: Annotated[int, typer.Option(help="batches per site")] = 20,
    size: Annotated[int, typer.Option(help="samples per batch")] = 500,
    stores: Annotated[
        list[str] | None, typer.Option("--store", help="sqlite and/or postgres (repeat; default both)")
    ] = None,
    batch_messages: Annotated[
        list[int] | None,
        typer.Option(
            "--batch", help="store.ingest_batch_messages to run (repeat; 0 = a transaction a message)"
        ),
    ] = None,
) -> None:
    """Controller ingest samples/s through Mosquitto: 1, 2, 4 workers on `$share`, SQLite and PostgreSQL, batched or not.

    The anchor, measured in the same run, is the first row (by default SQLite, 1 worker, a
    transaction per message): every row's ratio is against it.
    """
    import tempfile
    from pathlib import Path

    from gridflex.bench.ingest import IngestStore, bench_ingest_workers
    from gridflex.ops.broker import MosquittoBroker
    from gridflex.ops.postgres import LoopbackPostgres

    counts = workers or [1, 2, 4]
    kinds = stores or ["sqlite", "postgres"]
    modes = batch_messages if batch_messages is not None else [0, 200]
    table = Table(title=f"gridflex bench ingest ({sites} sites x {batches} batches x {size} samples, QoS 1)")
    cols = (
        "store",
        "batch (messages)",
        "workers",
        "samples/s",
        "x anchor",
        "per worker",
        "watermarks",
        "wall s",
    )
    for col in (*cols, "CPU s by role"):
        table.add_column(col, justify="right")
    anchor: float | None = None
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        broker = stack.enter_context(MosquittoBroker(workdir=tmp / "mosquitto"))
        pg = stack.enter_context(LoopbackPostgres()) if "postgres" in kinds else None
        for kind in kinds:
            for mode in modes:
                for n in counts:
                    store = IngestStore(kind=kind, batch_messages=mode)
                    if kind == "postgres" and pg is not None:
                        store = IngestStore(
                            kind=kind,
                            dsn=pg.dsn(pg.fresh_schema()),
                            password_file=str(pg.password_file),
                            batch_messages=mode,
                        )
                    watch = {"mosquitto": broker.pid} | (
                        {"postgres": pg.pid} if kind == "postgres" and pg else {}
                    )
                    fig = bench_ingest_workers(
                        n,
                        port=broker.port,
                        workdir=tmp,
                        n_sites=sites,
                        n_batches=batches,
                        size=size,
                        store=store,
                        watch={role: pid for role, pid in watch.items() if pid is not None},
                    )
                    anchor = anchor or fig.samples_per_s or None
                    row = (
                        kind,
                        str(mode) if mode else "off",
                        str(n),
                        f"{fig.samples_per_s:,.0f}",
                        f"{fig.samples_per_s / anchor:.2f}" if anchor else "-",
                        " / ".join(f"{c:,}" for c in fig.per_worker),
                        "right" if fig.watermarks_ok else "WRONG",
                        f"{fig.seconds:.2f}",
                        ", ".join(f"{role} {c:.2f}" for role, c in fig.cpu_s.items()),
                    )
                    console.print(" | ".join(row))  # as it comes: a long sweep shows its rows early
                    table.add_row(*row)
    console.print(table)
    console.print(
        f"load average (1, 5, 15 min) at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
    )


def bench_ingest_store(
    messages: Annotated[int, typer.Option(help="agent messages written")] = 2_000,
    size: Annotated[int, typer.Option(help="samples per message (agents report by exception: 1-2)")] = 2,
    batch: Annotated[int, typer.Option(help="messages per transaction of the batched half")] = 200,
) -> None:
    """The store side of ingest alone: small messages a transaction each (anchor) vs `batch` per transaction."""
    import tempfile
    from pathlib import Path

    from cloud_controller import PostgresStore, SqliteStore
    from gridflex.bench.ingest import write_path_figures
    from gridflex.ops.postgres import LoopbackPostgres

    table = Table(title=f"gridflex bench ingest-store ({messages:,} messages x {size} samples, 20 sites)")
    for col in ("store", "a transaction a message (msg/s)", f"{batch} a transaction (msg/s)", "x anchor"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp, LoopbackPostgres() as pg:
        stores = {
            "sqlite": lambda tag: SqliteStore(Path(tmp) / f"{tag}.sqlite"),
            "postgres": lambda tag: PostgresStore(pg.dsn(pg.fresh_schema()), password=pg.password),
        }
        for kind, store_of in stores.items():
            fig = write_path_figures(store_of, kind, n_messages=messages, size=size, batch=batch)
            table.add_row(
                kind,
                f"{fig.messages / fig.per_message_s:,.0f}",
                f"{fig.messages / fig.batched_s:,.0f}",
                f"{fig.speedup:.1f}",
            )
    console.print(table)


def bench_store(
    writers: Annotated[
        list[int] | None, typer.Option("--workers", help="writer process counts (repeat)")
    ] = None,
    sites: Annotated[int, typer.Option(help="sites written")] = 20,
    batches: Annotated[int, typer.Option(help="batches per site")] = 20,
    size: Annotated[int, typer.Option(help="samples per batch")] = 500,
) -> None:
    """Store samples/s, SQLite vs a loopback PostgreSQL, with 1 and 2 writer processes (anchor: SQLite x1)."""
    import tempfile
    from pathlib import Path

    from gridflex.bench.store import bench_store_writers
    from gridflex.ops.postgres import LoopbackPostgres

    counts = writers or [1, 2]
    table = Table(title=f"gridflex bench store ({sites} sites x {batches} batches x {size} samples)")
    for col in ("store", "writers", "samples/s", "vs SQLite x1", "watermarks right"):
        table.add_column(col, justify="right")
    anchor: float | None = None
    with tempfile.TemporaryDirectory() as tmp, LoopbackPostgres() as pg:
        runs = [("sqlite", n) for n in counts] + [("postgres", n) for n in counts]
        for kind, n in runs:
            location = str(Path(tmp) / f"s{n}.sqlite") if kind == "sqlite" else pg.dsn(pg.fresh_schema())
            fig = bench_store_writers(
                "sqlite" if kind == "sqlite" else "postgres",
                n,
                location=location,
                password=pg.password,
                n_sites=sites,
                n_batches=batches,
                size=size,
            )
            anchor = anchor or fig.samples_per_s
            ratio = fig.samples_per_s / anchor if anchor else 0.0
            table.add_row(
                kind,
                str(n),
                f"{fig.samples_per_s:,.0f}",
                f"{ratio:.2f}",
                "yes" if fig.watermarks_ok else "NO",
            )
    console.print(table)
