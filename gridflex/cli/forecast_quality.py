"""`gridflex forecast-quality`: backtest the site baselines over a simulated year and write the scores.

Writes `forecast_quality.json` (what `GET /forecast/quality` serves once published),
`forecast_quality.md` (the tables of docs/forecast-quality.md) and `forecast_quality.html`
(loss and band coverage per horizon step, plotly offline: `plotly.min.js` beside it) into --out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gridflex.cli.core import SITES_MAX

console = Console(stderr=True)


def forecast_quality(
    sites: Annotated[
        int,
        typer.Option(
            "--sites", min=1, max=SITES_MAX, help="households, spread over the 319-household region"
        ),
    ] = 10,
    days: Annotated[
        int,
        typer.Option(
            "--days", min=0, max=366, help="scored days, spread over the year; 0 = every day (a full year)"
        ),
    ] = 14,
    seed: Annotated[int, typer.Option("--seed", help="population and profiles (the study's seed)")] = 2030,
    every: Annotated[
        int,
        typer.Option("--every", min=1, max=96, help="a forecast every N 15-min periods (1 = as the planner)"),
    ] = 4,
    fade_h: Annotated[
        float | None,
        typer.Option(
            "--fade-h",
            min=0.01,
            help="what-if: the baseline's level fade in hours",
            show_default="6, as the planner",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="output directory")] = Path("results/forecast-quality"),
    publish: Annotated[
        Path | None,
        typer.Option(
            "--publish",
            help="also copy the JSON here, e.g. state/forecast_quality.json (beside the controller's store file)",
        ),
    ] = None,
) -> None:
    """Pinball loss per quantile, p10–p90 coverage, MAE/RMSE and skill vs persistence, per horizon bucket."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cloud_controller import BacktestConfig, run_backtest, write_quality_outputs

    cfg = BacktestConfig(sites=sites, days=days, seed=seed, origin_every_steps=every, fade_h=fade_h)
    console.print(f"backtesting {sites} sites, {days or 'all'} days, a forecast every {every} periods …")
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} site-days"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("profiles", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description="forecasts")

        res = run_backtest(cfg, on_progress=tick)
    data = res.to_json()
    files = write_quality_outputs(data, out, publish=publish)
    _print_table(data)
    console.print(
        f"wrote {files.json_path}, {files.markdown_path} and {files.figure_path} in {data['wall_s']:.1f} s"
        + (f"; published {publish}" if publish else "")
    )


def _print_table(data: dict[str, Any]) -> None:
    table = Table(title="site baseline vs persistence (same period yesterday)")
    for col in ("horizon", "pinball p10/p50/p90 kW", "coverage", "MAE kW", "skill vs yesterday"):
        table.add_column(col, justify="left" if col == "horizon" else "right")
    for b in data["buckets"]:
        m = b["metrics"]["baseline"]
        sk = b["skill"]["baseline"]["persistence_day"]["pinball_mean_kw"]
        table.add_row(
            b["bucket"],
            f"{m['pinball_p10_kw']:.3f}/{m['pinball_p50_kw']:.3f}/{m['pinball_p90_kw']:.3f}",
            f"{100 * m['coverage_p10_p90']:.1f} %",
            f"{m['mae_p50_kw']:.3f}",
            "–" if sk is None else f"{100 * sk:+.1f} %",
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add `gridflex forecast-quality` to the `gridflex` app."""
    app.command("forecast-quality")(forecast_quality)
