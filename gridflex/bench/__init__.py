"""`gridflex bench ...`: benchmarks that print figures (never pass/fail timing tests).

`bench contract` measures the codec in-process and the MQTT path through a real
Mosquitto child process on loopback, with the publisher in a separate process so the
subscriber's figures are one process's ingest capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import socket
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from protocols.codec import decode, encode
from protocols.messages import Command, Sample, TelemetryBatch
from protocols.topics import site_topic

bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
console = Console()

TS = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
TOPIC = site_topic("b001", "telemetry")


def telemetry(n_samples: int, msg_id: str = "m") -> TelemetryBatch:
    return TelemetryBatch(
        site="b001",
        ts=TS,
        msg_id=msg_id,
        samples=[
            Sample(seq=i, asset="bat1", point="p_kw", value=1.25 + i, unit="kW", ts=TS)
            for i in range(n_samples)
        ],
    )


def _per_call_us(fn: object, n: int) -> float:
    call = fn  # typed loosely: a zero-argument callable
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            call()  # type: ignore[operator]
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def codec_figures(n: int = 20_000) -> dict[str, float]:
    """Microseconds per call, best of three runs."""
    one = encode(telemetry(1))
    fifty = encode(telemetry(50))
    cmd = Command(
        site="b001",
        ts=TS,
        cmd_id="c1",
        asset="bat1",
        kind="p_setpoint_kw",
        value=-3.0,
        valid_from=TS,
        valid_until=TS + timedelta(minutes=15),
    )
    figures = {
        "decode telemetry x1 (us)": _per_call_us(lambda: decode(TOPIC, one), n),
        "decode telemetry x50 (us)": _per_call_us(lambda: decode(TOPIC, fifty), max(1, n // 20)),
        "encode command (us)": _per_call_us(lambda: encode(cmd), n),
    }
    figures["decode x1 msgs/s (one core)"] = 1e6 / figures["decode telemetry x1 (us)"]
    figures["payload bytes x1"] = len(one)
    return figures


def _publisher(port: int, n: int, qos: int, rate_per_s: float | None, ready: object) -> None:
    """Runs in its own process: publish `n` single-sample batches (msg_id = send time ns)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{qos}", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    ready.wait(10)  # type: ignore[attr-defined]
    template = encode(telemetry(1, msg_id="0" * 19))
    interval = 1.0 / rate_per_s if rate_per_s else 0.0
    next_t = time.perf_counter()
    for _ in range(n):
        payload = template.replace(b'"0000000000000000000"', f'"{time.time_ns():019d}"'.encode())
        info = client.publish(TOPIC, payload, qos=qos)
        while info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # checked: paho refuses silently otherwise
            time.sleep(0.001)
            info = client.publish(TOPIC, payload, qos=qos)
        if interval:
            next_t += interval
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    time.sleep(0.5)
    client.loop_stop()
    client.disconnect()


async def _ingest(
    port: int, n: int, qos: int, rate_per_s: float | None, protocol: Literal["5", "3.1.1"] = "5"
) -> dict[str, float]:
    """Subscribe with our MqttSession, decode every message, time the lot."""
    from protocols.mqtt import MqttConfig, MqttSession

    received = 0
    latencies_ms: list[float] = []
    first_t = last_t = 0.0
    done = asyncio.Event()

    async def handler(message: object) -> None:
        nonlocal received, first_t, last_t
        now_ns = time.time_ns()
        msg = decode(str(message.topic), message.payload)  # type: ignore[attr-defined]
        latencies_ms.append((now_ns - int(msg.msg_id)) / 1e6)
        if received == 0:
            first_t = time.perf_counter()
        received += 1
        last_t = time.perf_counter()
        if received >= n:
            done.set()

    session = MqttSession(
        MqttConfig(port=port, client_id=f"bench-sub-{qos}", clean_start=True, protocol=protocol),
        subscriptions=[(TOPIC, qos)],
    )
    task = asyncio.create_task(session.run(handler))
    await session.wait_connected(10)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_publisher, args=(port, n, qos, rate_per_s, ready))
    proc.start()
    ready.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout=60 + (n / rate_per_s if rate_per_s else 0))
    proc.join(30)
    task.cancel()
    elapsed = max(last_t - first_t, 1e-9)
    latencies_ms.sort()
    return {
        "received": received,
        "sent": n,
        "msgs/s": (received - 1) / elapsed if received > 1 else 0.0,
        "p50 ms": statistics.median(latencies_ms) if latencies_ms else float("nan"),
        "p99 ms": latencies_ms[int(0.99 * (len(latencies_ms) - 1))] if latencies_ms else float("nan"),
    }


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
) -> None:
    """Codec µs per message, and ingest msg/s + latency through a real Mosquitto on loopback."""
    table = _figures_table(f"gridflex bench contract (subscriber MQTT {protocol})")
    codec = codec_figures()
    targets = {"decode x1 msgs/s (one core)": ">= 100,000"}
    for name, value in codec.items():
        table.add_row(name, f"{value:,.1f}", targets.get(name, ""))
    if not skip_mqtt:
        from gridflex.ops.broker import MosquittoBroker

        with MosquittoBroker() as broker:
            runs = [
                ("QoS 0 ingest", 0, n_messages, None, ">= 15,000 msg/s"),
                ("QoS 1 ingest", 1, n_messages, None, ">= 5,000 msg/s"),
                ("QoS 1 at 1,000 msg/s", 1, 5_000, 1000.0, "p99 < 5 ms"),
            ]
            for label, qos, n, rate, target in runs:
                result = asyncio.run(
                    _ingest(broker.port, n, qos, rate, "3.1.1" if protocol == "3.1.1" else "5")
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
) -> None:
    """Engine vs pandapower rundcopp (ms/step, ratio), single-step dispatch at scale, MPC."""
    from cloud_controller.dispatch.bench import format_result, run_dispatch_bench

    result = run_dispatch_bench(
        steps=steps,
        sizes=tuple(int(s) for s in sizes.split(",") if s.strip()),
        mpc_sites=mpc_sites,
        mpc_steps=mpc_steps,
        time_limit_s=time_limit_s,
    )
    print(format_result(result))


@bench_app.command("study")
def bench_study(
    scenario: Annotated[str, typer.Option(help="Scenario to time over the whole year.")] = "stor",
    stress: Annotated[str, typer.Option(help="Stress level for policy scenarios.")] = "critical",
) -> None:
    """One scenario-year (35,040 steps) of the seed-001 study: solve time, AC check time, RSS."""
    import resource

    from cloud_controller.study import StudyConfig, load_inputs, run_scenario, validate_run

    t0 = time.perf_counter()
    inputs = load_inputs(StudyConfig(), quick=False)
    t_inputs = time.perf_counter() - t0
    t1 = time.perf_counter()
    run = run_scenario(inputs, scenario, None if scenario == "stor" else stress)
    t_run = time.perf_counter() - t1
    t2 = time.perf_counter()
    ac = validate_run(inputs, run)
    t_pf = time.perf_counter() - t2
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps = inputs.prof.n_steps
    table = _figures_table(
        f"gridflex bench study: {scenario}, one year ({steps:,} steps, {inputs.pop.n} households)"
    )
    table.add_row("region + households + year profiles (s)", f"{t_inputs:.1f}", "")
    table.add_row("per-step OPF over the year, incl. engine build (s)", f"{t_run:.1f}", "<= 15")
    table.add_row("  of which solves (by site or HiGHS) + updates (s)", f"{run.solve_s:.1f}", "")
    table.add_row("  ms per step", f"{run.solve_s / steps * 1e3:.2f}", "")
    table.add_row(
        "  steps answered site by site (certified, no HiGHS)",
        f"{run.steps_by_site:,} of {steps:,} ({run.steps_by_site / steps:.1%})",
        "",
    )
    table.add_row("AC check, power-grid-model batch (s)", f"{t_pf:.1f}", "")
    table.add_row("OPF + AC check (s)", f"{t_run + t_pf:.1f}", "<= 30")
    table.add_row(
        "AC vs DC at the HV/MV station, mean / max (%)",
        f"{ac['ac_dc_mean_rel_pct']:.2f} / {ac['ac_dc_max_rel_pct']:.2f}",
        "< 5 (seed 001)",
    )
    table.add_row("peak RSS (MB)", f"{rss_mb:,.0f}", "< 4,096")
    Console().print(table)


@bench_app.command("ingest")
def bench_ingest(
    workers: Annotated[
        list[int] | None, typer.Option("--workers", help="worker counts to run (repeat)")
    ] = None,
    sites: Annotated[int, typer.Option(help="sites publishing")] = 20,
    batches: Annotated[int, typer.Option(help="batches per site")] = 20,
    size: Annotated[int, typer.Option(help="samples per batch")] = 500,
) -> None:
    """Controller ingest samples/s through Mosquitto with 1 and 2 workers on `$share/gridflex-ingest`."""
    import tempfile
    from pathlib import Path

    from gridflex.bench.ingest import bench_ingest_workers
    from gridflex.ops.broker import MosquittoBroker

    counts = workers or [1, 2]
    table = Table(title=f"gridflex bench ingest ({sites} sites x {batches} batches x {size} samples, QoS 1)")
    for col in ("workers", "samples/s", "per worker (samples stored)", "watermarks right", "target"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(workdir=Path(tmp) / "mosquitto") as broker:
        for n in counts:
            fig = bench_ingest_workers(
                n, port=broker.port, workdir=Path(tmp), n_sites=sites, n_batches=batches, size=size
            )
            table.add_row(
                str(n),
                f"{fig.samples_per_s:,.0f}",
                " / ".join(f"{c:,}" for c in fig.per_worker),
                "yes" if fig.watermarks_ok else "NO",
                ">= 50,000 per worker" if n == 1 else "the split",
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
