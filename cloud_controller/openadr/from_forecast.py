"""The controller's congestion forecast → congestion points → events in GridFlex's VTN.

Why kW ratings are passed in: the probabilistic forecast gives a transformer's loading in %
of its rating (and its limit in %), and an OpenADR capacity limit is in kW; the rating
belongs to the grid model (pandapower's `sn_mva`), not to the forecast. A station without a
rating is skipped and named in `missing`, never guessed.

`publish_congestion_events` is GridFlex acting as the DSO's business logic on its own VTN:
it creates or replaces (by `eventName`, so a newer forecast updates the day's event rather
than adding one) one FLEX dispatch event per congested station, or the plain
IMPORT_CAPACITY_LIMIT event when `nl_profile` is off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cloud_controller.forecast.background import LatestForecast
from cloud_controller.openadr.congestion_events import (
    CongestionPoint,
    capacity_limit_event,
    flex_dispatch_event,
)
from cloud_controller.openadr.oauth import Client
from cloud_controller.openadr.resources import Vtn

__all__ = ["Published", "points_from_forecast", "publish_congestion_events"]

#: GridFlex's own business logic, writing to its VTN in-process (not an OAuth client over HTTP).
INTERNAL_BL = Client("gridflex-internal-bl", "-" * 16, "bl")


def points_from_forecast(
    latest: LatestForecast, ratings_kw: Mapping[str, float], *, quantile: float = 0.9
) -> tuple[list[CongestionPoint], list[str]]:
    """One point per transformer row (by station name) with the `quantile` load in kW; and the stations skipped."""
    f = latest.forecast
    if quantile not in f.quantile_levels:
        raise ValueError(f"quantile {quantile} not in the forecast's levels {f.quantile_levels}")
    q = f.quantile_levels.index(quantile)
    ts = latest.plan_at.timestamp()
    start = datetime.fromtimestamp(ts - ts % latest.period_s, tz=UTC)
    step = timedelta(seconds=latest.period_s)
    points: list[CongestionPoint] = []
    missing: list[str] = []
    for e, kind in enumerate(f.kinds):
        if kind != "transformer":
            continue
        name = f.names[e]
        rating = ratings_kw.get(name)
        if rating is None or not rating > 0:
            missing.append(name)
            continue
        load = [float(x) * rating / 100.0 for x in f.quantiles[q, e, :]]
        points.append(CongestionPoint(name, start, step, load, float(f.limit_hi[e]) * rating / 100.0))
    return points, missing


@dataclass
class Published:
    """What one publication did: event ids by station, stations without congestion, dispatches dropped."""

    events: dict[str, str] = field(default_factory=dict)
    uncongested: list[str] = field(default_factory=list)
    dropped: int = 0


def publish_congestion_events(
    vtn: Vtn,
    program_id: str,
    points: list[CongestionPoint],
    *,
    window_start: datetime,
    nl_profile: bool = True,
) -> Published:
    """Create or replace each congested station's event for the window (by eventName)."""
    out = Published()
    existing = {
        e.get("eventName"): e["id"] for e in vtn.store.all("events") if e.get("programID") == program_id
    }
    for point in points:
        if all(h >= 0 for h in point.headroom_kw()):
            out.uncongested.append(point.station)
            continue
        event: dict[str, Any]
        if nl_profile:
            event, plan = flex_dispatch_event(point, program_id, window_start=window_start)
            out.dropped += plan.dropped
            if not event["intervals"]:
                continue
        else:
            event = capacity_limit_event(
                point, program_id, event_name=f"capacity-limit-{point.station}-{window_start:%Y%m%d}"
            )
        known = existing.get(event["eventName"])
        stored = (
            vtn.update(INTERNAL_BL, "events", known, event)
            if known
            else vtn.create(INTERNAL_BL, "events", event)
        )
        out.events[point.station] = stored["id"]
    return out
