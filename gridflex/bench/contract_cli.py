"""`gridflex bench contract`: the wire contract's codec in process, and ingest through a real Mosquitto."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from gridflex.bench.common import CONTRACT_PARTS, console, figures_table, parse_parts

__all__ = ["bench_contract", "register"]


def register(app: typer.Typer) -> None:
    """Add `contract` to `gridflex bench` (in this order: `--help` lists them so)."""
    app.command("contract")(bench_contract)


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
    table = figures_table(f"gridflex bench contract (subscriber MQTT {protocol})")
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
