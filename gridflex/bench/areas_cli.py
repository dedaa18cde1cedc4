"""`gridflex bench areas`: the MPC by area on 1 worker and on N, in one run (bench/dispatch/areas.py)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `areas` to `gridflex bench`."""

    @app.command("areas")
    def bench_areas(
        buildings: Annotated[int, typer.Option(min=1, help="Buildings in the MPC.")] = 10_000,
        horizon: Annotated[int, typer.Option(min=1, help="Periods (15 min each).")] = 96,
        execution: Annotated[
            str, typer.Option(help="serial (threads), processes or dask (a LocalCluster).")
        ] = "processes",
        workers: Annotated[int, typer.Option(min=1, help="Workers of the run compared with 1.")] = 2,
        rounds: Annotated[
            int, typer.Option(min=1, help="1 vs N this many times, alternating (a shared machine's noise).")
        ] = 1,
    ) -> None:
        """MPC by area on 1 worker vs `--workers`: start-up, cold and warm solve, speed-up and per-worker scaling."""
        from pathlib import Path

        from cloud_controller.dispatch import EXECUTIONS
        from gridflex.bench.dispatch.areas import format_area_scaling, run_area_scaling

        if execution not in EXECUTIONS:
            raise typer.BadParameter(f"one of {', '.join(EXECUTIONS)}", param_hint="--execution")
        import sys

        def say(r: object) -> None:
            print(f"[bench areas] {r}", file=sys.stderr, flush=True)

        rows = run_area_scaling(
            buildings, horizon, execution, ((1, workers) if workers > 1 else (1,)) * rounds, progress=say
        )
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        print(format_area_scaling(rows, load))
