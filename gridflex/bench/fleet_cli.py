"""`gridflex bench loop|testbed`: buildings with real agents — the closed loop's command round trip, the test bed's rates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gridflex.bench.common import console, figures_table

if TYPE_CHECKING:
    from gridflex.bench.testbed import CommandFigures

__all__ = ["bench_loop", "bench_testbed", "register"]


def register(app: typer.Typer) -> None:
    """Add `loop` and `testbed` to `gridflex bench` (in this order: `--help` lists them so)."""
    app.command("loop")(bench_loop)
    app.command("testbed")(bench_testbed)


def bench_loop(
    sites: Annotated[int, typer.Option(min=1, max=319, help="simulated buildings, one agent each")] = 100,
    minutes: Annotated[float, typer.Option(min=1.0, help="real minutes to run (one plan a minute)")] = 3.0,
) -> None:
    """Command round trip (plan decision to `applied` ack) p50/p99 in the real-time closed loop."""
    from gridflex.bench.loop import bench_command_latency

    fig = bench_command_latency(sites, minutes)
    table = figures_table(f"gridflex bench loop ({sites} sites, {minutes:g} min real time, 60 s period)")
    table.add_row("commands sent / answered", f"{fig.commands:,} / {fig.answered:,}", "")
    table.add_row(
        "decision -> ack p50 / p99 / max (ms)",
        f"{fig.p50_ms:.0f} / {fig.p99_ms:.0f} / {fig.max_ms:.0f}",
        "p99 < 250",
    )
    table.add_row("plans, last solve (ms)", f"{fig.plans}, {fig.last_solve_ms:.0f}", "")
    table.add_row("process peak RSS (buildings + agents + controller)", f"{fig.rss_mb:,.0f} MB", "")
    console.print(table)


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
    store: Annotated[
        str, typer.Option(help="the workers' store: sqlite (one file) or postgres (a loopback server)")
    ] = "sqlite",
    commands: Annotated[
        bool, typer.Option(help="a command sender: every site one command per round, decision -> ack latency")
    ] = True,
    command_every_s: Annotated[
        float, typer.Option("--command-every-s", min=0.1, help="the command sender's round interval (s)")
    ] = 5.0,
    modbus_timeout_s: Annotated[
        float,
        typer.Option(
            "--modbus-timeout-s", min=0.01, help="the agents' Modbus request timeout (s; product default 1)"
        ),
    ] = 1.0,
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
            store=store,
            commands=commands,
            command_every_s=command_every_s,
            modbus_timeout_s=modbus_timeout_s,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    fig = run_bench(run)
    table = figures_table(
        f"gridflex bench testbed ({buildings} buildings x {processes} processes, {workers} ingest workers, "
        f"poll {poll_s:g} s, Modbus timeout {modbus_timeout_s:g} s, heartbeat {run.heartbeat_s:g} s, ingest batches of <= {batch_messages} messages, "
        f"store {store})"
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
    if fig.commands is not None:
        _command_rows(table, fig.commands, command_every_s)
    for load in fig.loads:
        table.add_row(f"CPU % of a core / RSS MB: {load.role}", f"{load.cpu_pct:.0f} / {load.rss_mb:.0f}", "")
    table.add_row(
        "load average (1, 5, 15 min) at the end", " ".join(Path("/proc/loadavg").read_text().split()[:3]), ""
    )
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


def _command_rows(table: Any, c: CommandFigures, every_s: float) -> None:
    """The command sender's rows: decision -> applied ack p50/p99 and what became of every command."""
    from gridflex.bench.testbed import percentile

    table.add_row(f"commands: rounds (every {every_s:g} s) / sent", f"{c.rounds} / {c.sent:,}", "")
    acks = ", ".join(f"{k} {v:,}" for k, v in sorted(c.acks.items())) or "none"
    table.add_row(
        "commands: acks / missing / publish failed", f"{acks} / {c.missing:,} / {c.publish_failed:,}", ""
    )
    for reason, n in sorted(c.reasons.items(), key=lambda kv: -kv[1])[:5]:
        table.add_row(f"  refused: {reason}", f"{n:,}", "")
    table.add_row(
        "decision -> applied ack p50 / p99 / max (ms)",
        f"{percentile(list(c.applied_ms), 0.5):,.1f} / {percentile(list(c.applied_ms), 0.99):,.1f}"
        f" / {max(c.applied_ms, default=float('nan')):,.1f}",
        "",
    )
