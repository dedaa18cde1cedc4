"""Measured DR delivery per site and interval against a stated baseline (pure).

Baseline: what the site would have drawn without the request. Where the site's selected
assets include batteries (they report their own power, `p_kw`), it is measured in the
interval itself: the site's **household** — meter minus those batteries, time-weighted as
the actual is — plus the batteries' counterfactual, idle (0 kW): the contract's flexibility
is counted from idle. A selected fan or heat-pump zone has no power point of its own and
stays in the household: its share is not seen and reports as shortfall.
Then the household's own swings (an EV plugging in during the event) cancel out of the
delivery instead of being credited to or charged against the request. Otherwise it is
fixed at selection time: the planner's per-site forecast (the median of its latest plan,
the one the selection saw) averaged over each interval — the plan's periods counted from
its period start, not from the moment it was made — or, where the plan does not cover an
interval or no plan exists (dispatch off), the site's latest measured power at selection
time. Each interval's report names which (`baseline_source`: `household`, `forecast`,
`measured`, `none`).

Why not the forecast where assets are metered (docs/dr.md §7, the 5-site 17:00 event): the
planner's forecast is "yesterday at this time + the smoothed error of the last hours"
(forecast/baseline.py), built for the next hour of congestion control. Yesterday b003's
EV and heat pump drew 11.5 kW at 15:30-16:15 and did not today, so at 16:15 the error
was about −11 kW; faded over 45 minutes it still took 2.2 kW off yesterday's 0.76 kW at
17:00: a household baseline of −1.40 kW (−1.44 in the live run), while the household
drew 5.0 kW, then 8.6-9.1 kW when its EV arrived. No baseline fixed beforehand can know
that EV; the household measured in the interval does.

Actual: the time-weighted mean of the site meter's good samples over the interval
(load-positive kW), each held until the next. Agents report on change (and at least
every `poll.max_age_s`), so a steady value leaves no sample inside the interval: the last
one before its start is its value until the next (`hold_mean`).
Delivered: baseline − actual for a `reduce` request, actual − baseline for `increase`.
Shortfall: max(0, selected − delivered), selected being the site's share of the
selection in that interval (a magnitude). An interval without telemetry has no actual:
it reports `actual_kw = None`, nothing delivered and all of it short — never a silent 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "IntervalDelivery",
    "baseline_per_interval",
    "hold_mean",
    "household_kw",
    "interval_delivery",
    "site_selected_kw",
    "totals",
]

Direction = Literal["reduce", "increase"]


@dataclass(frozen=True)
class IntervalDelivery:
    """One site's delivery in one interval (kW, load-positive baseline and actual)."""

    site: str
    step: int
    start: str
    end: str
    baseline_kw: float
    baseline_source: str
    actual_kw: float | None
    selected_kw: float
    delivered_kw: float
    shortfall_kw: float
    samples: int

    def json(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def site_selected_kw(sources: Sequence[Mapping[str, Any]], n_steps: int) -> dict[str, list[float]]:
    """Per site the selected magnitude per step (|Σ signed kW of its sources|).

    A site whose sources are all 0 kW was not selected: it is left out, so its meter's
    ordinary swings are not reported as shortfall against nothing.
    """
    out: dict[str, list[float]] = {}
    for s in sources:
        row = out.setdefault(str(s["site"]), [0.0] * n_steps)
        for k, v in enumerate(s["kw"][:n_steps]):
            row[k] += float(v)
    return {site: [abs(v) for v in row] for site, row in out.items() if any(abs(v) > 1e-9 for v in row)}


def baseline_per_interval(
    bounds: Sequence[tuple[datetime, datetime]],
    *,
    plan_at: datetime | None,
    period_s: float,
    forecast_kw: Sequence[float] | None,
    p_now_kw: float | None,
) -> tuple[list[float], list[str]]:
    """The baseline kW per interval and where each came from (`forecast` or `measured`).

    An interval takes the time-weighted mean of the forecast periods it overlaps when the
    plan covers all of it; otherwise the measured power (0 when the site never reported).
    """
    values: list[float] = []
    sources: list[str] = []
    for start, end in bounds:
        mean = None
        if plan_at is not None and forecast_kw is not None and len(forecast_kw) > 0 and period_s > 0:
            mean = _forecast_mean(start, end, plan_at, period_s, forecast_kw)
        if mean is None:
            values.append(float(p_now_kw) if p_now_kw is not None else 0.0)
            sources.append("measured" if p_now_kw is not None else "none")
        else:
            values.append(mean)
            sources.append("forecast")
    return values, sources


def _forecast_mean(
    start: datetime, end: datetime, plan_at: datetime, period_s: float, forecast_kw: Sequence[float]
) -> float | None:
    # the plan's forecast[k] is its period k, counted from the period `plan_at` falls in
    ts = plan_at.timestamp()
    anchor = datetime.fromtimestamp(ts - ts % period_s, tz=plan_at.tzinfo)
    t0 = (start - anchor).total_seconds() / period_s
    t1 = (end - anchor).total_seconds() / period_s
    if t0 < 0 or t1 > len(forecast_kw) or t1 <= t0:
        return None
    total = 0.0
    k = math.floor(t0)
    while k < t1:
        lo, hi = max(t0, k), min(t1, k + 1)
        total += float(forecast_kw[k]) * (hi - lo)
        k += 1
    return total / (t1 - t0)


def hold_mean(
    samples: Sequence[tuple[datetime, float]], start: datetime, end: datetime
) -> tuple[float | None, int]:
    """(time-weighted mean over [start, end) of the samples held until the next, samples used).

    `samples` oldest first, any before `start` allowed (the last of them opens the
    interval). Without one at or before `start`, the mean runs from the first sample
    inside; None when there is none at all.
    """
    prior = [(t, v) for t, v in samples if t <= start]
    inside = [(t, v) for t, v in samples if start < t < end]
    points = ([(start, prior[-1][1])] if prior else []) + inside
    if not points:
        return None, 0
    total = 0.0
    for (t, v), nxt in zip(points, [*points[1:], (end, 0.0)], strict=True):
        total += v * (nxt[0] - t).total_seconds()
    span = (end - points[0][0]).total_seconds()
    return (total / span if span > 0 else points[-1][1]), len(points)


def household_kw(
    meter: Sequence[tuple[datetime, float]],
    assets: Sequence[Sequence[tuple[datetime, float]]],
    start: datetime,
    end: datetime,
) -> float | None:
    """The site without its metered DR assets over [start, end): meter − Σ assets, each a held mean (`hold_mean`).

    None when the meter or any asset has no sample to hold.
    """
    site, _ = hold_mean(meter, start, end)
    means = [hold_mean(a, start, end)[0] for a in assets]
    if site is None or any(m is None for m in means):
        return None
    return site - sum(m for m in means if m is not None)


def interval_delivery(
    *,
    site: str,
    step: int,
    bounds: tuple[datetime, datetime],
    direction: Direction,
    baseline_kw: float,
    baseline_source: str,
    samples: Sequence[tuple[datetime, float]],
    selected_kw: float,
) -> IntervalDelivery:
    """The delivery of one site in one interval from its meter's samples (and the last one before it)."""
    actual, n_used = hold_mean(samples, bounds[0], bounds[1])
    if actual is None:
        delivered = 0.0
    else:
        delivered = baseline_kw - actual if direction == "reduce" else actual - baseline_kw
    return IntervalDelivery(
        site=site,
        step=step,
        start=bounds[0].isoformat(),
        end=bounds[1].isoformat(),
        baseline_kw=round(baseline_kw, 6),
        baseline_source=baseline_source,
        actual_kw=None if actual is None else round(actual, 6),
        selected_kw=round(selected_kw, 6),
        delivered_kw=round(delivered, 6),
        shortfall_kw=round(max(0.0, selected_kw - delivered), 6),
        samples=n_used,
    )


def totals(rows: Sequence[Mapping[str, Any]], dt_h: float) -> dict[str, float]:
    """Totals: kW summed over sites per interval, then energy over the intervals (kWh = Σ kW · Δt)."""
    sel = sum(float(r["selected_kw"]) for r in rows)
    dlv = sum(float(r["delivered_kw"]) for r in rows)
    short = sum(float(r["shortfall_kw"]) for r in rows)
    return {
        "selected_kwh": round(sel * dt_h, 6),
        "delivered_kwh": round(dlv * dt_h, 6),
        "shortfall_kwh": round(short * dt_h, 6),
        "delivered_pct": round(100.0 * dlv / sel, 3) if sel > 0 else 0.0,
    }
