"""Yesterday's measurements for a controller that starts today.

A real controller has months of history; a demo controller is born with the demo. The
forecaster's seasonal-naive baseline needs at least the previous day, so the demo hands
the planner yesterday's physics of the same buildings (the no-control twin, stepped
offline) as history *before* the first stored sample, as a utility would import
historical meter data on commissioning. Everything stored live takes precedence.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cloud_controller import History, Plan, Planner, SiteSnapshot
from gridflex.loop.reference_run import ReferenceRun
from protocols.messages import Command

__all__ = ["PlannerWithPrior", "PriorHistory", "prior_from_reference"]

Key = tuple[str, str, str]  # (site, asset, point)


def prior_from_reference(ref: ReferenceRun) -> dict[Key, list[tuple[datetime, float]]]:
    """Every recorded (asset, point) series of every site as history rows."""
    out: dict[Key, list[tuple[datetime, float]]] = {}
    for (asset, point), values in ref.series.items():
        for j, site in enumerate(ref.sites):
            column = values[:, j]
            if column.size and column[0] == column[0]:  # NaN: the site lacks that asset
                out[site, asset, point] = [(t, float(v)) for t, v in zip(ref.times, column, strict=True)]
    return out


class PriorHistory:
    """`History` that serves imported rows up to the first live row, then the live store."""

    def __init__(self, live: History, prior: Mapping[Key, list[tuple[datetime, float]]]) -> None:
        self.live = live
        self.prior = prior

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """Imported rows in [start, end) older than the first live row, then the live rows."""
        live = self.live.read_series(site, asset, point, start, end)
        first_live = live[0][0] if live else end
        old = [
            (t, v) for t, v in self.prior.get((site, asset, point), []) if start <= t < min(end, first_live)
        ]
        return old + live


class PlannerWithPrior:
    """Wrap a planner so that it reads live history with imported rows before it."""

    def __init__(self, inner: Planner, prior: Mapping[Key, list[tuple[datetime, float]]]) -> None:
        self.inner = inner
        self.prior = prior

    def plan(self, now: datetime, sites: Mapping[str, SiteSnapshot], history: History) -> Plan:
        """The inner planner's plan, reading `history` with the imported rows before it."""
        return self.inner.plan(now, sites, PriorHistory(history, self.prior))

    def correct(self, now: datetime, sites: Mapping[str, SiteSnapshot]) -> list[Command]:
        """The inner planner's corrections (they read no history)."""
        return self.inner.correct(now, sites)

    def __getattr__(self, name: str) -> Any:
        """Everything else (e.g. `congestion_forecast`) is the inner planner's."""
        return getattr(self.inner, name)
