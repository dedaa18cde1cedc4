"""`gridflex sim`: run N simulated buildings (Modbus TCP + BACnet/IP on loopback) until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridflex.cli.core import SITES_MAX, LogLevel
from gridflex.cli.ports import address_in_use

if TYPE_CHECKING:
    from rich.console import Console

    from simulators.testbed import TestBed

__all__ = ["register"]

EXIT_USAGE = 2


def _parse_start(text: str) -> datetime:
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}") from None
    return start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)


def _status(bed: object) -> str:
    from simulators.testbed import TestBed

    assert isinstance(bed, TestBed)
    now = bed.clock.now().strftime("%Y-%m-%d %H:%M:%S")
    faults = sum(s.fault != "none" for servers in bed.modbus.values() for s in servers.values())
    return (
        f"{now} UTC | steps {bed.steps} | sites {len(bed.buildings)} | Σp_net {bed.p_net_kw:8.1f} kW | "
        f"modbus reads {bed.modbus_reads} writes {bed.modbus_writes} | faults {faults}"
    )


async def _watch(
    console: Console, bed: TestBed, runner: asyncio.Task[None], stop: asyncio.Event, deadline: float | None
) -> None:
    """Show the status (live on a terminal, every 2 s otherwise) until stopped, the deadline or the physics end."""
    from rich.live import Live

    if console.is_terminal:
        with Live(_status(bed), console=console, refresh_per_second=4, transient=False) as live:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)
                live.update(_status(bed))
                if runner.done():
                    break
        return
    last = 0.0
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
        if time.monotonic() - last >= 2.0:
            last = time.monotonic()
            print(_status(bed), flush=True)
        if runner.done():
            break


async def _main(
    *,
    sites: int,
    speed: float,
    seed: int,
    duration: float | None,
    start: datetime,
    step_s: float | None,
    out: Path,
    bacnet: bool,
    broker_host: str,
    broker_port: int,
    substations: bool = True,
) -> None:
    from rich.console import Console

    from gridflex.loop.substations import SUBSTATIONS_FILE, Substations, region_truth
    from protocols.clock import SimClock
    from simulators.testbed import TestBed, TestBedConfig

    console = Console(stderr=False)
    # Physics at ~10 Hz of wall time whatever the speed: 1 s steps in real time, 90 s at 900x.
    step = step_s if step_s is not None else max(1.0, speed * 0.1)
    cfg = TestBedConfig(
        n_sites=sites,
        seed=seed,
        start=start,
        step_s=step,
        broker_host=broker_host,
        broker_port=broker_port,
        bacnet=bacnet,
    )
    clock = SimClock(start)  # stands still while the servers start ...
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console.print(f"sim: starting {sites} buildings (seed {seed}, speed {speed:g}x, step {step:g} s) ...")
    t0 = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        bed = await stack.enter_async_context(TestBed(cfg, clock, out))
        n_modbus = sum(len(s) for s in bed.modbus.values())
        console.print(
            f"sim: {sites} buildings up in {time.monotonic() - t0:.1f} s: {n_modbus} Modbus servers, "
            f"{len(bed.bms)} BACnet devices; manifest {bed.out_dir / 'manifest.json'}",
            highlight=False,
            soft_wrap=True,
        )
        subs = None
        if substations:
            # After the manifest: the region (pandapower's import, the cut) takes seconds of CPU
            # that would otherwise delay the buildings, which serve meanwhile on a still clock.
            truth = await asyncio.to_thread(region_truth, list(bed.buildings))
            subs = await stack.enter_async_context(
                Substations(truth, out_dir=out, broker_host=broker_host, broker_port=broker_port)
            )
            names = ", ".join(s.site for s in subs.sites)
            where = bed.out_dir / SUBSTATIONS_FILE
            console.print(f"sim: substation meters up: {names}; {where}", highlight=False, soft_wrap=True)
        bed.clock = SimClock(start, speed=speed)  # ... and runs from `start` once they serve
        runner = asyncio.create_task(bed.run(), name="testbed")
        if subs is not None:
            # at most ~4 power flows per wall second, whatever the speed
            subs.start(bed.clock, bed.buildings, update_s=max(step, 0.25 * speed))
        deadline = None if duration is None else time.monotonic() + duration
        try:
            await _watch(console, bed, runner, stop, deadline)
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        if runner.done() and not runner.cancelled() and runner.exception() is not None:
            raise runner.exception()  # type: ignore[misc]
        if subs is not None and subs.last is not None:
            flows = subs.last.station_flow.items()
            text = ", ".join(f"{k} {f.p_kw:.1f} kW {f.v_ln_v:.1f} V" for k, f in flows)
            console.print(f"sim: substations {text}", highlight=False, soft_wrap=True)
        console.print(f"sim: stopping ({_status(bed)})", highlight=False, soft_wrap=True)
    console.print("sim: stopped, ports released")


def register(app: typer.Typer) -> None:
    """Add `gridflex sim` to the `gridflex` app."""

    @app.command("sim")
    def sim(  # noqa: PLR0917 (typer options are parameters)
        out: Annotated[
            Path,
            typer.Option("--out", metavar="DIR", help="directory for manifest.json, sites/*.yaml, state/"),
        ],
        sites: Annotated[int, typer.Option("--sites", min=1, max=SITES_MAX, help="number of buildings")] = 3,
        speed: Annotated[
            float, typer.Option("--speed", min=0.001, help="simulated s per wall s (1 = real time)")
        ] = 1.0,
        seed: Annotated[int, typer.Option("--seed", help="seed of the asset mix and profiles")] = 1,
        duration: Annotated[
            float | None,
            typer.Option(
                "--duration",
                min=0.0,
                help="stop after this long (wall s)",
                show_default="until Ctrl-C/SIGTERM",
            ),
        ] = None,
        start: Annotated[
            str, typer.Option("--start", help="simulated start, ISO 8601 (UTC)")
        ] = "2030-01-15T16:00:00",
        step: Annotated[
            float | None,
            typer.Option(
                "--step", min=0.001, help="physics step (simulated s)", show_default="max(1, speed/10)"
            ),
        ] = None,
        bacnet: Annotated[
            bool, typer.Option("--bacnet/--no-bacnet", help="one BACnet BMS per building")
        ] = True,
        substations: Annotated[
            bool,
            typer.Option(
                "--substations/--no-substations",
                help="one SunSpec substation meter per MV/LV station, driven by the grid truth",
            ),
        ] = True,
        broker_host: Annotated[
            str, typer.Option(help="MQTT broker host written into the site YAMLs")
        ] = "127.0.0.1",
        broker_port: Annotated[
            int, typer.Option(min=1, max=65535, help="MQTT broker port written into the site YAMLs")
        ] = 1883,
        log_level: Annotated[
            LogLevel, typer.Option(case_sensitive=False, help="log level")
        ] = LogLevel.WARNING,
    ) -> None:
        """Run simulated buildings speaking Modbus TCP and BACnet/IP on loopback until Ctrl-C/SIGTERM.

        Writes OUT/manifest.json and one edge-agent config per building (OUT/sites/<site>.yaml);
        with substations also OUT/substations.json and OUT/sites/sub-<station>.yaml.
        """
        logging.basicConfig(
            level=log_level.value,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            force=True,
        )
        for noisy in ("pymodbus", "pymodbus.logging"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        try:
            asyncio.run(
                _main(
                    sites=sites,
                    speed=speed,
                    seed=seed,
                    duration=duration,
                    start=_parse_start(start),
                    step_s=step,
                    out=out,
                    bacnet=bacnet,
                    broker_host=broker_host,
                    broker_port=broker_port,
                    substations=substations,
                )
            )
        except (OSError, BaseExceptionGroup) as exc:  # a free port taken between pick and bind
            found = address_in_use(exc)
            if found is None:
                raise
            typer.echo(
                f"gridflex sim: a simulator's port on 127.0.0.1 is in use ({found.strerror}); "
                "run it again (ports are picked anew)",
                err=True,
            )
            raise typer.Exit(EXIT_USAGE) from None
