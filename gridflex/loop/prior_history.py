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

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cloud_controller import History, Plan, Planner, SiteSnapshot
from gridflex.loop.grid_truth import TruthInterval
from gridflex.loop.reference_run import ReferenceRun
from protocols.assets import Points, substation_site_id
from protocols.messages import Command

__all__ = ["PlannerWithPrior", "PriorHistory", "prior_from_meters", "prior_from_reference"]

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
