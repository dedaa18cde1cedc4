"""HTTP API (FastAPI, OpenAPI at /docs): read-only views of the controller; writes need a token.

The operator's dashboard (`cloud_controller/web`) is mounted on the same app: its pages at
`/` and `/ui/...`, the JSON they draw beside these endpoints; `/docs` and `/redoc` are
served from local assets, so they work offline.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.middleware.gzip import GZipMiddleware
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from pydantic import ValidationError

from cloud_controller.web import mount_dashboard, mount_offline_docs
from cloud_controller.web.views import grid_loading
from protocols.messages import DRRequest

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["API_DESCRIPTION", "create_app"]

API_DESCRIPTION = """Read-only views of the GridFlex cloud controller; writes need a Bearer token.

**Sign convention** (everywhere, as in `protocols.units`): power is *load-positive*, seen
from the grid. `p_kw` > 0 is consumption or battery charging, `p_kw` < 0 is generation,
feed-in or battery discharge. `/schedule` and every `*_kw` series and setpoint are in
this convention, so a PV plant planned to produce 8 kW shows as **-8 kW**.

A **command** carries what the device is told: `p_limit_kw` is a *magnitude* (the cap on
a PV inverter's output or on an EV charger's / heat pump's consumption, always >= 0), so
the same PV plant is commanded `p_limit_kw` = **+8**; `p_setpoint_kw` of a battery is
load-positive (+ = charge).

Times are UTC (ISO 8601). The dashboard's pages (`/`) draw the `dashboard` endpoints.
"""


def _metrics(controller: CloudController) -> bytes:
    reg = CollectorRegistry()
    st, ing = controller.stats, controller.ingest.stats

    def gauge(name: str, doc: str, value: float, **labels: str) -> None:
        g = Gauge(name, doc, list(labels), registry=reg)
        (g.labels(**labels) if labels else g).set(value)

    gauge("gridflex_samples_stored_total", "Samples stored (distinct site, seq)", ing.samples_stored)
    gauge("gridflex_duplicates_total", "Duplicate samples dropped", ing.duplicates)
    gauge("gridflex_gaps_total", "Batches that arrived after a gap", ing.gaps)
    gauge("gridflex_invalid_messages_total", "Messages refused by the contract", ing.invalid)
    gauge("gridflex_dispatch_total", "Control periods planned", st.dispatch_count)
    gauge("gridflex_dispatch_solve_ms", "Solve time of the last plan", st.last_solve_ms)
    g = Gauge("gridflex_commands_total", "Commands by status", ["status"], registry=reg)
    for status, n in controller.tracker.counts.items():
        g.labels(status=status).set(n)
    g.labels(status="missing").set(controller.tracker.missing)
    gauge("gridflex_guard_commands_total", "Commands sent by the fleet guard", st.guard_commands)
    lat = controller.tracker.ack_latencies_ms()
    q = Gauge("gridflex_command_ack_latency_ms", "Plan decision to ack, host ms", ["quantile"], registry=reg)
    for name, frac in (("0.5", 0.5), ("0.99", 0.99)):
        q.labels(quantile=name).set(lat[int(frac * (len(lat) - 1))] if lat else float("nan"))
    m = Gauge("gridflex_sites", "Sites by mode", ["mode"], registry=reg)
    for mode in ("online", "offline", "fallback", "degraded", "unknown"):
        m.labels(mode=mode).set(sum(1 for s in controller.snapshots.values() if s.mode == mode))
    return generate_latest(reg)


def _site(controller: CloudController, site: str) -> dict[str, Any]:
    snap = controller.snapshots[site]
    plan = controller.last_plan
    return {
        "site": site,
        "mode": snap.mode,
        "p_net_kw": snap.p_net_kw,
        "uncontrollable": snap.uncontrollable,
        "excluded": bool(plan and site in plan.excluded_sites),
        "points": snap.points,
        "watermark": controller.store.highest_contiguous_seq(site),
        "last_seen": snap.last_seen,
        "setpoints": plan.site_setpoints.get(site, {}) if plan else {},
        "registry_mismatch": _mismatch(controller, site),
    }


def _mismatch(controller: CloudController, site: str) -> dict[str, list[str]]:
    """The registry against the site's reports: assets that never report, points of unregistered assets."""
    check = controller.ingest.check
    m = check.mismatch(site) if check is not None else None
    return {
        "missing_assets": m.missing_assets if m else [],
        "unregistered_points": m.unregistered_points if m else [],
    }


def create_app(controller: CloudController) -> FastAPI:
    """The controller's HTTP API (and, when enabled, the dashboard) as a FastAPI app over `controller`."""
    app = FastAPI(
        title="GridFlex cloud controller",
        version="1",
        description=API_DESCRIPTION,
        docs_url=None,
        redoc_url=None,
    )
    mount_offline_docs(app)
    app.add_middleware(GZipMiddleware, minimum_size=1000)  # plotly.js: 4.8 MB raw, 1.4 MB compressed

    _status_routes(app, controller)
    _plan_routes(app, controller)
    _dr_routes(app, controller)
    mount_dashboard(app, controller)  # last: its static mount must not shadow the routes above
    return app


def _status_routes(app: FastAPI, controller: CloudController) -> None:
    """Health, metrics and the registered sites' state."""

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "mqtt_connected": controller.session.connected.is_set(),
            "role": controller.role,
            "last_plan_at": controller.stats.last_plan_at,
        }

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(_metrics(controller), media_type="text/plain; version=0.0.4")

    @app.get("/sites")
    def sites() -> list[dict[str, Any]]:
        return [_site(controller, s) for s in controller.snapshots]

    @app.get("/registry")
    def registry() -> dict[str, Any]:
        """Registered sites, sites that send but are not registered, and sites whose reports disagree."""
        check = controller.ingest.check
        unregistered = check.unregistered_sites if check is not None else {}
        return {
            "registered_sites": list(controller.snapshots),
            "unregistered_sites": [{"site": s, "messages": n} for s, n in sorted(unregistered.items())],
            "mismatched_sites": {
                s: m for s in controller.snapshots if any((m := _mismatch(controller, s)).values())
            },
        }

    @app.get("/sites/{site}")
    def site(site: str) -> dict[str, Any]:
        if site not in controller.snapshots:
            raise HTTPException(404, f"unknown site {site!r}")
        return _site(controller, site)


def _plan_routes(app: FastAPI, controller: CloudController) -> None:
    """The last plan: forecast load, congestion, schedule, and the commands sent."""

    @app.get("/grid/loading")
    def grid_loading_view() -> dict[str, Any]:
        """The constrained element's (HV/MV) forecast load over the plan horizon.

        One shape before and after the first plan (lists empty and `at` null before it): `start` per
        interval (UTC), `baseline_kw` (no control, p50), `p10_kw`/`p90_kw` (forecast band), `planned_kw`,
        `loading_pct` of `limit_kw` and `p_exceed` (probability of exceeding it).
        """
        control = controller.config.control
        return grid_loading(controller.last_plan, control.period_s, control.station_limit_kw)

    @app.get("/forecast/congestion")
    def congestion(scenarios: Annotated[int, Query(ge=0, le=1000)] = 0) -> list[dict[str, Any]]:
        """The congestion forecast: the plan's own (scenarios=0) or from AC power flows (scenarios=N).

        scenarios=0: the plan's HV/MV forecast (normal approximation, every period);
        scenarios=N: AC power flows of the region over N sampled load scenarios, per
        transformer and the most loaded line (the FlexiGrid DSO guide; seconds of CPU, on demand).
        """
        plan = controller.last_plan
        if plan is None:
            return []
        if scenarios == 0:
            return [c.__dict__ for c in plan.congestion]
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

    @app.get("/schedule")
    def schedule() -> dict[str, Any]:
        plan = controller.last_plan
        if plan is None:
            return {"at": None, "sites": {}, "excluded": []}
        return {
            "at": plan.at,
            "solve_ms": plan.solve_ms,
            "sites": plan.site_setpoints,
            "excluded": plan.excluded_sites,
        }

    @app.get("/commands")
    def commands(limit: int = 200) -> dict[str, Any]:
        t = controller.tracker
        return {
            "counts": {**t.counts, "missing": t.missing},
            "recent": [
                {
                    "cmd_id": x.command.cmd_id,
                    "site": x.command.site,
                    "asset": x.command.asset,
                    "kind": x.command.kind,
                    "value": x.command.value,
                    "valid_until": x.command.valid_until,
                    "status": x.status,
                    "reason": x.ack.reason if x.ack else None,
                }
                for x in t.recent(max(1, min(limit, 5000)))
            ],
        }


def _dr_routes(app: FastAPI, controller: CloudController) -> None:
    """Demand-response requests: listed openly, posted with the API's Bearer token."""

    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        token = controller.api_token
        if token is None:
            raise HTTPException(403, "writes are disabled: no api.token_file configured")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not authorization or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong Bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/dr/requests")
    def dr_requests() -> list[DRRequest]:
        return controller.dr_requests

    @app.post("/dr/requests", status_code=201, dependencies=[Depends(require_token)])
    async def post_dr_request(request: Request) -> DRRequest:
        """Validated as JSON by the contract's strict model (timestamps as ISO 8601 strings)."""
        body = await request.body()
        try:
            dr = DRRequest.model_validate_json(body)
        except ValidationError as exc:
            raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from None
        controller.dr_requests.append(dr)
        return dr
