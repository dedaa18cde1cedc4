"""`GET /forecast/congestion`: the probabilistic congestion forecast the service computes after every plan.

Without `scenarios` it serves the latest background forecast (cloud_controller/forecast/
probabilistic.py): every transformer, line and bus, per interval the expected value, p10 /
p50 / p90 and P(exceed), and the alerts; `/forecast/congestion/cdf` the cumulative
probability of each element's horizon-worst value (what the dashboard plots per element).
`?scenarios=N` (N > 0) keeps the older on-demand view: N AC scenarios of the plan through
the planner's `congestion_forecast` (the HV/MV transformer, each station and the most loaded
line), capped by `api.max_scenarios`, the operator's once roles are on, cached per plan and N.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from prometheus_client.core import GaugeMetricFamily, Metric

from cloud_controller.forecast.background import BackgroundForecast, LatestForecast
from cloud_controller.forecast.indicators import QUANTILES

if TYPE_CHECKING:
    from cloud_controller.live.types import Plan
    from cloud_controller.service import CloudController

__all__ = ["ScenarioCache", "congestion_view", "forecast_metrics", "forecast_router"]

KINDS = ("transformer", "line", "bus", "fleet_limit")


def _r(x: float, nd: int) -> float | None:
    return round(float(x), nd) if np.isfinite(x) else None


def _starts(latest: LatestForecast) -> list[datetime]:
    ts = latest.plan_at.timestamp()
    first = datetime.fromtimestamp(ts - ts % latest.period_s, tz=UTC)
    return [first + timedelta(seconds=k * latest.period_s) for k in range(latest.forecast.n_intervals)]


def congestion_view(
    latest: LatestForecast | None,
    holder: BackgroundForecast,
    *,
    kinds: tuple[str, ...] = KINDS,
    element: str | None = None,
    top: int = 0,
) -> dict[str, Any]:
    """The JSON of `GET /forecast/congestion`: one shape before and after the first forecast."""
    out: dict[str, Any] = {
        "status": "pending" if latest is None else "ready",
        "computed_at": None,
        "plan_at": None,
        "method": None,
        "scenarios": 0,
        "compute_s": None,
        "v_band_pu": None,
        "alert_level": None,
        "quantile_levels": list(QUANTILES),
        "intervals": [],
        "ac_checked": [],
        "elements": [],
        "alerts": [],
        "runs": holder.runs,
        "errors": holder.errors,
        "last_error": holder.last_error,
    }
    if latest is None:
        return out
    f = latest.forecast
    starts = _starts(latest)
    rows = [
        e
        for e, k in enumerate(f.kinds)
        if k in kinds and (element is None or element in (f.elements[e], f.names[e]))
    ]
    if top > 0:
        rows = sorted(
            rows, key=lambda e: (-float(np.nanmax(f.p_exceed[e])), -float(np.nanmax(f.expected[e])))
        )[:top]
    q = {p: QUANTILES.index(p) for p in QUANTILES}
    elements = []
    for e in rows:
        bus = f.kinds[e] == "bus"
        nd = 4 if bus else 2
        elements.append(
            {
                "id": f.elements[e],
                "name": f.names[e],
                "kind": f.kinds[e],
                "unit": "pu" if bus else "%",
                "limit": {"low": _r(f.limit_lo[e], 4), "high": _r(f.limit_hi[e], 4)},
                "expected": [_r(v, nd) for v in f.expected[e]],
                **{f"p{round(100 * p)}": [_r(v, nd) for v in f.quantiles[j, e]] for p, j in q.items()},
                "p_exceed": [_r(v, 4) for v in f.p_exceed[e]],
                "max_p_exceed": _r(float(np.nanmax(f.p_exceed[e])), 4),
            }
        )
    out.update(
        computed_at=latest.computed_at,
        plan_at=latest.plan_at,
        method=f.method,
        scenarios=f.n_scenarios,
        compute_s=round(f.compute_s, 4),
        v_band_pu=list(f.options.v_band_pu),
        alert_level=f.options.alert_level,
        intervals=starts,
        ac_checked=[starts[k] for k in f.ac_checked],
        elements=elements,
        alerts=[
            {
                "element": a.element,
                "name": f.names[f.elements.index(a.element)],
                "kind": a.kind,
                "first": starts[a.first],
                "last": starts[a.last],
                "peak": starts[a.peak],
                "p_exceed": round(a.p_exceed, 4),
                "expected": round(a.expected, 4),
                "p90": round(a.p90, 4),
                "limit": a.limit,
            }
            for a in f.alerts
            if element is None or element in (a.element, f.names[f.elements.index(a.element)])
        ],
    )
    return out


def cdf_view(latest: LatestForecast | None, element: str | None) -> dict[str, Any]:
    """Per element, the value its horizon-worst reaches with each probability (an empirical CDF)."""
    if latest is None:
        return {"status": "pending", "levels": [], "elements": []}
    f = latest.forecast
    if element is not None:
        try:
            rows = [f.index(element)]
        except KeyError:
            raise HTTPException(404, f"no element {element!r} in the forecast") from None
    else:
        rows = list(range(len(f.elements)))
    return {
        "status": "ready",
        "computed_at": latest.computed_at,
        "scenarios": f.n_scenarios,
        "levels": list(f.cdf_levels),
        "elements": [
            {
                "id": f.elements[e],
                "name": f.names[e],
                "kind": f.kinds[e],
                "indicator": "worst |V - 1| over the horizon, pu"
                if f.kinds[e] == "bus"
                else "highest loading over the horizon, %",
                "values": [_r(v, 5 if f.kinds[e] == "bus" else 2) for v in f.cdf[e]],
            }
            for e in rows
        ],
    }


def forecast_metrics(holder: BackgroundForecast) -> Iterator[Metric]:
    """Prometheus gauges of the latest forecast (for `ControllerMetrics.collect` to yield from)."""
    latest = holder.latest
    alerts = GaugeMetricFamily(
        "gridflex_congestion_alerts",
        "Elements with an alert in the latest congestion forecast",
        labels=["kind"],
    )
    for kind in KINDS:
        n = 0 if latest is None else len({a.element for a in latest.forecast.alerts if a.kind == kind})
        alerts.add_metric([kind], n)
    yield alerts
    yield GaugeMetricFamily(
        "gridflex_congestion_forecast_seconds",
        "Compute time of the latest congestion forecast",
        value=0.0 if latest is None else latest.forecast.compute_s,
    )
    yield GaugeMetricFamily(
        "gridflex_congestion_p_exceed_max",
        "Highest P(exceed) of any element and interval in the latest congestion forecast",
        value=0.0 if latest is None else float(np.nanmax(latest.forecast.p_exceed, initial=0.0)),
    )


class ScenarioCache:
    """AC scenario forecasts of the current plan, one per N: a repeated call costs nothing.

    Why per plan object: a new plan (every period) makes every cached answer stale, so the
    cache holds only the newest plan's; one lock makes concurrent identical calls compute once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan: Plan | None = None
        self._rows: dict[int, list[dict[str, Any]]] = {}
        self.computed = 0  # forecasts actually run (the tests count them)

    def get(self, controller: CloudController, plan: Plan, scenarios: int) -> list[dict[str, Any]]:
        """The rows of `scenarios` AC scenarios over `plan` (computed on the first call only)."""
        with self._lock:
            if self._plan is not plan:
                self._plan, self._rows = plan, {}
            if scenarios not in self._rows:
                self._rows[scenarios] = _scenario_rows(controller, plan, scenarios)
                self.computed += 1
            return self._rows[scenarios]


def _scenario_rows(controller: CloudController, plan: Plan, scenarios: int) -> list[dict[str, Any]]:
    forecast = getattr(controller.planner(), "congestion_forecast", None)
    if forecast is None or plan.site_forecast_kw is None:
        raise HTTPException(status_code=409, detail="this planner has no per-site forecast")
    with controller.planner_lock:
        f = forecast(plan, scenarios)
    start = plan.at.timestamp() - plan.at.timestamp() % plan.period_s
    return [
        {
            "start": datetime.fromtimestamp(start + k * plan.period_s, tz=UTC),
            "element": element,
            "loading_pct": round(float(f.loading_pct[k, e]), 2),
            "p_exceed": round(float(f.p_exceed[k, e]), 4),
            "scenarios": f.n_scenarios,
        }
        for k in range(f.loading_pct.shape[0])
        for e, element in enumerate(f.elements)
    ]


def forecast_router(controller: CloudController) -> APIRouter:
    """`GET /forecast/congestion` and `/forecast/congestion/cdf` over `controller`'s background forecast."""
    router = APIRouter(tags=["forecast"])
    scenario_cache = ScenarioCache()

    @router.get("/forecast/congestion", response_model=None)
    def congestion(
        request: Request,
        scenarios: Annotated[int, Query(ge=0, le=1000)] = 0,
        kind: Annotated[str | None, Query(description="comma list of: " + ", ".join(KINDS))] = None,
        element: Annotated[str | None, Query(description="one element by id or name")] = None,
        top: Annotated[int, Query(ge=0, le=10_000, description="only the N most likely to exceed")] = 0,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """The probabilistic congestion forecast of the last plan, computed in the background after it.

        Per element (every transformer and line in % of its rating, every bus in pu) and interval:
        `expected`, `p10`/`p50`/`p90`, `p_exceed` (share of scenarios above the rating or outside
        the voltage band); `alerts` where P(exceed) reaches the alert level (first/last/peak
        interval, P, expected value and p90 there). `status` is "pending" until the first
        forecast. `scenarios=N` (N > 0): the older on-demand view, N AC scenarios of the plan
        (the HV/MV transformer, each station, the most loaded line; capped by `api.max_scenarios`,
        422 above it; the operator role once roles are on; cached per plan and N).
        """
        if scenarios > 0:
            cap = controller.config.api.max_scenarios
            if scenarios > cap:
                raise HTTPException(422, f"scenarios: at most {cap} (api.max_scenarios), not {scenarios}")
            plan = controller.last_plan
            if plan is None:
                return []
            controller.auth.expensive(request)
            return scenario_cache.get(controller, plan, scenarios)
        chosen: tuple[str, ...] = KINDS
        if kind is not None:
            chosen = tuple(k.strip() for k in kind.split(",") if k.strip())
            unknown = sorted(set(chosen) - set(KINDS))
            if unknown or not chosen:
                raise HTTPException(422, f"kind: unknown {unknown or kind!r}; known: {', '.join(KINDS)}")
        holder = controller.congestion
        return congestion_view(holder.latest, holder, kinds=chosen, element=element, top=top)

    @router.get("/forecast/congestion/cdf")
    def congestion_cdf(
        element: Annotated[str | None, Query(description="one element by id or name")] = None,
    ) -> dict[str, Any]:
        """Per element, its horizon-worst value (highest loading %, or largest |V − 1| pu) at each probability.

        `levels` are the probabilities (0, 0.05, ..., 1), each element's `values` the value reached
        with that probability: plot `values` against `levels` for the cumulative distribution.
        """
        return cdf_view(controller.congestion.latest, element)

    return router
