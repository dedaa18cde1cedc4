"""HTTP API (FastAPI, OpenAPI at /docs): views of the controller by role (cloud_controller/auth.py).

The operator's dashboard (`cloud_controller/web`) is mounted on the same app: its pages at
`/` and `/ui/...`, the JSON they draw beside these endpoints; `/docs` and `/redoc` are
served from local assets, so they work offline.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.middleware.gzip import GZipMiddleware
from pydantic import ValidationError

from cloud_controller.dr.feeders import station_grid_of
from cloud_controller.dr.problem import SelectionError
from cloud_controller.dr.requests_store import DrRecord
from cloud_controller.dr.service import DrConflict, DrRefused
from cloud_controller.health import health_routes
from cloud_controller.market.roles import MarketAuth, MarketTokens
from cloud_controller.metrics import CONTENT_TYPE, ControllerMetrics
from cloud_controller.web import mount_dashboard, mount_offline_docs
from cloud_controller.web.dr_page import mount_dr_page
from cloud_controller.web.forecast_api import forecast_router
from cloud_controller.web.forecast_quality_api import forecast_quality_router
from cloud_controller.web.grid_state_api import grid_state_router
from cloud_controller.web.limits_api import limits_router
from cloud_controller.web.market_api import market_router, mount_market_pages
from cloud_controller.web.views import grid_loading
from protocols.messages import DRRequest

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["API_DESCRIPTION", "create_app"]

API_DESCRIPTION = """Views of the GridFlex cloud controller and its few writes, by role.

**Roles** (`Authorization: Bearer <token>`, the scheme case-insensitive, one token): writes
need the *operator* token (`api.operator_token_file`). Once `api.viewer_token_file` is set,
every read (these endpoints, the dashboard's JSON and pages, `/metrics`) needs the viewer or
the operator token and `/forecast/congestion?scenarios=N` (N > 0) the operator's; unset,
reads are open (the loopback demo). `/livez`, `/readyz` and `/healthz` are always open.

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
    app.add_middleware(GZipMiddleware, minimum_size=1000)  # pages and JSON; plotly.js comes pre-compressed

    health_routes(app, controller)
    _status_routes(app, controller)
    _plan_routes(app, controller)
    _dr_routes(app, controller)
    app.include_router(grid_state_router(controller), dependencies=[Depends(controller.auth.read)])
    app.include_router(forecast_quality_router(controller), dependencies=[Depends(controller.auth.read)])
    app.include_router(limits_router(controller))  # reads: viewer; PUT: operator (web/limits_api.py)
    app.include_router(forecast_router(controller), dependencies=[Depends(controller.auth.read)])
    if controller.config.market.enabled:
        tokens = MarketTokens.from_config(
            controller.config.market, (controller.auth.tokens.operator, controller.auth.tokens.viewer)
        )
        app.include_router(market_router(controller, controller.market, MarketAuth(tokens, controller.auth)))
    if controller.uftp is not None:  # UFTP's signed-XML endpoints (docs/market.md, "UFTP")
        app.include_router(controller.uftp.router(read=[Depends(controller.auth.read)]))
    if controller.openadr is not None:  # the OpenADR 3.1 VTN under /openadr3 (docs/openadr.md)
        app.include_router(controller.openadr.router())
    dashboard = mount_dashboard(app, controller)  # last: its static mount must not shadow the routes above
    if controller.config.dashboard.enabled:
        mount_dr_page(app, dashboard)
    if controller.config.market.enabled and controller.config.dashboard.enabled:
        mount_market_pages(app, dashboard)
    return app


def _status_routes(app: FastAPI, controller: CloudController) -> None:
    """Metrics and the registered sites' state (a read: the viewer role once roles are on)."""
    read = [Depends(controller.auth.read)]

    exposition = ControllerMetrics(controller)

    @app.get("/metrics", dependencies=read)
    def metrics() -> Response:
        """Prometheus text: counters, the ack-latency histogram, sites by mode (`cloud_controller/metrics.py`).

        Once roles are on, scrape it with a viewer token (`authorization.credentials_file`).
        """
        return Response(exposition.render(), media_type=CONTENT_TYPE)

    @app.get("/sites", dependencies=read)
    def sites() -> list[dict[str, Any]]:
        return [_site(controller, s) for s in controller.snapshots]

    @app.get("/registry", dependencies=read)
    def registry() -> dict[str, Any]:
        """Registered sites, sites that send but are not registered, and sites whose reports disagree."""
        check = controller.ingest.check
        unregistered = check.unregistered_sites if check is not None else {}
        return {
            "registered_sites": list(controller.snapshots),
            "grid_meters": [
                {
                    "site": m.site,
                    "station": m.station,
                    "last_seen": controller.meter_snapshots[m.site].last_seen,
                }
                for m in controller.registry.grid_meters
            ],
            "unregistered_sites": [{"site": s, "messages": n} for s, n in sorted(unregistered.items())],
            "mismatched_sites": {
                s: m for s in controller.snapshots if any((m := _mismatch(controller, s)).values())
            },
        }

    @app.get("/sites/{site}", dependencies=read)
    def site(site: str) -> dict[str, Any]:
        if site not in controller.snapshots:
            raise HTTPException(404, f"unknown site {site!r}")
        return _site(controller, site)


def _plan_routes(app: FastAPI, controller: CloudController) -> None:
    """The last plan: forecast load, congestion, schedule, and the commands sent."""
    read = [Depends(controller.auth.read)]

    @app.get("/grid/loading", dependencies=read)
    def grid_loading_view() -> dict[str, Any]:
        """The constrained element's (HV/MV) forecast load over the plan horizon.

        One shape before and after the first plan (lists empty and `at` null before it): `start` per
        interval (UTC), `baseline_kw` (no control, p50), `p10_kw`/`p90_kw` (forecast band), `planned_kw`,
        `loading_pct` of `limit_kw` and `p_exceed` (probability of exceeding it); `station_background`:
        each metered station's load outside the fleet, measured and forecast (live/station_load.py).
        """
        control = controller.config.control
        return grid_loading(controller.last_plan, control.period_s, control.station_limit_kw)

    @app.get("/schedule", dependencies=read)
    def schedule() -> dict[str, Any]:
        plan = controller.last_plan
        if plan is None:
            return {"at": None, "sites": {}, "excluded": [], "site_limit_shortfalls": []}
        return {
            "at": plan.at,
            "solve_ms": plan.solve_ms,
            "sites": plan.site_setpoints,
            "excluded": plan.excluded_sites,
            # sites whose plan stays over their connection limit (their battery cannot cover it)
            "site_limit_shortfalls": [dataclasses.asdict(s) for s in plan.site_limit_shortfalls],
        }

    @app.get("/commands", dependencies=read)
    def commands(limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> dict[str, Any]:
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
                for x in t.recent(limit)
            ],
        }


def _dr_routes(app: FastAPI, controller: CloudController) -> None:
    """Demand-response requests (docs/dr.md): listed to readers; posted and cancelled by the operator role.

    A post runs the contract check (no contract accepts → 422 naming every broken rule),
    the selection in a worker thread (HiGHS), stores request, selection and status in the
    DR store, prepares its activation (`dr/activator.py`) and publishes the accepted request
    on `dr/{program}/request` (retained). `/report` gives its acks and delivery.
    """
    dr = controller.dr

    def _record(request_id: str) -> DrRecord:
        record = dr.requests.get(request_id)
        if record is None:
            raise HTTPException(404, f"no DR request {request_id!r}")
        return record

    @app.get("/dr/requests", dependencies=[Depends(controller.auth.read)])
    def dr_requests() -> list[dict[str, Any]]:
        return [r.summary() for r in dr.requests.all()]

    @app.get("/dr/requests/{request_id}", dependencies=[Depends(controller.auth.read)])
    def dr_request(request_id: str) -> dict[str, Any]:
        return _record(request_id).summary()

    @app.get("/dr/requests/{request_id}/selection", dependencies=[Depends(controller.auth.read)])
    def dr_selection(request_id: str) -> dict[str, Any]:
        return _record(request_id).selection

    @app.get("/dr/requests/{request_id}/report", dependencies=[Depends(controller.auth.read)])
    def dr_report(request_id: str) -> dict[str, Any]:
        """Activation (commands, acks) and delivery per site and interval against the stated baseline."""
        report = controller.dr_activator.report(request_id)
        if report is None:
            raise HTTPException(404, f"no DR request {request_id!r}")
        return report

    _dr_write_routes(app, controller)


def _dr_write_routes(app: FastAPI, controller: CloudController) -> None:
    """Post and cancel (the operator role)."""
    dr = controller.dr

    @app.post("/dr/requests/{request_id}/cancel", dependencies=[Depends(controller.auth.write)])
    async def dr_cancel(request_id: str) -> dict[str, Any]:
        """Mark it cancelled; its programme's retained topic falls back to the newest live request, or is cleared."""
        record = await asyncio.to_thread(dr.cancel, request_id)
        if record is None:
            raise HTTPException(404, f"no DR request {request_id!r}")
        await controller.dr_activator.tick()  # the release commands, now
        return {**record.summary(), "published": await controller.retain_dr(record.request.program)}

    @app.post("/dr/requests", status_code=201, dependencies=[Depends(controller.auth.write)])
    async def post_dr_request(request: Request) -> dict[str, Any]:
        """Validated as JSON by the contract's strict model (timestamps as ISO 8601 strings)."""
        body = await request.body()
        try:
            req = DRRequest.model_validate_json(body)
        except ValidationError as exc:
            raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from None
        try:
            record = await asyncio.to_thread(
                dr.submit,
                req,
                dict(controller.snapshots),
                sites=controller.dr_activator.ctx.sites,
                grid=station_grid_of(controller.built_planner, controller.congestion.latest),
            )
        except DrConflict as exc:  # recorded already, by this or another controller on the store
            raise HTTPException(409, str(exc)) from None
        except DrRefused as exc:
            raise HTTPException(422, {"reason": str(exc), "refusals": exc.refusals}) from None
        except SelectionError as exc:
            raise HTTPException(422, {"reason": str(exc), "refusals": []}) from None
        controller.dr_requests.append(req)
        await asyncio.to_thread(controller.dr_activator.prepare, record)  # baselines at selection time
        await controller.dr_activator.tick()  # an event starting now gets its commands at once
        published = await controller.publish_dr(req)
        return {**record.summary(), "selection": record.selection, "published": published}
