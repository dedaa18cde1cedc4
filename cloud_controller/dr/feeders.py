"""The selection's feeder rows from the latest background congestion forecast (grid-aware, beyond seed 003).

Each MV/LV station with fleet sites below it is one `Feeder`. Per DR step, its headroom is
read from the forecast intervals overlapping that step, the worst of them:

- **increase** (more load under the station): limit − the p90 of its loading, in kW. The
  forecast gives loading in % of rating; 1 % is `rating_kw / limit_pct` kW (the
  market's convention, `market.grid_view`). An overloaded station has 0: no increase
  below it.
- **reduce** (less load): limit + the p10 of its loading, in kW — the flow may fall
  through zero and reverse up to the limit. The forecast's loading is a magnitude, so a
  station already exporting (reverse flow under PV) is read as importing here: a known
  limit, stated in docs/dr.md.

A step no forecast interval covers (no forecast yet, or past its horizon) gets
`UNCHECKED_KW` either way and a note in the selection: the feeders are then not checked
there, and the answer says so rather than pretending.

Pure: forecast and stations in, feeders and notes out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from cloud_controller.dr.problem import Feeder
from cloud_controller.forecast.background import LatestForecast
from cloud_controller.market.grid_view import quantile_pct

__all__ = ["UNCHECKED_KW", "StationGrid", "feeders_from_forecast", "station_grid_of"]

#: Headroom of a step the forecast does not cover (finite: the selection refuses infinities).
UNCHECKED_KW = 1e6


@dataclass(frozen=True)
class StationGrid:
    """What the rows need from the controller: the latest forecast, the stations' sites, their ratings."""

    latest: LatestForecast | None
    station_sites: Mapping[str, frozenset[str]]  # "trafo:<index>" -> the registered sites below it
    rating_kw: Mapping[str, float]  # "trafo:<index>" -> its limit in kW


def station_grid_of(planner: Any, latest: LatestForecast | None) -> StationGrid | None:
    """The planner's stations (`planning.station_sites`) with their ratings from its grid; None without a planner."""
    planning = getattr(planner, "planning", None)
    if planning is None:
        return None
    grid = planning.grid
    names = list(getattr(grid, "branch_names", ()))
    ratings = np.asarray(getattr(grid, "rating_kw", np.zeros(0)), dtype=float)
    rating = {n: float(ratings[k]) for k, n in enumerate(names) if k < ratings.size}
    return StationGrid(latest, dict(planning.station_sites), rating)


def feeders_from_forecast(
    grid: StationGrid, bounds: Sequence[tuple[datetime, datetime]], sites: Sequence[str]
) -> tuple[list[Feeder], list[str]]:
    """(a feeder per station with any of `sites` below it, notes), headroom per step of `bounds`."""
    latest, station_sites, rating_kw = grid.latest, grid.station_sites, grid.rating_kw
    wanted = set(sites)
    stations = {ref: below & wanted for ref, below in station_sites.items() if below & wanted}
    if not stations:
        return [], []
    if latest is None:
        return [], ["no congestion forecast yet: feeder limits not checked"]
    fc = latest.forecast
    starts = [latest.plan_at + timedelta(seconds=j * latest.period_s) for j in range(fc.n_intervals)]
    period = timedelta(seconds=latest.period_s)
    cover = [[j for j, s in enumerate(starts) if s < b and s + period > a] for a, b in bounds]
    notes: list[str] = []
    uncovered = [k for k, js in enumerate(cover) if not js]
    if uncovered:
        notes.append(f"steps {uncovered} beyond the congestion forecast: feeder limits not checked there")
    feeders: list[Feeder] = []
    for ref, below in sorted(stations.items()):
        try:
            row = fc.index(ref)
        except KeyError:
            notes.append(f"station {ref}: not in the congestion forecast, not checked")
            continue
        limit_pct = float(fc.limit_hi[row])
        rating = rating_kw.get(ref)
        if rating is None or not np.isfinite(rating) or limit_pct <= 0:
            notes.append(f"station {ref}: no finite rating, not checked")
            continue
        kw_per_pct = rating / limit_pct
        p90 = quantile_pct(fc, row, 0.9)
        p10 = quantile_pct(fc, row, 0.1)
        inc = [min((limit_pct - p90[j]) * kw_per_pct for j in js) if js else UNCHECKED_KW for js in cover]
        red = [min((limit_pct + p10[j]) * kw_per_pct for j in js) if js else UNCHECKED_KW for js in cover]
        name = fc.names[row] if fc.names[row] else ref
        feeders.append(Feeder(name, frozenset(below), np.asarray(inc), np.asarray(red)))
    return feeders, notes
