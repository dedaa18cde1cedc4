"""Events from the congestion forecast, per congestion point (station): pure, no I/O.

Two shapes of the same forecast, because the Dutch profile does not accept the plain one:

- `capacity_limit_event`: OpenADR 3.1's own signal, one interval per forecast step where
  the forecast load passes the station's limit (headroom = limit − load < 0), carrying
  `IMPORT_CAPACITY_LIMIT` = the limit in kW, targeted at the station. A VEN below it keeps
  its import under the cap while the forecast says the station would go over.
- `flex_dispatch_event`: the NL flex profile's FLEX dispatch (OpenADR DER profile
  v1.0.0, read from `openadr3-client-nlflex-compliance`): exactly one `FLEX` payload
  descriptor in KW; one Group-ID target; an event-level intervalPeriod of P1D; dispatch
  intervals of PT2H, PT4H or PT6H whose FLEX value is the kW to take off (the forecast's
  worst overload in the dispatch, rounded up to 0.01 kW), with adjacent hours of PT1H and
  FLEX 0 either side where they fit; report descriptors ACK (frequency 0) and
  DELIVERED_FLEX (reportIntervals INTERVALS, frequency −1, repeat 1).

Dispatches are placed greedily: from the first congested step, the shortest allowed
duration that covers every congested step starting within 6 h; the next dispatch starts at
the first congested step after it. A dispatch (or adjacent hour) outside the event's
24-hour window is left out and counted in `dropped`, never silently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "DISPATCH_DURATIONS",
    "CongestionPoint",
    "FlexDispatch",
    "capacity_limit_event",
    "flex_dispatch_event",
    "plan_dispatches",
]

DISPATCH_DURATIONS = (timedelta(hours=2), timedelta(hours=4), timedelta(hours=6))
ADJACENT = timedelta(hours=1)
WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class CongestionPoint:
    """One station's forecast: load (kW, e.g. the p90) per step from `start`, and its limit (kW)."""

    station: str
    start: datetime
    step: timedelta
    load_kw: Sequence[float]
    limit_kw: float

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError(f"{self.station}: start must be time-zone aware")
        if self.step <= timedelta(0):
            raise ValueError(f"{self.station}: step must be positive")
        if not self.limit_kw > 0 or not math.isfinite(self.limit_kw):
            raise ValueError(f"{self.station}: limit_kw must be a positive number, not {self.limit_kw}")
        bad = [k for k, x in enumerate(self.load_kw) if not math.isfinite(x)]
        if bad:
            raise ValueError(f"{self.station}: load_kw is not finite at steps {bad[:5]}")

    def step_start(self, k: int) -> datetime:
        """Start of step `k`."""
        return self.start + k * self.step

    def headroom_kw(self) -> list[float]:
        """Limit minus forecast load per step; negative where the station is forecast over its limit."""
        return [self.limit_kw - x for x in self.load_kw]


@dataclass(frozen=True)
class FlexDispatch:
    """A planned dispatch: start, duration, and the kW to take off (worst overload, up to 0.01 kW)."""

    start: datetime
    duration: timedelta
    flex_kw: float


@dataclass
class DispatchPlan:
    """The dispatches of one event, and how many were left out (outside the window, > 6 h runs kept)."""

    dispatches: list[FlexDispatch] = field(default_factory=list)
    dropped: int = 0


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _duration(td: timedelta) -> str:
    """ISO 8601 duration of whole seconds (what pydantic and the client parse)."""
    s = int(td.total_seconds())
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if s == 86400:
        return "P1D"
    return "PT" + (f"{h}H" if h else "") + (f"{m}M" if m else "") + (f"{sec}S" if sec or not s else "")


def capacity_limit_event(
    point: CongestionPoint, program_id: str, *, event_name: str | None = None
) -> dict[str, Any]:
    """The plain OpenADR event (IMPORT_CAPACITY_LIMIT per congested step); intervals empty if none is congested."""
    intervals = [
        {
            "id": k,
            "intervalPeriod": {"start": _iso(point.step_start(k)), "duration": _duration(point.step)},
            "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [round(point.limit_kw, 2)]}],
        }
        for k, h in enumerate(point.headroom_kw())
        if h < 0
    ]
    return {
        "programID": program_id,
        "eventName": event_name or f"capacity-limit-{point.station}",
        "targets": [point.station],
        "payloadDescriptors": [
            {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}
        ],
        "intervals": [dict(iv, id=i) for i, iv in enumerate(intervals)],
    }


def plan_dispatches(point: CongestionPoint, window_start: datetime) -> DispatchPlan:
    """Greedy dispatches over the congested steps that fall inside [window_start, +24 h)."""
    over = [k for k, h in enumerate(point.headroom_kw()) if h < 0]
    window_end = window_start + WINDOW
    plan = DispatchPlan()
    i = 0
    while i < len(over):
        s = point.step_start(over[i])
        horizon = s + DISPATCH_DURATIONS[-1]
        covered = [k for k in over[i:] if point.step_start(k) < horizon]
        need = point.step_start(covered[-1]) + point.step - s
        d = next((dd for dd in DISPATCH_DURATIONS if dd >= need), DISPATCH_DURATIONS[-1])
        inside = [k for k in over[i:] if point.step_start(k) < s + d]
        worst_kw = max(point.load_kw[k] - point.limit_kw for k in inside)
        if s >= window_start and s + d <= window_end:
            plan.dispatches.append(FlexDispatch(s, d, math.ceil(round(worst_kw * 100, 6)) / 100))
        else:
            plan.dropped += 1
        i += len(inside)
    return plan


def _adjacent_hours(dispatches: list[FlexDispatch], window_start: datetime) -> list[datetime]:
    """Starts of the PT1H adjacent hours that fit: inside the window, overlapping nothing placed."""
    window_end = window_start + WINDOW
    taken = [(d.start, d.start + d.duration) for d in dispatches]
    out: list[datetime] = []
    for d in dispatches:
        for a in (d.start - ADJACENT, d.start + d.duration):
            if a < window_start or a + ADJACENT > window_end:
                continue
            if any(a < hi and lo < a + ADJACENT for lo, hi in taken):
                continue
            taken.append((a, a + ADJACENT))
            out.append(a)
    return out


def flex_dispatch_event(
    point: CongestionPoint,
    program_id: str,
    *,
    window_start: datetime,
    group_id: str | None = None,
    event_name: str | None = None,
) -> tuple[dict[str, Any], DispatchPlan]:
    """The NL profile's FLEX dispatch event for one congestion point (and its plan, for `dropped`)."""
    plan = plan_dispatches(point, window_start)
    rows: list[tuple[datetime, timedelta, float]] = [
        (d.start, d.duration, d.flex_kw) for d in plan.dispatches
    ]
    rows += [(a, ADJACENT, 0.0) for a in _adjacent_hours(plan.dispatches, window_start)]
    rows.sort(key=lambda r: r[0])
    event = {
        "programID": program_id,
        "eventName": event_name or f"flex-{point.station}-{window_start:%Y%m%d}",
        "targets": [group_id or point.station],
        "payloadDescriptors": [
            {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "FLEX", "units": "KW"}
        ],
        "reportDescriptors": [
            {"payloadType": "ACK", "frequency": 0},
            {"payloadType": "DELIVERED_FLEX", "reportIntervals": "INTERVALS", "frequency": -1, "repeat": 1},
        ],
        "intervalPeriod": {"start": _iso(window_start), "duration": "P1D"},
        "intervals": [
            {
                "id": i,
                "intervalPeriod": {"start": _iso(s), "duration": _duration(d)},
                "payloads": [{"type": "FLEX", "values": [v]}],
            }
            for i, (s, d, v) in enumerate(rows)
        ],
    }
    return event, plan
