"""`gridflex testbed`: N simulated buildings, each with its own edge agent, against an external broker.

This is the compose test bed's building container: equipment over real Modbus/BACnet
sockets inside the container, agents publishing to the deployment's Mosquitto with
their own credentials (`gridflex deploy-config` generates them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from gridflex.cli.core import SITES_MAX, LogLevel

__all__ = ["register"]


def _parse_start(text: str) -> datetime:
    if text == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time or 'now': {text!r}") from None
    return start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)


async def _main(  # noqa: PLR0917
    sites: int,
    seed: int,
    speed: float,
    start: datetime,
    out: Path,
    broker_host: str,
    broker_port: int,
    secrets: Path | None,
    bacnet: bool,
    duration: float | None,
    poll_s: float,
    *,
    start_now: bool = False,
) -> None:
    from gridflex.loop.agents import Fleet, FleetOptions
    from protocols.clock import SimClock
    from simulators.testbed import TestBedConfig

    bed_cfg = TestBedConfig(
        n_sites=sites,
        seed=seed,
        start=start,
        step_s=max(1.0, speed * 0.1),
        broker_host=broker_host,
        broker_port=broker_port,
        bacnet=bacnet,
    )
    options = FleetOptions(
        poll_interval_s=poll_s,
        poll_max_age_s=max(60.0, 15 * poll_s),
        fallback_after_s=max(300.0, 40 * poll_s),
        secrets_dir=secrets,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"testbed: starting {sites} buildings + agents (broker {broker_host}:{broker_port})", flush=True)
    async with Fleet(bed_cfg, bed_clock=SimClock(start), out_dir=out, options=options) as fleet:
        # `--start now` means when the buildings start running: starting the servers and
        # agents takes up to a minute on a busy machine, and agents whose clock lags the
        # controller's wall clock by that reject every command (clock_skew).
        fleet.start(SimClock(datetime.now(UTC) if start_now else start, speed=speed))
        print(f"testbed: running; manifest {out / 'manifest.json'}", flush=True)
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)
            failed = fleet.failed()
            if failed:
                for name, exc in failed.items():
                    print(f"testbed: {name} failed: {exc!r}", flush=True)
                raise typer.Exit(1)
            published = sum(a.stats.published for a in fleet.agents.values())
            connected = sum(a.stats.connected for a in fleet.agents.values())
            print(
                f"testbed: {fleet.bed.clock.now():%Y-%m-%d %H:%M} | agents connected {connected}/{sites} | "
                f"samples published {published} | Σp_net {fleet.bed.p_net_kw:.1f} kW",
                flush=True,
            )
    print("testbed: stopped", flush=True)


def register(app: typer.Typer) -> None:
    """Add `gridflex testbed` to the `gridflex` app."""

    @app.command("testbed")
    def testbed(  # noqa: PLR0917 (typer options are parameters)
        out: Annotated[
            Path,
            typer.Option("--out", metavar="DIR", help="directory for manifest.json, sites/*.yaml, state/"),
        ],
        sites: Annotated[int, typer.Option("--sites", min=1, max=SITES_MAX, help="number of buildings")] = 10,
        seed: Annotated[int, typer.Option("--seed", help="seed of the asset mix and profiles")] = 1,
        speed: Annotated[
            float, typer.Option("--speed", min=0.001, help="simulated s per wall s (1 = real time)")
        ] = 1.0,
        start: Annotated[
            str, typer.Option("--start", help="simulated start, ISO 8601 (UTC), or 'now'")
        ] = "now",
        broker_host: Annotated[str, typer.Option("--broker-host", help="MQTT broker host")] = "127.0.0.1",
        broker_port: Annotated[
            int, typer.Option("--broker-port", min=1, max=65535, help="MQTT broker port")
        ] = 1883,
        secrets: Annotated[
            Path | None,
            typer.Option(
                "--secrets",
                metavar="DIR",
                help="directory with <site>.pw broker passwords (user = site id)",
                show_default="anonymous",
            ),
        ] = None,
        bacnet: Annotated[
            bool, typer.Option("--bacnet/--no-bacnet", help="one BACnet BMS per building")
        ] = True,
        duration: Annotated[
            float | None,
            typer.Option(
                "--duration",
                min=0.0,
                help="stop after this long (wall s)",
                show_default="until Ctrl-C/SIGTERM",
            ),
        ] = None,
        poll_s: Annotated[
            float, typer.Option("--poll-s", min=0.1, help="agent poll interval (simulated s)")
        ] = 5.0,
        log_level: Annotated[
            LogLevel, typer.Option(case_sensitive=False, help="log level")
        ] = LogLevel.WARNING,
    ) -> None:
        """Run simulated buildings, each with its edge agent, publishing to an external MQTT broker."""
        logging.basicConfig(level=log_level.value, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if secrets is not None and not secrets.is_dir():
            raise typer.BadParameter(f"{secrets}: not a directory", param_hint="--secrets")
        asyncio.run(
            _main(
                sites,
                seed,
                speed,
                _parse_start(start),
                out,
                broker_host,
                broker_port,
                secrets,
                bacnet,
                duration,
                poll_s,
                start_now=start == "now",
            )
        )
