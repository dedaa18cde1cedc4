"""The JSON endpoints the dashboard pages poll, documented in OpenAPI beside the controller's own.

Every page draws what one of these returns, so an operator's script sees exactly the
numbers on screen. Power is load-positive (protocols.units): `p_kw` < 0 is generation.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from cloud_controller.store.influx_history import InfluxHistoryError
from cloud_controller.web import views
from cloud_controller.web.network import generated_drawing, network_drawing
from protocols.assets import PointKey

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["MAX_HISTORY_S", "MAX_POINTS", "data_router"]

MAX_HISTORY_S = 7 * 86400.0  # one history request spans at most a week
MAX_POINTS = 100  # points one history request may name (each is a term of its SQL query)


def _parse_points(text: str | None) -> list[PointKey] | None:
    if not text:
        return None
    names = [p.strip() for p in text.split(",") if p.strip()]
    if len(names) > MAX_POINTS:
        raise HTTPException(422, f"points: at most {MAX_POINTS} keys, not {len(names)}")
    try:
        return [PointKey.parse(p) for p in names]
    except ValueError as exc:
        raise HTTPException(422, f"points: {exc}") from None


def data_router(controller: CloudController) -> APIRouter:
    """The dashboard's JSON endpoints over `controller`."""
    router = APIRouter(tags=["dashboard"])
    _fleet_routes(router, controller)
    _site_routes(router, controller)
    _grid_routes(router, controller)
    return router


def _fleet_routes(router: APIRouter, controller: CloudController) -> None:
    """The fleet: status banners, overview and the sites table."""

    @router.get("/fleet/status")
    def fleet_status() -> dict[str, Any]:
        """Broker connection, plan age and the newest telemetry time, with the banners the pages show.

        The plan is stale after two periods; the telemetry time is the "data as of".
        """
        return views.status(controller)

    @router.get("/fleet/overview")
    def fleet_overview() -> dict[str, Any]:
        """The fleet's measured load (kW, load-positive) against every configured limit, and more.

        Also the plan's horizon (see /grid/loading); overloaded intervals today; sites by mode;
        command counts and decision-to-ack latency p50/p99 (host ms).
        """
        return views.overview(controller)

    @router.get("/fleet/sites")
    def fleet_sites(
        *,
        sort: Annotated[str, Query(description=f"one of {', '.join(views.SITE_SORT_KEYS)}")] = "site",
        desc: bool = False,
        q: Annotated[str, Query(max_length=100, description="site id contains")] = "",
        mode: Annotated[str | None, Query(pattern="^(online|offline|fallback|unknown)$")] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> dict[str, Any]:
        """The sites table, filtered, sorted and paged on the server (usable at thousands of sites).

        `assets_p_kw`: each asset's measured power (kW, + = load / charging); `caps_kw`: the
        active `p_limit_kw` commands (a magnitude: PV output or EV/HP consumption cap);
        `setpoints_kw`: the plan's first-period power per asset (load-positive).
        """
        try:
            return views.query_rows(
                views.site_rows(controller),
                sort=sort,
                descending=desc,
                text=q,
                mode=mode,
                offset=offset,
                limit=limit,
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None


def _site_routes(router: APIRouter, controller: CloudController) -> None:
    """Per-site history, the event log and the command log."""

    @router.get("/sites/{site}/history")
    def site_history(
        site: str,
        from_: Annotated[
            datetime | None, Query(alias="from", description="UTC start (default: to - 1 h)")
        ] = None,
        to: Annotated[datetime | None, Query(description="UTC end (default: now)")] = None,
        points: Annotated[
            str | None,
            Query(
                max_length=10_000,
                description=f"comma-separated asset/point keys (at most {MAX_POINTS}), e.g. "
                "meter/p_kw,bat1/soc_pct; default all",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Stored telemetry of one site in [from, to) plus the commands sent to it, on one time axis.

        The telemetry comes from the controller's SQLite store, or from InfluxDB where
        `store.history` says so (503 naming the reason when InfluxDB does not answer); the
        commands are those sent to the site in that window.
        """
        if site not in controller.snapshots and site not in controller.meter_snapshots:  # grid meters too
            raise HTTPException(404, f"unknown site {site!r}")
        end = to or controller.clock.now()
        start = from_ or end - timedelta(hours=1)
        if start.tzinfo is None or end.tzinfo is None:
            raise HTTPException(422, "from/to need a time zone (e.g. 2030-01-15T12:00:00Z)")
        if not start < end or (end - start).total_seconds() > MAX_HISTORY_S:
            raise HTTPException(422, f"need from < to, at most {MAX_HISTORY_S / 86400:.0f} days apart")
        try:
            series = controller.history.read_history(site, start, end, _parse_points(points))
        except InfluxHistoryError as exc:
            raise HTTPException(503, f"history unavailable: {exc}") from None
        commands = [
            c for c in views.command_rows(controller.tracker, site=site, limit=5000) if start <= c["ts"] < end
        ]
        return {
            "site": site,
            "from": start,
            "to": end,
            "series": [
                {"point": str(key), "ts": [t for t, _ in rows], "value": [v for _, v in rows]}
                for key, rows in sorted(series.items())
            ],
            "commands": commands[::-1],
        }

    @router.get("/events")
    def events(
        site: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    ) -> list[dict[str, Any]]:
        """The event log, newest first: faults, fallback entered/left, opt-outs, queue drops."""
        found = controller.store.read_events(site=site, kind=kind, since=since, limit=limit)
        return [e.model_dump(mode="json") for e in found]

    @router.get("/commands/log")
    def command_log(
        site: str | None = None,
        status: Annotated[
            str | None, Query(pattern="^(pending|applied|clamped|rejected|failed|expired|missing)$")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    ) -> dict[str, Any]:
        """Commands newest first with status, the agent's reason and decision-to-ack latency (ms).

        `value` is what the device is told: `p_limit_kw` a magnitude (>= 0), `p_setpoint_kw`
        load-positive (battery + = charge).
        """
        return {
            **views.command_summary(controller.tracker),
            "recent": views.command_rows(controller.tracker, site=site, status=status, limit=limit),
        }


def _grid_routes(router: APIRouter, controller: CloudController) -> None:
    """The network drawing (the region's, computed once per router and kept)."""
    drawing: dict[str, Any] = {}

    @router.get("/grid/network")
    def grid_network() -> dict[str, Any]:
        """The network to draw, lines grouped by the station (element) that feeds them.

        Pandapower bus geodata where present, else a generated one-line layout.
        """
        region = getattr(controller.built_planner, "region", None)
        if region is not None:
            if "region" not in drawing:
                drawing["region"] = network_drawing(region)
            return drawing["region"]  # type: ignore[no-any-return]
        elements = ["hvmv"]
        plan = controller.last_plan
        if plan is not None:
            elements += sorted({c.element for c in plan.congestion} - {"hvmv"})
        return generated_drawing(elements)
