"""`gridflex chaos`: kill, fuzz and replay against real processes, and print the table of what survived."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["machine", "register"]

console = Console()


def machine() -> str:
    """`nproc`, CPU model and Python: the line the table is printed under."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def register(app: typer.Typer) -> None:
    """Add `gridflex chaos` to the `gridflex` app."""

    @app.command("chaos")
    def chaos(
        short: Annotated[bool, typer.Option("--short", help="the quick mode that `make test` runs")] = False,
        only: Annotated[
            list[str] | None, typer.Option("--only", help="run only these scenarios (repeatable)")
        ] = None,
        out: Annotated[Path | None, typer.Option("--out", help="also write the table as Markdown")] = None,
        workdir: Annotated[
            Path | None, typer.Option("--workdir", help="keep the processes' logs here (default: a temp dir)")
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="seed of the fuzzers and kill times")] = 17,
        log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "WARNING",
    ) -> None:
        """Broker/agent/controller SIGKILLs, fuzzing, replays, ACL isolation and the floor; exit 1 on any FAIL."""
        from gridflex.chaos.result import Result, markdown, table
        from gridflex.chaos.runner import run_chaos

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        started = datetime.now(UTC)

        def show(r: Result) -> None:
            console.print(
                f"{'PASS' if r.ok else 'FAIL'} {r.scenario} ({r.wall_s:.0f} s): {r.figure_text()} {r.note}"
            )

        try:
            results = asyncio.run(run_chaos(only, short=short, workdir=workdir, seed=seed, progress=show))
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        title = f"gridflex chaos{' --short' if short else ''} - {started:%Y-%m-%d %H:%M} UTC - {machine()}"
        console.print(table(results, title))
        if out is not None:
            out.write_text(f"{title}\n\n{markdown(results)}")
            console.print(f"wrote {out}")
        raise typer.Exit(0 if results and all(r.ok or r.skipped for r in results) else 1)
