"""Commands that belong to no single package: schema, broker, bench."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the core commands to the `gridflex` app."""
    del app
