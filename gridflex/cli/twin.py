"""`gridflex twin`: judge the live controller over many fleets offline.

The live demo runs on real sockets in wall time, one fleet at a time; a control strategy
judged on one fleet is judged on luck. The twin (`gridflex.loop.twin`) runs the same
physics and the same planner without sockets, so many fleets fit in one run: overloaded
intervals with vs. without control, the EV energy delivered and the heat still owed at
the end (what the caps cost the owners), commands and guard corrections.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from gridflex.cli.core import SITES_MAX

__all__ = ["BatteryControl", "TwinRow", "parse_hours", "parse_seeds", "register"]


class BatteryControl(StrEnum):
    """`--battery-control`: what a battery is commanded (see `ControlConfig.battery_control`)."""

    setpoint = "setpoint"
    grid_target = "grid_target"


@dataclass(frozen=True)
class TwinRow:
    """One fleet's line of `gridflex twin`: the twin without and with control, side by side."""

    seed: int
    threshold_kw: float
    overloads_without: int
    overloads_with: int
    peak_without_kw: float
    peak_with_kw: float
    ev_delivered_without_kwh: float
    ev_delivered_with_kwh: float
    heat_owed_without_kwh: float
    heat_owed_with_kwh: float
    commands: int
    corrections: int

    @property
    def relief_pct(self) -> float:
        """Share of the uncontrolled overloaded intervals that control removed (0 if there were none)."""
        if self.overloads_without == 0:
            return 0.0
        return 100.0 * (self.overloads_without - self.overloads_with) / self.overloads_without


def parse_seeds(text: str) -> list[int]:
    """Parse "1-5", "1,3,7" or "2-4,9" into the seeds, in order, without repeats."""
    seeds: list[int] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise typer.BadParameter(
                f"{part!r} is not a seed or a range like 1-5", param_hint="--seeds"
            ) from None
    if not seeds:
        raise typer.BadParameter("no seeds given", param_hint="--seeds")
    return list(dict.fromkeys(seeds))


def parse_hours(text: str) -> tuple[float, float]:
    """`--hours 15-21` -> (15.0, 21.0): the window of the simulated day, end after start, at most 48 h."""
    try:
        lo, hi = (float(x) for x in text.split("-", 1))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a window like 12-24", param_hint="--hours") from None
    if not 0.0 <= lo < hi <= 48.0:
        raise typer.BadParameter(
            f"{text!r}: need 0 <= start < end <= 48 (hours from midnight of the simulated day)",
            param_hint="--hours",
        )
    return lo, hi


def _plot(rows: list[TwinRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(rows) + 2), 3.2))
    ax.bar(x - 0.2, [r.overloads_without for r in rows], 0.4, label="no control", color="#c0504d")
    ax.bar(x + 0.2, [r.overloads_with for r in rows], 0.4, label="with GridFlex", color="#4f81bd")
    ax.set_xticks(x, [str(r.seed) for r in rows])
    ax.set_xlabel("fleet (seed)")
    ax.set_ylabel("overloaded 15-min intervals")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def register(app: typer.Typer) -> None:
    """Add `gridflex twin` to the `gridflex` app."""

    @app.command("twin")
    def twin(
        sites: Annotated[int, typer.Option("--sites", min=1, max=SITES_MAX, help="buildings per fleet")] = 10,
        seeds: Annotated[str, typer.Option("--seeds", help="fleets: 1-5, 1,3,7 or 2-4,9")] = "1-5",
        battery_control: Annotated[
            BatteryControl,
            typer.Option("--battery-control", help="battery power per period, or the site's grid exchange"),
        ] = BatteryControl.setpoint,
        guard: Annotated[
            bool, typer.Option("--guard/--no-guard", help="the fleet guard between plans")
        ] = True,
        hours: Annotated[
            str, typer.Option("--hours", help="the window of the simulated day, START-END in hours")
        ] = "12-24",
        out: Annotated[Path, typer.Option("--out", help="output directory")] = Path("twin-out"),
    ) -> None:
        """Run the controller against offline twins of several fleets; print the relief per fleet."""
        # Bad options are refused before the heavy imports (pandapower, pyomo) are paid for.
        seed_list = parse_seeds(seeds)
        start_h, end_h = parse_hours(hours)
        control = battery_control.value

        from rich.console import Console
        from rich.progress import Progress
        from rich.table import Table

        from cloud_controller import build_schutterwald_region
        from gridflex.loop.scenario import LoopSettings, build_scenario
        from gridflex.loop.twin import run_twin

        console = Console()
        region = build_schutterwald_region()
        rows: list[TwinRow] = []
        t0 = time.monotonic()
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("fleets", total=len(seed_list))
            for seed in seed_list:
                settings = LoopSettings(
                    n_sites=sites,
                    seed=seed,
                    bacnet=False,
                    battery_control=control,
                    start_h=start_h,
                    end_h=end_h,
                    congestion="threshold",  # the twin compares fleets on the constructed threshold
                )
                scenario = build_scenario(settings, region)
                scenario = replace(scenario, settings=settings)
                base = run_twin(scenario, control=False)
                ctl = run_twin(scenario, guard=guard)
                thr = scenario.threshold_kw
                assert thr is not None  # congestion="threshold"
                rows.append(
                    TwinRow(
                        seed=seed,
                        threshold_kw=round(thr, 2),
                        overloads_without=base.overloads(thr),
                        overloads_with=ctl.overloads(thr),
                        peak_without_kw=round(max(base.root_kw), 2),
                        peak_with_kw=round(max(ctl.root_kw), 2),
                        ev_delivered_without_kwh=round(base.ev_delivered_kwh, 2),
                        ev_delivered_with_kwh=round(ctl.ev_delivered_kwh, 2),
                        heat_owed_without_kwh=round(base.heat_owed_kwh, 2),
                        heat_owed_with_kwh=round(ctl.heat_owed_kwh, 2),
                        commands=ctl.commands,
                        corrections=ctl.corrections,
                    )
                )
                progress.advance(task)
        table = Table(title=f"{sites} buildings, 12:00-24:00, battery control {control}, guard {guard}")
        for col in (
            "seed",
            "threshold kW",
            "overloads",
            "relief",
            "peak kW",
            "EV kWh",
            "heat owed kWh",
            "cmds",
        ):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(
                str(r.seed),
                f"{r.threshold_kw:.1f}",
                f"{r.overloads_without} → {r.overloads_with}",
                f"{r.relief_pct:.0f} %",
                f"{r.peak_without_kw:.1f} → {r.peak_with_kw:.1f}",
                f"{r.ev_delivered_without_kwh:.0f} → {r.ev_delivered_with_kwh:.0f}",
                f"{r.heat_owed_without_kwh:.0f} → {r.heat_owed_with_kwh:.0f}",
                f"{r.commands} ({r.corrections} guard)",
            )
        console.print(table)
        total_without = sum(r.overloads_without for r in rows)
        total_with = sum(r.overloads_with for r in rows)
        relief = 100.0 * (total_without - total_with) / total_without if total_without else 0.0
        console.print(
            f"all fleets: {total_without} → {total_with} overloaded intervals ({relief:.0f} % relieved), "
            f"worst fleet {min(r.relief_pct for r in rows):.0f} %, {time.monotonic() - t0:.0f} s"
        )
        out.mkdir(parents=True, exist_ok=True)
        doc = {
            "sites": sites,
            "battery_control": control,
            "guard": guard,
            "relief_pct": round(relief, 1),
            "fleets": [asdict(r) | {"relief_pct": round(r.relief_pct, 1)} for r in rows],
        }
        (out / "twin.json").write_text(json.dumps(doc, indent=1))
        _plot(rows, out / "twin.png")
        console.print(f"wrote {out / 'twin.json'}, {out / 'twin.png'}")
