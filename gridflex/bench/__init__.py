"""`gridflex bench ...`: benchmarks that print figures (never pass/fail timing tests).

One home for every benchmark, one module per subject (`contract`, `study`, `ingest`,
`loop`; `dispatch` is a package of its own). This module holds only the typer commands:
they call a subject's public functions and print its figures as a table. Each command
with several sections takes `--only` to run some of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gridflex.bench.areas_cli import register as register_areas
from gridflex.bench.chain import register as register_chain
from gridflex.bench.market_relief_cli import register as register_market_relief

__all__ = ["CONTRACT_PARTS", "DISPATCH_PARTS", "bench_app", "parse_parts"]

bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
console = Console()

CONTRACT_PARTS = ("codec", "mqtt")
DISPATCH_PARTS = ("rundcopp", "step", "mpc")


def parse_parts(values: Sequence[str] | None, known: Sequence[str]) -> tuple[str, ...]:
    """`--only a --only b` or `--only a,b` → the parts in `known`'s order (all when none given)."""
    if not values:
        return tuple(known)
    chosen = {p.strip() for v in values for p in v.split(",") if p.strip()}
    unknown = sorted(chosen - set(known))
    if unknown:
        raise typer.BadParameter(
            f"unknown part(s) {', '.join(unknown)}; known: {', '.join(known)}", param_hint="--only"
        )
    if not chosen:
        raise typer.BadParameter("no part given", param_hint="--only")
    return tuple(p for p in known if p in chosen)


def _figures_table(title: str) -> Table:
    """The figure / value / target table every benchmark prints."""
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    return table


@bench_app.command("contract")
def bench_contract(
    n_messages: Annotated[int, typer.Option(help="Messages per MQTT throughput run.")] = 50_000,
    skip_mqtt: Annotated[bool, typer.Option(help="Only the in-process codec figures.")] = False,
    protocol: Annotated[str, typer.Option(help="MQTT protocol of the subscriber: 5 or 3.1.1.")] = "5",
    only: Annotated[
        list[str] | None, typer.Option("--only", help="parts to run (repeat or comma list): codec, mqtt")
    ] = None,
) -> None:
    """Codec µs per message, and ingest msg/s + latency through a real Mosquitto on loopback."""
    from gridflex.bench.contract import codec_figures, mqtt_ingest_figures

    parts = parse_parts(only, CONTRACT_PARTS)
    table = _figures_table(f"gridflex bench contract (subscriber MQTT {protocol})")
    if "codec" in parts:
        targets = {"decode x1 msgs/s (one core)": ">= 100,000"}
        for name, value in codec_figures().items():
            table.add_row(name, f"{value:,.1f}", targets.get(name, ""))
    if "mqtt" in parts and not skip_mqtt:
        from gridflex.ops.broker import MosquittoBroker

        with MosquittoBroker() as broker:
            runs = [
                ("QoS 0 ingest", 0, n_messages, None, ">= 15,000 msg/s"),
                ("QoS 1 ingest", 1, n_messages, None, ">= 5,000 msg/s"),
                ("QoS 1 at 1,000 msg/s", 1, 5_000, 1000.0, "p99 < 5 ms"),
            ]
            for label, qos, n, rate, target in runs:
                result = asyncio.run(
                    mqtt_ingest_figures(broker.port, n, qos, rate, "3.1.1" if protocol == "3.1.1" else "5")
                )
                table.add_row(
                    f"{label}: msgs/s (received {result['received']:,.0f}/{result['sent']:,.0f})",
                    f"{result['msgs/s']:,.0f}",
                    target if rate is None else "",
                )
                table.add_row(
                    f"{label}: publish->receive p50 / p99 ms",
                    f"{result['p50 ms']:.2f} / {result['p99 ms']:.2f}",
                    target if rate else "",
                )
    console.print(table)


@bench_app.command("dispatch")
def bench_dispatch(
    steps: Annotated[int, typer.Option(help="rundcopp comparison steps and warm re-solves per size.")] = 20,
    sizes: Annotated[str, typer.Option(help="Comma-separated building counts.")] = "100,1000,10000",
    mpc_sites: Annotated[int, typer.Option(help="Buildings in the multi-period MPC case.")] = 1000,
    mpc_steps: Annotated[int, typer.Option(help="Periods of the MPC case (15 min each).")] = 96,
    time_limit_s: Annotated[float, typer.Option(help="Give up on a size after this long.")] = 120.0,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="parts to run (repeat or comma list): rundcopp, step, mpc"),
    ] = None,
) -> None:
    """Engine vs pandapower rundcopp (ms/step, ratio), single-step dispatch at scale, MPC."""
    from gridflex.bench.dispatch import format_result, run_dispatch_bench

    result = run_dispatch_bench(
        steps=steps,
        sizes=tuple(int(s) for s in sizes.split(",") if s.strip()),
        mpc_sites=mpc_sites,
        mpc_steps=mpc_steps,
        time_limit_s=time_limit_s,
        only=parse_parts(only, DISPATCH_PARTS),
    )
    print(format_result(result))


@bench_app.command("congestion")
def bench_congestion(
    scenarios: Annotated[str, typer.Option(help="Comma-separated scenario counts.")] = "10,100,1000",
    ac_max: Annotated[int, typer.Option(help="Run the full AC batch up to this many scenarios.")] = 1000,
    repeats: Annotated[int, typer.Option(min=1, help="Timed repeats of the fast method.")] = 3,
) -> None:
    """Probabilistic congestion forecast, 96 intervals of the 319-household region: fast vs AC batch."""
    from gridflex.bench.congestion import run_congestion_bench

    counts = tuple(int(s) for s in scenarios.split(",") if s.strip())
    rows, st = run_congestion_bench(counts, repeats=repeats, ac_max=ac_max)
    table = Table(
        title=(
            f"gridflex bench congestion: {st['households']:.0f} households, {st['branches']:.0f} branches, "
            f"{st['buses']:.0f} buses, {st['intervals']:.0f} intervals (anchor: 3 x 1000^3 matmul "
            f"{st['anchor_s']:.2f} s; model build {st['build_s']:.2f} s)"
        )
    )
    for col in (
        "scenarios",
        "fast s",
        "fast first s",
        "AC s",
        "AC / fast",
        "max |Δ loading| pp",
        "max |ΔV| pu",
        "stats |Δ| pp",
        "|Δ P(exceed)|",
        "target",
    ):
        table.add_column(col, justify="right")

    def fmt(x: float | None, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    for r in rows:
        table.add_row(
            str(r.scenarios),
            f"{r.fast_s:.3f}",
            f"{r.fast_first_s:.3f}",
            fmt(r.ac_s, ".2f"),
            fmt(r.ratio, ".1f"),
            fmt(r.loading_err_pp, ".3f"),
            fmt(r.voltage_err_pu, ".5f"),
            fmt(r.stats_err_pp, ".3f"),
            fmt(r.p_exceed_diff, ".3f"),
            "fast <= 0.3 s, <= 1 pp" if r.scenarios == 100 else "",
        )
    wide = Console(width=max(console.width, 160))  # ten numeric columns: never truncated
    wide.print(table)
    wide.print(
        f"peak expected loading {st['peak_loading_pct']:.1f} %, lowest p10 voltage {st['min_p10_pu']:.3f} pu"
    )
    wide.print(
        f"first forecast of a new model (100 scenarios, target <= 0.3 s): cold {st['first_cold_s']:.3f} s, "
        f"after prepare() {st['first_prepared_s']:.3f} s (prepare {st['prepare_s']:.2f} s), "
        f"warm {st['first_warm_s']:.3f} s; cold / warm {st['first_cold_s'] / st['first_warm_s']:.2f}, "
        f"cold / anchor {st['first_cold_s'] / st['anchor_s']:.2f}"
    )


@bench_app.command("study")
def bench_study(
    scenario: Annotated[str, typer.Option(help="Scenario to time over the whole year.")] = "stor",
    stress: Annotated[str, typer.Option(help="Stress level for policy scenarios.")] = "critical",
) -> None:
    """One scenario-year (35,040 steps) of the Schutterwald study: solve time, AC check time, RSS."""
    from gridflex.bench.study import run_study_bench

    fig = run_study_bench(scenario, stress)
    steps = fig.steps
    table = _figures_table(
        f"gridflex bench study: {scenario}, one year ({steps:,} steps, {fig.households} households)"
    )
    table.add_row("region + households + year profiles (s)", f"{fig.inputs_s:.1f}", "")
    table.add_row("per-step OPF over the year, incl. engine build (s)", f"{fig.run_s:.1f}", "<= 15")
    table.add_row("  of which solves (by site or HiGHS) + updates (s)", f"{fig.solve_s:.1f}", "")
    table.add_row("  ms per step", f"{fig.solve_ms_per_step:.2f}", "")
    table.add_row(
        "  steps answered site by site (certified, no HiGHS)",
        f"{fig.steps_by_site:,} of {steps:,} ({fig.steps_by_site / steps:.1%})",
        "",
    )
    table.add_row("AC check, power-grid-model batch (s)", f"{fig.ac_check_s:.1f}", "")
    table.add_row("OPF + AC check (s)", f"{fig.run_s + fig.ac_check_s:.1f}", "<= 30")
    table.add_row(
        "AC vs DC at the HV/MV station, mean / max (%)",
        f"{fig.ac_dc_mean_rel_pct:.2f} / {fig.ac_dc_max_rel_pct:.2f}",
        "< 5 (the Schutterwald study)",
    )
    table.add_row("peak RSS (MB)", f"{fig.rss_mb:,.0f}", "< 4,096")
    Console().print(table)


@bench_app.command("ingest")
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
    for col in ("store", "batch (messages)", "workers", "samples/s", "x anchor", "per worker", "watermarks"):
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
                    fig = bench_ingest_workers(
                        n,
                        port=broker.port,
                        workdir=tmp,
                        n_sites=sites,
                        n_batches=batches,
                        size=size,
                        store=store,
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
                    )
                    console.print(" | ".join(row))  # as it comes: a long sweep shows its rows early
                    table.add_row(*row)
    console.print(table)


@bench_app.command("ingest-store")
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


@bench_app.command("store")
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


@bench_app.command("loop")
def bench_loop(
    sites: Annotated[int, typer.Option(min=1, max=319, help="simulated buildings, one agent each")] = 100,
    minutes: Annotated[float, typer.Option(min=1.0, help="real minutes to run (one plan a minute)")] = 3.0,
) -> None:
    """Command round trip (plan decision to `applied` ack) p50/p99 in the real-time closed loop."""
    from gridflex.bench.loop import bench_command_latency

    fig = bench_command_latency(sites, minutes)
    table = _figures_table(f"gridflex bench loop ({sites} sites, {minutes:g} min real time, 60 s period)")
    table.add_row("commands sent / answered", f"{fig.commands:,} / {fig.answered:,}", "")
    table.add_row(
        "decision -> ack p50 / p99 / max (ms)",
        f"{fig.p50_ms:.0f} / {fig.p99_ms:.0f} / {fig.max_ms:.0f}",
        "p99 < 250",
    )
    table.add_row("plans, last solve (ms)", f"{fig.plans}, {fig.last_solve_ms:.0f}", "")
    table.add_row("process peak RSS (buildings + agents + controller)", f"{fig.rss_mb:,.0f} MB", "")
    console.print(table)


@bench_app.command("testbed")
def bench_testbed(  # noqa: PLR0913, PLR0917 (typer: one parameter per option)
    buildings: Annotated[int, typer.Option(min=1, help="buildings, each with its edge agent")] = 1000,
    processes: Annotated[int, typer.Option(min=1, help="building processes (<= 999 buildings each)")] = 2,
    workers: Annotated[int, typer.Option(min=1, help="controller ingest worker processes")] = 2,
    duration: Annotated[float, typer.Option(min=0.1, help="measured window (wall s)")] = 30.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="wall s after every agent connected")] = 10.0,
    poll_s: Annotated[float, typer.Option("--poll-s", min=0.1, help="agent poll interval (s)")] = 5.0,
    max_age_s: Annotated[
        float | None,
        typer.Option(
            "--max-age-s", help="agent heartbeat of an unchanged point (= poll-s: every point every poll)"
        ),
    ] = None,
    anchor: Annotated[
        int, typer.Option(min=0, help="messages of the bare broker anchor run at 1,000 msg/s (0 = none)")
    ] = 5_000,
    batch_messages: Annotated[
        int, typer.Option(min=0, help="workers' store.ingest_batch_messages (0 = a transaction per message)")
    ] = 200,
) -> None:
    """N buildings with real agents over P processes, one Mosquitto, k ingest workers: rates, loss, latency, CPU."""
    from gridflex.bench.testbed import TestbedRun
    from gridflex.bench.testbed import bench_testbed as run_bench

    try:
        run = TestbedRun(
            buildings=buildings,
            processes=processes,
            workers=workers,
            duration_s=duration,
            warmup_s=warmup,
            poll_s=poll_s,
            max_age_s=max_age_s,
            anchor_messages=anchor,
            batch_messages=batch_messages,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    fig = run_bench(run)
    table = _figures_table(
        f"gridflex bench testbed ({buildings} buildings x {processes} processes, {workers} ingest workers, "
        f"poll {poll_s:g} s, heartbeat {run.heartbeat_s:g} s, ingest batches of <= {batch_messages} messages)"
    )
    table.add_row("start: every agent connected (s)", f"{fig.start_s:.1f}", "")
    table.add_row("samples/s produced (PUBACKed)", f"{fig.produced_per_s:,.0f}", "")
    table.add_row("samples/s stored", f"{fig.stored_per_s:,.0f}", "= produced")
    table.add_row("samples lost (published - stored after drain)", f"{fig.lost:,}", "0")
    table.add_row("latency sample ts -> stored p50 (ms)", f"{fig.latency_p50_ms:,.1f}", "")
    table.add_row("latency sample ts -> stored p99 (ms)", f"{fig.latency_p99_ms:,.1f}", "")
    table.add_row("latency batch publish -> stored p50 (ms)", f"{fig.publish_p50_ms:,.1f}", "")
    table.add_row("latency batch publish -> stored p99 (ms)", f"{fig.publish_p99_ms:,.1f}", "")
    table.add_row("stored per worker (whole run)", " / ".join(f"{c:,}" for c in fig.per_worker), "")
    for load in fig.loads:
        table.add_row(f"CPU % of a core / RSS MB: {load.role}", f"{load.cpu_pct:.0f} / {load.rss_mb:.0f}", "")
    if fig.anchor:
        table.add_row(
            "anchor: bare broker QoS 1 at 1,000 msg/s: received",
            f"{fig.anchor['received']:,.0f} of {fig.anchor['sent']:,.0f}",
            "",
        )
        table.add_row(
            "anchor: bare broker QoS 1 p50 / p99 (ms)",
            f"{fig.anchor['p50 ms']:.1f} / {fig.anchor['p99 ms']:.1f}",
            "",
        )
    console.print(table)


register_chain(bench_app, console, _figures_table)  # records, uftp, settlement, market, dr-selection
register_areas(bench_app)  # the MPC by area on 1 worker vs N
register_market_relief(bench_app)  # the market's relief per EUR on the twin, reference vs market per seed
