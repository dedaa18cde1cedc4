"""Commands that belong to no single package: schema, broker, bench contract."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)

#: The most simulated buildings a command runs (`sim`, `testbed`, `twin`, `demo`): one per
#: household of the bundled Schutterwald region (319), so a test bed's manifest.json can
#: always serve as the controller's registry.
SITES_MAX = 319


class LogLevel(StrEnum):
    """The log levels a command accepts (case-insensitive on the command line)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


def show_flags_as_flags() -> None:
    """Help lists a boolean flag (`--quick`, `--bacnet/--no-bacnet`, `--help`) without a `<bool>` type.

    typer 0.29 prints every option's Python type beside it, so a flag read as if it took
    a value (`--quick <bool>`); a flag takes none, and its help says what it switches.
    """
    from typer.core import TyperOption

    if getattr(TyperOption.display_type_rich, "_flags_as_flags", False):
        return
    original = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag else original(self, ctx)

    display_type_rich._flags_as_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign,assignment]


class BrokerBackend(StrEnum):
    """The MQTT broker `gridflex broker` runs; `auto`: mosquitto when installed, else amqtt."""

    auto = "auto"
    mosquitto = "mosquitto"
    amqtt = "amqtt"


def schema(
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write <Message>.schema.json files into.")
    ] = Path("schemas"),
) -> None:
    """Write the JSON Schema of every message of the MQTT contract."""
    from protocols.codec import MODEL_BY_KIND

    out.mkdir(parents=True, exist_ok=True)
    for kind, model in MODEL_BY_KIND.items():
        path = out / f"{model.__name__}.schema.json"
        schema_doc = model.model_json_schema(mode="serialization")
        schema_doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema_doc["x-gridflex-topic-kind"] = kind.value
        path.write_text(json.dumps(schema_doc, indent=2, sort_keys=True) + "\n")
        console.print(f"wrote {path}")


def broker(
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")] = 1883,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    backend: Annotated[
        BrokerBackend, typer.Option(help="mosquitto (child process), amqtt (in-process), or auto.")
    ] = BrokerBackend.auto,
) -> None:
    """Run an MQTT broker for local use until Ctrl-C (mosquitto when installed, else amqtt)."""
    import shutil

    from gridflex.ops.broker import AmqttBroker, MosquittoBroker

    chosen = backend
    if backend is BrokerBackend.auto:
        chosen = (
            BrokerBackend.mosquitto
            if shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()
            else BrokerBackend.amqtt
        )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if chosen is BrokerBackend.mosquitto:
            mosq = MosquittoBroker(host=host, port=port, verbose=True).start()
            console.print(f"mosquitto (pid {mosq.pid}) listening on {host}:{port}; Ctrl-C to stop")
            try:
                while not stop.is_set() and mosq.running:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
                if not mosq.running and not stop.is_set():
                    console.print(f"[red]mosquitto exited[/]: {mosq.log_tail()}")
                    raise typer.Exit(1)
            finally:
                mosq.close()
        else:
            console.print(
                "[yellow]amqtt in-process broker[/] (MQTT 3.1.1, no $share, ~2k QoS 1 msg/s: demo use, <= ~100 sites)"
            )
            async with AmqttBroker(host=host, port=port):
                console.print(f"amqtt listening on {host}:{port}; Ctrl-C to stop")
                await stop.wait()
        console.print("broker stopped")

    asyncio.run(serve())


def deploy_config(
    out: Annotated[
        Path, typer.Option("--out", help="Directory for mosquitto/, ca/, secrets/ and sites.txt.")
    ],
    sites: Annotated[
        int,
        typer.Option(
            "--sites",
            min=1,
            max=100_000,
            help="Number of sites b001..bNNN (real deployments: not bound to the simulated region).",
        ),
    ] = 10,
    rotate: Annotated[
        bool,
        typer.Option(
            "--rotate/--no-rotate",
            help="Generate a new CA, certificates, keys and passwords even where some exist.",
        ),
    ] = False,
    auth: Annotated[
        str,
        typer.Option("--auth", help="certificate (mutual TLS, the default) or password (TLS + passwords)"),
    ] = "certificate",
    broker_name: Annotated[
        list[str] | None,
        typer.Option("--broker-name", help="Host name/IP clients dial the broker by (repeatable)."),
    ] = None,
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            help="HOST:PORT of the broker's TLS listener (a host network: 127.0.0.1:PORT).",
        ),
    ] = "0.0.0.0:8883",
    ingest_workers: Annotated[
        int,
        typer.Option(
            "--ingest-workers",
            min=0,
            max=64,
            help="Also an identity for each of N ingest pods (k8s StatefulSet `ingest`: --worker ingest-<i>).",
        ),
    ] = 0,
) -> None:
    """Write a deployment's Mosquitto TLS config, CA and certificates, signing keys and ACL (deploy/README.md)."""
    from gridflex.ops.deploy_config import (
        BROKER_NAMES,
        CONTROLLER_IDENTITIES,
        ingest_identities,
        site_ids,
        write_deployment,
    )

    if auth not in ("certificate", "password"):
        raise typer.BadParameter("must be certificate or password", param_hint="--auth")
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise typer.BadParameter("must be HOST:PORT, e.g. 127.0.0.1:8883", param_hint="--listen")
    ids = site_ids(sites)
    write_deployment(
        out,
        ids,
        rotate=rotate,
        auth=auth,  # type: ignore[arg-type]
        broker_names=broker_name or BROKER_NAMES,
        listen=(host, int(port)),
        controller_identities=(*CONTROLLER_IDENTITIES, *ingest_identities(ingest_workers)),
    )
    console.print(
        f"wrote broker TLS config, certificates and signing keys for {len(ids)} sites + controller to {out}"
    )


def register(app: typer.Typer) -> None:
    """Add the core commands to the `gridflex` app (and make its help show flags as flags)."""
    from gridflex.bench import bench_app

    show_flags_as_flags()
    app.command("schema")(schema)
    app.command("broker")(broker)
    app.command("deploy-config")(deploy_config)
    app.add_typer(bench_app, name="bench")
