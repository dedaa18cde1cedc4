"""What the `gridflex bench` commands share: the `--only` parts, the figures table, one console.

Why a module of its own: every command module (`*_cli.py`) imports these, and the
package's `__init__` imports the command modules; here they import nothing of the bench.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["CONTRACT_PARTS", "DISPATCH_PARTS", "console", "figures_table", "parse_parts"]

console = Console()

CONTRACT_PARTS = ("codec", "mqtt")
DISPATCH_PARTS = ("rundcopp", "step", "mpc")


def parse_parts(values: Sequence[str] | None, known: Sequence[str]) -> tuple[str, ...]:
    """`--only a --only b` or `--only a,b` → the parts in `known`'s order (all when none given)."""
    if not values:
        return tuple(known)
    chosen = {p.strip() for v in values for p in v.split(",") if p.strip()}
    unknown = sorted(chosen - set(known))
    if unknown:
        raise typer.BadParameter(
            f"unknown part(s) {', '.join(unknown)}; known: {', '.join(known)}", param_hint="--only"
        )
    if not chosen:
        raise typer.BadParameter("no part given", param_hint="--only")
    return tuple(p for p in known if p in chosen)


def figures_table(title: str) -> Table:
    """The figure / value / target table every benchmark prints."""
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    return table
