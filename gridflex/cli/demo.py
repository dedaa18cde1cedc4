"""`gridflex demo`: the closed loop on one machine, with control vs. a no-control twin, in minutes.

Default: 20 buildings on the Schutterwald region, a winter afternoon and evening
(12:00–24:00 simulated) at 240x, so about three minutes of wall time. `--quick` runs a
shorter window at a higher speed for CI. Writes `demo-out/` (summary.json, summary.md,
demo.png, series.csv) and exits 0 only if every part ran and the figures were produced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["register"]

console = Console()


async def _run(settings: object, out: Path) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cloud_controller import build_schutterwald_region
    from gridflex.loop.closed_loop import ClosedLoop
    from gridflex.loop.report import DemoSummary, render_markdown, run_figures, write_outputs
    from gridflex.loop.scenario import LoopSettings, build_scenario

    assert isinstance(settings, LoopSettings)
    t0 = time.monotonic()
    with console.status("building the region, the fleet and its no-control twin ..."):
        region = await asyncio.to_thread(build_schutterwald_region)
        scenario = await asyncio.to_thread(build_scenario, settings, region)
    console.print(
        f"{settings.n_sites} buildings placed on the Schutterwald region; no-control HV/MV peak "
        f"{max(t.root_p_kw for t in scenario.no_control_truth):.1f} kW, congestion threshold "
        f"{scenario.threshold_kw:.1f} kW, controller plans against {scenario.controller_limit_kw:.1f} kW "
        f"of site load"
    )
    total_s = (settings.end - settings.start).total_seconds()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[now]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("starting broker, buildings, agents, controller", total=total_s, now="")
        async with ClosedLoop(scenario, out / "run") as loop:
            progress.update(task, description="closed loop")

            def show(now: datetime) -> None:
                progress.update(
                    task, completed=(now - settings.start).total_seconds(), now=f"{now:%Y-%m-%d %H:%M} UTC"
                )

            await loop.run_until(settings.end, progress=show)
            progress.update(task, description="draining telemetry and acks")
            result = await loop.finish()
    n = min(len(result.interval_starts), len(scenario.no_control_truth))
    if n == 0:
        console.print("[red]no complete interval was measured[/red]")
        return 1
    with console.status("grid truth: AC power flow of every interval ..."):
        truth_control = await asyncio.to_thread(
            scenario.truth.evaluate_series, {s: v[:n] for s, v in result.site_p_kw.items()}
        )
    interval_h = settings.period_s / 3600.0
    summary = DemoSummary(
        sites=settings.n_sites,
        start=settings.start,
        interval_min=settings.period_s / 60.0,
        intervals=n,
        threshold_kw=scenario.threshold_kw,
        no_control=run_figures(scenario.no_control_truth[:n], scenario.threshold_kw, interval_h),
        control=run_figures(truth_control, scenario.threshold_kw, interval_h),
        commands=result.commands,
        telemetry=result.telemetry,
        wall_s=time.monotonic() - t0,
        notes=[
            "Threshold constructed so that "
            f"{settings.overload_share:.0%} of the no-control intervals exceed it (households outside "
            "the fleet carry no load).",
            f"Simulated {settings.start:%Y-%m-%d %H:%M} to {settings.end:%H:%M} UTC at {settings.speed:g}x; "
            f"control period {settings.period_s / 60:g} min, agents poll every {settings.poll_s:g} s.",
        ],
    )
    paths = write_outputs(
        summary,
        out,
        scenario.no_control_times[:n],
        {
            "no control": [t.root_p_kw for t in scenario.no_control_truth[:n]],
            "with GridFlex": [t.root_p_kw for t in truth_control],
        },
    )
    console.print(render_markdown(summary), markup=False, highlight=False)
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def register(app: typer.Typer) -> None:
    """Add `gridflex demo` to the `gridflex` app."""

    @app.command("demo")
    def demo(
        sites: Annotated[int, typer.Option("--sites", min=1, max=200, help="simulated buildings")] = 20,
        quick: Annotated[
            bool, typer.Option("--quick", help="short window (14:00-21:00) at 480x, for CI")
        ] = False,
        out: Annotated[Path, typer.Option("--out", help="output directory")] = Path("demo-out"),
        seed: Annotated[int, typer.Option("--seed")] = 1,
        speed: Annotated[
            float | None, typer.Option("--speed", min=1.0, help="simulated s per wall s")
        ] = None,
        bacnet: Annotated[
            bool, typer.Option("--bacnet/--no-bacnet", help="a BACnet BMS per building")
        ] = True,
        log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "WARNING",
    ) -> None:
        """Run the closed loop (buildings, agents, Mosquitto, controller) with vs. without control."""
        from gridflex.loop.scenario import LoopSettings

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        settings = LoopSettings(n_sites=sites, seed=seed, bacnet=bacnet)
        if quick:
            settings = replace(settings, start_h=14.0, end_h=21.0, speed=480.0, poll_s=240.0)
        if speed is not None:
            settings = replace(settings, speed=speed)
        raise typer.Exit(asyncio.run(_run(settings, out)))
