"""Yesterday's measurements for a controller that starts today.

A real controller has months of history; a demo controller is born with the demo. The
forecaster's seasonal-naive baseline needs at least the previous day, so the demo hands
the planner yesterday's physics of the same buildings (the no-control twin, stepped
offline) as history *before* the first stored sample, as a utility would import
historical meter data on commissioning. Everything stored live takes precedence.

The secondary-substation meters (`sub-<station>`) get yesterday's grid truth the same
way (`prior_from_meters`): each station's P and Q from the AC power flow over yesterday's
buildings *and* the background households, keyed and signed as the live grid-meter
telemetry is (asset `meter`, points `p_kw`/`q_kvar`, load-positive, a row every poll), so
a controller that forecasts a station's non-fleet load from its meter has a day-ago profile.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cloud_controller import History, Plan, Planner, SiteSnapshot
from gridflex.loop.grid_truth import TruthInterval
from gridflex.loop.reference_run import ReferenceRun
from protocols.assets import Points, substation_site_id
from protocols.messages import Command

__all__ = ["PlannerWithPrior", "PriorHistory", "merge_prior", "prior_from_meters", "prior_from_reference"]

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


def prior_from_meters(
    starts: Sequence[datetime], truth: Sequence[TruthInterval], *, period_s: float, sample_s: float
) -> dict[Key, list[tuple[datetime, float]]]:
    """Every station meter's P and Q over the intervals `starts`, a row every `sample_s` (held per interval)."""
    if len(starts) != len(truth):
        raise ValueError(f"{len(starts)} interval starts for {len(truth)} intervals")
    if not 0 < sample_s <= period_s:
        raise ValueError("need 0 < sample_s <= period_s")
    per = max(1, round(period_s / sample_s))
    step = timedelta(seconds=period_s / per)
    out: dict[Key, list[tuple[datetime, float]]] = {}
    for t0, interval in zip(starts, truth, strict=True):
        for station, flow in interval.station_flow.items():
            site = substation_site_id(station)
            for (asset, point), value in ((Points.METER_P_KW, flow.p_kw), (Points.METER_Q_KVAR, flow.q_kvar)):
                rows = out.setdefault((site, asset, point), [])
                rows.extend((t0 + k * step, float(value)) for k in range(per))
    return out


def merge_prior(
    parts: Sequence[Mapping[Key, list[tuple[datetime, float]]]],
) -> dict[Key, list[tuple[datetime, float]]]:
    """Several imports as one: each key's rows from every part, oldest first."""
    out: dict[Key, list[tuple[datetime, float]]] = {}
    for part in parts:
        for key, rows in part.items():
            out.setdefault(key, []).extend(rows)
    for rows in out.values():
        rows.sort(key=lambda r: r[0])
    return out


def _time(row: tuple[datetime, float]) -> datetime:
    return row[0]


class PriorHistory:
    """`History` that serves imported rows up to the first live row, then the live store.

    Each key's imported rows must be oldest first (`merge_prior` and the `prior_from_*`
    functions make them so).
    """

    def __init__(self, live: History, prior: Mapping[Key, list[tuple[datetime, float]]]) -> None:
        self.live = live
        self.prior = prior

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """Imported rows in [start, end) older than the first live row, then the live rows."""
        live = self.live.read_series(site, asset, point, start, end)
        first_live = live[0][0] if live else end
        rows = self.prior.get((site, asset, point), [])
        # the imported rows are oldest first: cut the window by bisection (a week of them per plan)
        lo = bisect.bisect_left(rows, start, key=_time)
        hi = bisect.bisect_left(rows, min(end, first_live), lo=lo, key=_time)
        return rows[lo:hi] + live


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
