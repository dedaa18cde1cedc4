"""`gridflex study`: run the Schutterwald study's study (and beyond) and write results, figures and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from protocols.errors import ConfigError

if TYPE_CHECKING:
    from cloud_controller.study import StudyConfig

console = Console(stderr=True)


def _split(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def study(  # noqa: PLR0917 (typer options are parameters)
    config: Annotated[
        Path, typer.Option("--config", help="Study YAML (examples/schutterwald/study.yaml).")
    ] = Path("examples/schutterwald/study.yaml"),
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("results"),
    scenarios: Annotated[
        str | None, typer.Option(help="Comma-separated scenarios.", show_default="the YAML's")
    ] = None,
    stress: Annotated[
        str | None,
        typer.Option(help="Comma-separated: safe, near_critical, critical.", show_default="the YAML's"),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Two representative weeks (winter, summer), plus MPC at the most severe stress."
        ),
    ] = False,
    jobs: Annotated[int, typer.Option(min=1, max=64, help="Scenario runs in parallel (processes).")] = 1,
    validate: Annotated[bool, typer.Option(help="Check every step with an AC power flow.")] = True,
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            "--sweep",
            help="KEY=V1,V2,…: run the study at every value (repeat for a grid); KEY is a dotted"
            " path into the study YAML, `*` for every mix role (mix.*.ev=0.1,0.25).",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler address for --sweep.", show_default="a local cluster of --jobs processes"
        ),
    ] = None,
) -> None:
    """Rolling-horizon OPF over the region for every scenario × stress level (the Schutterwald study)."""
    from cloud_controller.study import BEYOND, SCENARIOS, StudyConfig, load_study_config

    try:
        cfg = load_study_config(config)
        scen = _split(scenarios)
        if scen is None and quick and "mpc" not in cfg.scenarios:
            scen = (*cfg.scenarios, "mpc")
        if scen:
            cfg = StudyConfig.model_validate({**cfg.model_dump(), "scenarios": scen}, strict=False)
        st = _split(stress)
        if st:
            cfg = StudyConfig.model_validate({**cfg.model_dump(), "stress": st}, strict=False)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:  # pydantic ValidationError on --scenarios / --stress
        known = ", ".join(SCENARIOS + BEYOND)
        console.print(
            f"[red]error:[/red] bad --scenarios/--stress: {exc.errors()[0]['msg'] if hasattr(exc, 'errors') else exc}; known scenarios: {known}"
        )
        raise typer.Exit(2) from None
    if sweep:
        _sweep(cfg, sweep, out, quick=quick, jobs=jobs, validate=validate, scheduler=scheduler)
        return
    if scheduler:
        typer.echo("error: --scheduler needs --sweep", err=True)
        raise typer.Exit(2)
    _run(cfg, out, quick=quick, jobs=jobs, validate=validate)


def _sweep(
    cfg: StudyConfig,
    specs: list[str],
    out: Path,
    *,
    quick: bool,
    jobs: int,
    validate: bool,
    scheduler: str | None,
) -> None:
    """`--sweep`: every grid point a whole study on Dask; per point its summary, then the table and plot."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cloud_controller.study import SweepPoint, parse_axis, sweep_points, sweep_row

    try:
        axes = [parse_axis(spec, cfg) for spec in specs]
        points = sweep_points(cfg, axes)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from cloud_controller.study import figure_sweep, run_sweep, write_sweep_table

    out.mkdir(parents=True, exist_ok=True)
    where = scheduler or f"a local Dask cluster of {min(jobs, len(points))} process(es)"
    console.print(f"{len(points)} points × ({', '.join(cfg.scenarios)}) on {where}")
    rows: dict[int, dict[str, object]] = {}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} points"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("sweep", total=len(points))

        def done(point: SweepPoint, summary: dict[str, object], n_done: int, total: int) -> None:
            folder = out / "points" / point.name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
            rows[point.index] = sweep_row(point, summary)
            bar.update(task, completed=n_done, description=f"done: {point.name}")

        run_sweep(points, quick=quick, validate=validate, scheduler=scheduler, n_workers=jobs, on_done=done)
    ordered = [rows[p.index] for p in points]
    paths = write_sweep_table(ordered, axes, out)
    paths.append(figure_sweep(ordered, axes, out))
    Console().print((out / "sweep.md").read_text(encoding="utf-8"))
    console.print(
        f"wrote {len(points)} point summaries under {out / 'points'}, " + ", ".join(map(str, paths))
    )


def _run(cfg: StudyConfig, out: Path, *, quick: bool, jobs: int, validate: bool) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cloud_controller.study import load_inputs, plan_jobs, report, run_study, summarise, write_steps

    out.mkdir(parents=True, exist_ok=True)
    console.print("building region, households and profiles …")
    inputs = load_inputs(cfg, quick=quick)
    n_jobs = len(
        plan_jobs(
            tuple(dict.fromkeys(("status_quo", "no_control", *cfg.scenarios))),
            cfg.stress,
            mpc_all_stress=not quick,
        )
    )
    console.print(
        f"{inputs.pop.n} households, {inputs.prof.n_steps} steps, {n_jobs} runs on {jobs} process(es)"
        + (" with AC validation" if validate else "")
    )
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} runs"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("study", total=n_jobs)

        def tick(label: str, done: int, total: int) -> None:
            bar.update(task, completed=done, description=f"done: {label}")

        res = run_study(cfg, quick=quick, jobs=jobs, inputs=inputs, on_progress=tick, validate=validate)
    summary = summarise(res)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    write_steps(res, out / "steps.parquet")
    figures: list[Path] = []
    st = "critical" if "critical" in res.limits_kw else next(iter(res.limits_kw))
    figures += report.figure_heatmap(res, out, st)
    figures += report.figure_bars(summary, out)
    figures += report.figure_curb_day(res, out, st)
    path = report.write_report(res, summary, out, figures)
    _print_table(summary, st)
    console.print(
        f"wrote {out / 'summary.json'}, {out / 'steps.parquet'}, {path} and {len(figures)} figures in {res.wall_s:.1f} s"
    )


def _print_table(summary: dict[str, object], stress: str) -> None:
    from cloud_controller.study import LABELS

    results = summary["results"]
    assert isinstance(results, dict)
    table = Table(title=f"HV/MV violations ({stress} grid)")
    for col in ("scenario", "load", "feed-in", "AC load", "resolved %", "max load %"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for sc, row in results[stress].items():
        table.add_row(
            LABELS.get(sc, sc),
            str(row["load_violations"]),
            str(row["feed_in_violations"]),
            str(row.get("ac_load_violations", "–")),
            str(row.get("load_violations_resolved_pct", "–")),
            str(row["max_load_pct"]),
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add `gridflex study` to the `gridflex` app."""
    app.command("study")(study)
