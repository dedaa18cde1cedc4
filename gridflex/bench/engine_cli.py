"""`gridflex bench dispatch|congestion|study`: the solvers — the dispatch engine, the congestion forecast, a study year."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gridflex.bench.common import DISPATCH_PARTS, console, figures_table, parse_parts

__all__ = ["bench_congestion", "bench_dispatch", "bench_study", "register"]


def register(app: typer.Typer) -> None:
    """Add `dispatch`, `congestion` and `study` to `gridflex bench` (in this order: `--help` lists them so)."""
    app.command("dispatch")(bench_dispatch)
    app.command("congestion")(bench_congestion)
    app.command("study")(bench_study)


def bench_dispatch(
    steps: Annotated[int, typer.Option(help="rundcopp comparison steps and warm re-solves per size.")] = 20,
    sizes: Annotated[str, typer.Option(help="Comma-separated building counts.")] = "100,1000,10000",
    mpc_sites: Annotated[int, typer.Option(help="Buildings in the multi-period MPC case.")] = 1000,
    mpc_steps: Annotated[int, typer.Option(help="Periods of the MPC case (15 min each).")] = 96,
    time_limit_s: Annotated[float, typer.Option(help="Give up on a size after this long.")] = 120.0,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="parts to run (repeat or comma list): rundcopp, step, mpc"),
    ] = None,
) -> None:
    """Engine vs pandapower rundcopp (ms/step, ratio), single-step dispatch at scale, MPC."""
    from gridflex.bench.dispatch import format_result, run_dispatch_bench

    result = run_dispatch_bench(
        steps=steps,
        sizes=tuple(int(s) for s in sizes.split(",") if s.strip()),
        mpc_sites=mpc_sites,
        mpc_steps=mpc_steps,
        time_limit_s=time_limit_s,
        only=parse_parts(only, DISPATCH_PARTS),
    )
    print(format_result(result))


def bench_congestion(
    scenarios: Annotated[str, typer.Option(help="Comma-separated scenario counts.")] = "10,100,1000",
    ac_max: Annotated[int, typer.Option(help="Run the full AC batch up to this many scenarios.")] = 1000,
    repeats: Annotated[int, typer.Option(min=1, help="Timed repeats of the fast method.")] = 3,
) -> None:
    """Probabilistic congestion forecast, 96 intervals of the 319-household region: fast vs AC batch."""
    from gridflex.bench.congestion import run_congestion_bench

    counts = tuple(int(s) for s in scenarios.split(",") if s.strip())
    rows, st = run_congestion_bench(counts, repeats=repeats, ac_max=ac_max)
    table = Table(
        title=(
            f"gridflex bench congestion: {st['households']:.0f} households, {st['branches']:.0f} branches, "
            f"{st['buses']:.0f} buses, {st['intervals']:.0f} intervals (anchor: 3 x 1000^3 matmul "
            f"{st['anchor_s']:.2f} s; model build {st['build_s']:.2f} s)"
        )
    )
    for col in (
        "scenarios",
        "fast s",
        "fast first s",
        "AC s",
        "AC / fast",
        "max |Δ loading| pp",
        "max |ΔV| pu",
        "stats |Δ| pp",
        "|Δ P(exceed)|",
        "target",
    ):
        table.add_column(col, justify="right")

    def fmt(x: float | None, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    for r in rows:
        table.add_row(
            str(r.scenarios),
            f"{r.fast_s:.3f}",
            f"{r.fast_first_s:.3f}",
            fmt(r.ac_s, ".2f"),
            fmt(r.ratio, ".1f"),
            fmt(r.loading_err_pp, ".3f"),
            fmt(r.voltage_err_pu, ".5f"),
            fmt(r.stats_err_pp, ".3f"),
            fmt(r.p_exceed_diff, ".3f"),
            "fast <= 0.3 s, <= 1 pp" if r.scenarios == 100 else "",
        )
    wide = Console(width=max(console.width, 160))  # ten numeric columns: never truncated
    wide.print(table)
    wide.print(
        f"peak expected loading {st['peak_loading_pct']:.1f} %, lowest p10 voltage {st['min_p10_pu']:.3f} pu"
    )
    wide.print(
        f"first forecast of a new model (100 scenarios, target <= 0.3 s): cold {st['first_cold_s']:.3f} s, "
        f"after prepare() {st['first_prepared_s']:.3f} s (prepare {st['prepare_s']:.2f} s), "
        f"warm {st['first_warm_s']:.3f} s; cold / warm {st['first_cold_s'] / st['first_warm_s']:.2f}, "
        f"cold / anchor {st['first_cold_s'] / st['anchor_s']:.2f}"
    )


def bench_study(
    scenario: Annotated[str, typer.Option(help="Scenario to time over the whole year.")] = "stor",
    stress: Annotated[str, typer.Option(help="Stress level for policy scenarios.")] = "critical",
) -> None:
    """One scenario-year (35,040 steps) of the Schutterwald study: solve time, AC check time, RSS."""
    from gridflex.bench.study import run_study_bench

    fig = run_study_bench(scenario, stress)
    steps = fig.steps
    table = figures_table(
        f"gridflex bench study: {scenario}, one year ({steps:,} steps, {fig.households} households)"
    )
    table.add_row("region + households + year profiles (s)", f"{fig.inputs_s:.1f}", "")
    table.add_row("per-step OPF over the year, incl. engine build (s)", f"{fig.run_s:.1f}", "<= 15")
    table.add_row("  of which solves (by site or HiGHS) + updates (s)", f"{fig.solve_s:.1f}", "")
    table.add_row("  ms per step", f"{fig.solve_ms_per_step:.2f}", "")
    table.add_row(
        "  steps answered site by site (certified, no HiGHS)",
        f"{fig.steps_by_site:,} of {steps:,} ({fig.steps_by_site / steps:.1%})",
        "",
    )
    table.add_row("AC check, power-grid-model batch (s)", f"{fig.ac_check_s:.1f}", "")
    table.add_row("OPF + AC check (s)", f"{fig.run_s + fig.ac_check_s:.1f}", "<= 30")
    table.add_row(
        "AC vs DC at the HV/MV station, mean / max (%)",
        f"{fig.ac_dc_mean_rel_pct:.2f} / {fig.ac_dc_max_rel_pct:.2f}",
        "< 5 (the Schutterwald study)",
    )
    table.add_row("peak RSS (MB)", f"{fig.rss_mb:,.0f}", "< 4,096")
    Console().print(table)
