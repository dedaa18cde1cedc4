"""Commands of `simulators` for the `gridflex` console script."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `gridflex` app (none yet)."""
    del app
