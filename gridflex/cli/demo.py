"""`gridflex demo`: the closed loop on one machine, with control vs. a no-control twin, in minutes.

Default: 20 buildings below the Schutterwald region's 0.40 MVA MV/LV transformer T_idx_77,
the region's other households as profiles (an electrified winter evening overloads
T_idx_77 by its own rating), a winter afternoon and evening (12:00–24:00 simulated) at
120x, so about six minutes of wall time after a minute and a half of set-up (the week of
imported meter history is an AC power flow per interval). `--congestion threshold` runs the former
scenario: the fleet spread over the region and a constructed HV/MV threshold. `--quick` runs a
shorter window at a higher speed for CI. Writes `demo-out/` (summary.json, summary.md,
demo.png, series.csv) and exits 0 only if every part ran and the figures were produced.
`--serve` keeps the controller's dashboard at http://127.0.0.1:PORT during the run and,
after it, the finished run's until Ctrl-C. Ctrl-C during the run reports the intervals
measured so far and exits 130; a port in use is one line and exit 2.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from gridflex.cli.core import SITES_MAX

if TYPE_CHECKING:
    from gridflex.loop.closed_loop import ClosedLoop, LoopResult
    from gridflex.loop.report import ControlActions
    from gridflex.loop.scenario import LoopScenario, LoopSettings

__all__ = ["register"]

console = Console()
#: what a shell reports for a process ended by SIGINT (128 + 2)
EXIT_INTERRUPTED = 130
#: A week of imported history: each station's background gets a mean and a σ per time of
#: day (`forecast/multi_day.py`); `--quick` keeps yesterday only (its CI runs stay short).
DEMO_HISTORY_DAYS = 7
#: The demo plans its limits at a 5 % chance of exceeding them per interval (the library's
#: default is 10 %, z = 1.2816): docs/grid.md "The demo's relief" has the measured effect.
DEMO_FORECAST_Z = 1.6449
#: Simulated s per wall s. 240x left the 20 buildings' BACnet servers, agents and controller
#: (one process) short of CPU on a 2-core machine on 2026-12-03: the MQTT sessions timed out
#: and agents fell back, with the code of before as with today's. At 120x: none lost.
DEMO_SPEED = 120.0


@dataclass
class _Outcome:
    """The exit code, kept outside the coroutine: after Ctrl-C, asyncio.run raises instead of returning."""

    code: int = EXIT_INTERRUPTED
    said_interrupted: bool = False


def _port_in_use(port: int) -> bool:
    """Whether 127.0.0.1:`port` is taken (bound as uvicorn binds it, so a TIME_WAIT socket does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


async def _run(settings: object, out: Path, port: int | None, outcome: _Outcome) -> None:
    """The demo; `port`: serve the dashboard there during the run and, after it, until Ctrl-C."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cloud_controller import build_schutterwald_region
    from gridflex.loop.closed_loop import ClosedLoop, serve_dashboard
    from gridflex.loop.scenario import LoopSettings, build_scenario

    assert isinstance(settings, LoopSettings)
    t0 = time.monotonic()
    if port is not None:
        console.print(
            f"dashboard: {_url(port)} once the controller runs, and after the run until Ctrl-C",
            soft_wrap=True,
        )
    with console.status("building the region, the fleet and its no-control twin ..."):
        region = await asyncio.to_thread(build_schutterwald_region)
        scenario = await asyncio.to_thread(build_scenario, settings, region)
    days = settings.history_days
    with console.status(
        f"importing {days} day{'s' if days > 1 else ''} of meter history: an AC power flow per interval ..."
    ):
        await asyncio.to_thread(lambda: (scenario.yesterday_meters, scenario.older_meters))
    console.print(_scenario_line(scenario), soft_wrap=True)
    interrupted = False
    dashboard: asyncio.Task[None] | None = None
    total_s = (settings.end - settings.start).total_seconds()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[now]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("starting broker, buildings, agents, controller", total=total_s, now="")
        async with ClosedLoop(scenario, out / "run", api_port=port or 0) as loop:
            if port is not None:
                progress.console.print(f"dashboard up: {_url(port)}")
            progress.update(task, description="closed loop")

            def show(now: datetime) -> None:
                progress.update(
                    task, completed=(now - settings.start).total_seconds(), now=f"{now:%Y-%m-%d %H:%M} UTC"
                )

            try:
                await loop.run_until(settings.end, progress=show)
            except asyncio.CancelledError:  # Ctrl-C: report the part that ran
                interrupted = True
                progress.update(task, description="interrupted")
            progress.update(task, description="draining telemetry and acks")
            result = await loop.finish()
            actions = _control_actions(loop, result.interval_starts)
            if port is not None and not interrupted:
                dashboard = asyncio.create_task(
                    serve_dashboard(loop.finished_controller(), port), name="dashboard"
                )
    try:
        outcome.said_interrupted = interrupted
        code = await _report(settings, scenario, result, actions, out, time.monotonic() - t0, interrupted)
        if interrupted or dashboard is None or code != 0:
            outcome.code = EXIT_INTERRUPTED if interrupted else code
            return
        outcome.code = 0
        await _serve_until_interrupted(dashboard, port, outcome)
    finally:
        if dashboard is not None and not dashboard.done():
            dashboard.cancel()
            await asyncio.wait({dashboard}, timeout=15.0)


async def _serve_until_interrupted(
    dashboard: asyncio.Task[None], port: int | None, outcome: _Outcome
) -> None:
    """The finished run's dashboard until Ctrl-C (exit 0 then); a port it cannot get back is exit 2."""
    console.print(f"serving the run's dashboard at {_url(port)} until Ctrl-C", soft_wrap=True)
    try:
        await dashboard
    except OSError as exc:
        console.print(f"port {port} on 127.0.0.1 could not be bound after the run: {exc}", markup=False)
        outcome.code = 2


def _control_actions(loop: ClosedLoop, starts: list[datetime]) -> ControlActions:
    """What the run's controller did: battery SoC as it stored it, its EV/HP caps as it sent them."""
    from cloud_controller import SqliteStore
    from gridflex.loop.report import CapCommand, control_actions

    ctl = loop.controller
    assert ctl is not None
    assets = {(s.site, a.asset): a for s in loop.registry.sites for a in s.assets}
    caps = [
        CapCommand(c.valid_from, c.site, c.asset, a.kind, float(c.value), float(a.p_nominal_kw or 0.0))
        for c in (t.command for t in list(ctl.tracker.sent.values()))
        if c.kind == "p_limit_kw"
        and (a := assets.get((c.site, c.asset))) is not None
        and a.kind in ("ev", "hp")
        and isinstance(c.value, float | int)
    ]
    end = starts[-1] + timedelta(seconds=loop.settings.period_s) if starts else loop.settings.start
    store = SqliteStore(ctl.config.store.path)  # the run's controller closed its own
    try:
        soc = {
            s.site: store.read_series(s.site, a.asset, "soc_pct", loop.settings.start, end)
            for s in loop.registry.sites
            for a in s.assets
            if a.kind == "battery"
        }
    finally:
        store.close()
    return control_actions(starts, loop.settings.period_s, soc, caps)


def _scenario_line(scenario: LoopScenario) -> str:
    """What the run is judged by, printed before it starts."""
    s = scenario.settings
    if scenario.element is not None:
        peak = max(scenario.element_loading_pct())
        return (
            f"{s.n_sites} buildings below {scenario.element} ({scenario.element_rating_kva:.0f} kVA) of the "
            f"Schutterwald region, its other households as profiles; no-control peak loading {peak:.1f} %; "
            f"the controller plans against {scenario.element}'s rating"
        )
    return (
        f"{s.n_sites} buildings placed on the Schutterwald region; no-control HV/MV peak "
        f"{max(t.root_p_kw for t in scenario.no_control_truth):.1f} kW, congestion threshold "
        f"{scenario.threshold_kw or 0.0:.1f} kW, controller plans against {scenario.controller_limit_kw or 0.0:.1f} kW "
        "of site load"
    )


def _notes(settings: LoopSettings, scenario: LoopScenario, interrupted: bool) -> list[str]:
    """The summary's notes: what the scenario assumes and how it ran."""
    b = settings.background
    if scenario.element is not None:
        first = (
            f"Physical congestion: the fleet sits below {scenario.element}; every other household of the "
            f"region is a seeded profile (H0 load {b.annual_kwh[0]:.0f}-{b.annual_kwh[1]:.0f} kWh/a, "
            f"{b.hp_share:.0%} with a {b.hp_kw:g} kW heat pump for {b.heat_annual_kwh[0]:.0f}-"
            f"{b.heat_annual_kwh[1]:.0f} kWh/a of heat, {b.ev_share:.0%} with an EV charging uncontrolled "
            f"at {b.ev_kw:g} kW), cos phi {b.cos_phi:g}, the same in both runs. The controller plans against "
            f"{scenario.element}'s rating from the net and sees the non-fleet load only through the "
            "station's meter."
        )
    else:
        first = (
            "Threshold constructed so that "
            f"{settings.overload_share:.0%} of the no-control intervals exceed it (households outside "
            "the fleet carry no load)."
        )
    return [
        first,
        f"Simulated {settings.start:%Y-%m-%d %H:%M} to {settings.end:%H:%M} UTC at {settings.speed:g}x; "
        f"control period {settings.period_s / 60:g} min, agents poll every {settings.poll_s:g} s.",
        *(["Interrupted (Ctrl-C): the figures cover the intervals before it."] if interrupted else []),
    ]


def _url(port: int | None) -> str:
    return f"http://127.0.0.1:{port}/"


async def _report(
    settings: LoopSettings,
    scenario: LoopScenario,
    result: LoopResult,
    actions: ControlActions,
    out: Path,
    wall_s: float,
    interrupted: bool,
) -> int:
    """Grid truth of the measured intervals, the summary and its files; 1 if nothing was measured."""
    from gridflex.loop.report import DemoSummary, render_markdown, run_figures, write_outputs

    n = min(len(result.interval_starts), len(scenario.no_control_truth))
    if interrupted:
        console.print(
            f"[bold]interrupted[/bold] after {n} of {settings.intervals} intervals; the part that ran:"
        )
    if n == 0:
        console.print("[red]no complete interval was measured[/red]")
        return 1
    starts = scenario.no_control_times[:n]
    with console.status("grid truth: AC power flow of every interval ..."):
        truth_control = await asyncio.to_thread(
            functools.partial(
                scenario.truth.evaluate_series, {s: v[:n] for s, v in result.site_p_kw.items()}, starts=starts
            )
        )
    interval_h = settings.period_s / 3600.0
    element = {"element": scenario.element, "rating_kva": scenario.element_rating_kva}
    summary = DemoSummary(
        sites=settings.n_sites,
        start=settings.start,
        interval_min=settings.period_s / 60.0,
        intervals=n,
        threshold_kw=scenario.threshold_kw,
        no_control=run_figures(scenario.no_control_truth[:n], scenario.threshold_kw, interval_h, **element),  # type: ignore[arg-type]
        control=run_figures(truth_control, scenario.threshold_kw, interval_h, **element),  # type: ignore[arg-type]
        commands=result.commands,
        telemetry=result.telemetry,
        wall_s=wall_s,
        notes=_notes(settings, scenario, interrupted),
        element=scenario.element,
        element_rating_kva=scenario.element_rating_kva,
    )
    if scenario.element is not None:
        series = {
            f"no control ({scenario.element} %)": scenario.element_loading_pct(scenario.no_control_truth[:n]),
            f"with GridFlex ({scenario.element} %)": scenario.element_loading_pct(truth_control),
        }
    else:
        series = {
            "no control": [t.root_p_kw for t in scenario.no_control_truth[:n]],
            "with GridFlex": [t.root_p_kw for t in truth_control],
        }
    paths = write_outputs(summary, out, starts, series, actions=actions.head(n))
    console.print(render_markdown(summary), markup=False, highlight=False)
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def register(app: typer.Typer) -> None:
    """Add `gridflex demo` to the `gridflex` app."""

    @app.command("demo")
    def demo(  # noqa: PLR0917 (typer options are parameters)
        sites: Annotated[int, typer.Option("--sites", min=1, max=SITES_MAX, help="simulated buildings")] = 20,
        quick: Annotated[
            bool, typer.Option("--quick", help="short window (14:00-21:00) at 480x, for CI")
        ] = False,
        out: Annotated[Path, typer.Option("--out", help="output directory")] = Path("demo-out"),
        seed: Annotated[int, typer.Option("--seed")] = 1,
        speed: Annotated[
            float | None,
            typer.Option(
                "--speed",
                min=1.0,
                help=f"simulated s per wall s [default: {DEMO_SPEED:g}, or 480 with --quick]",
            ),
        ] = None,
        bacnet: Annotated[
            bool, typer.Option("--bacnet/--no-bacnet", help="a BACnet BMS per building")
        ] = True,
        log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "WARNING",
        serve: Annotated[
            bool, typer.Option("--serve", help="keep the dashboard up during and after the run, until Ctrl-C")
        ] = False,
        port: Annotated[
            int, typer.Option("--port", min=1, max=65535, help="the dashboard's port (--serve)")
        ] = 8080,
        congestion: Annotated[
            str,
            typer.Option(
                "--congestion",
                help="station: T_idx_77 overloaded by its rating (default); threshold: a constructed HV/MV threshold",
            ),
        ] = "station",
        history_days: Annotated[
            int | None,
            typer.Option(
                "--history-days",
                min=1,
                max=14,
                help="days of meter history imported before the run [default: 7, or 1 with --quick]",
            ),
        ] = None,
        market: Annotated[
            bool, typer.Option("--market", help="the local flexibility market at the congested element")
        ] = False,
        market_compare: Annotated[
            bool,
            typer.Option(
                "--market-compare/--no-market-compare",
                help="with --market: first the same loop without the market, for relief per EUR",
            ),
        ] = True,
        dr: Annotated[
            bool,
            typer.Option(
                "--dr", help="plus a DR event: contracts, a request at 14:10 for 15:00-16:00 (docs/dr.md §7)"
            ),
        ] = False,
        dr_start: Annotated[
            str | None,
            typer.Option(
                "--dr-start",
                help="with --dr: the event's start, HH:MM simulated UTC (4 x 15 min, posted 50 min ahead) [default: 15:00]",
            ),
        ] = None,
    ) -> None:
        """Run the closed loop (buildings, agents, Mosquitto, controller) with vs. without control."""
        if serve and _port_in_use(port):
            console.print(
                f"port {port} on 127.0.0.1 is already in use: free it or pass --port", soft_wrap=True
            )
            raise typer.Exit(2)
        from gridflex.loop.scenario import CONGESTION_KINDS, LoopSettings  # after the port check: slow import

        if congestion not in CONGESTION_KINDS:
            console.print(f"--congestion must be one of {', '.join(CONGESTION_KINDS)}, got {congestion!r}")
            raise typer.Exit(2)
        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        settings = LoopSettings(
            n_sites=sites,
            seed=seed,
            bacnet=bacnet,
            congestion_scenarios=100,
            congestion=congestion,
            history_days=DEMO_HISTORY_DAYS,
            forecast_z=DEMO_FORECAST_Z,
            speed=DEMO_SPEED,
        )
        if quick:
            settings = replace(settings, start_h=14.0, end_h=21.0, speed=480.0, poll_s=240.0, history_days=1)
        if history_days is not None:
            settings = replace(settings, history_days=history_days)
        if speed is not None:
            settings = replace(settings, speed=speed)
        if market and dr:
            console.print("--market and --dr are separate scenarios: choose one")
            raise typer.Exit(2)
        if market:  # gridflex/cli/demo_market.py; its imported history gives the settlement's baseline
            from gridflex.cli.demo_market import run_market_demo

            days = max(settings.history_days, DEMO_HISTORY_DAYS)
            raise typer.Exit(
                run_market_demo(replace(settings, history_days=days), out, compare=market_compare)
            )
        if dr:  # the DR event scenario (gridflex/cli/demo_dr.py); its run has no --serve
            from gridflex.cli.demo_dr import run_dr_demo

            raise typer.Exit(run_dr_demo(settings, out, dr_start))
        outcome = _Outcome()
        try:
            asyncio.run(_run(settings, out, port if serve else None, outcome))
        except KeyboardInterrupt:  # what ran is reported; before the first interval there is nothing
            if outcome.code == EXIT_INTERRUPTED and not outcome.said_interrupted:
                console.print("interrupted: no complete interval was measured")
        raise typer.Exit(outcome.code)
