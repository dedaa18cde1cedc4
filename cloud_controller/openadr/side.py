"""The controller's OpenADR side: the VTN it serves, and the optional auto mode after each forecast.

Built once by the controller (so the API's router and the forecast loop share one VTN and
one SQLite file). Auto mode (`openadr.auto_program` set): after every background
congestion forecast, GridFlex as the BL publishes one event per congested station into
that programme (created when missing), ratings taken from the planner's grid model
(`limits_from_pandapower`, the nominal kW a loading % is of). The window is the UTC day of
the forecast's first step; dispatches past its end are counted in `dropped`. Every
failure is counted and kept in `last_error` (`GET /openadr3/status`, a BL token), never raised into the controller's forecast loop.
Every stored write also goes to the subscription notifier (`notifier.py`), whose counters
are in the same status.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cloud_controller.grid.limits import limits_from_pandapower
from cloud_controller.openadr.from_forecast import (
    INTERNAL_BL,
    Published,
    points_from_forecast,
    publish_congestion_events,
)
from cloud_controller.openadr.notifier import Notifier
from cloud_controller.openadr.oauth import OAuthError
from cloud_controller.openadr.router import PREFIX, build_vtn, openadr_router

if TYPE_CHECKING:
    from cloud_controller.config import CloudConfig
    from cloud_controller.forecast.background import LatestForecast
    from protocols.clock import Clock

__all__ = ["OpenAdrSide"]

log = logging.getLogger(__name__)


class OpenAdrSide:
    """The VTN, its OAuth clients, and what auto mode did (counts, the last result and error)."""

    def __init__(self, config: CloudConfig, clock: Clock) -> None:
        self.vtn, self.oauth = build_vtn(config, clock)
        oa = config.openadr
        self.notifier = Notifier(
            oa.callback_hosts,
            clock=clock,
            attempts=oa.notify_attempts,
            backoff_s=oa.notify_backoff_s,
            timeout_s=oa.notify_timeout_s,
        )
        self.vtn.listeners.append(
            lambda kind, op, obj: self.notifier.on_change(self.vtn.store.all("subscriptions"), kind, op, obj)
        )
        self.auto_program = config.openadr.auto_program
        self.runs = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last: Published | None = None
        self.missing_ratings: list[str] = []

    def router(self) -> APIRouter:
        """The `/openadr3` routes over this side's VTN, and `GET /openadr3/status` (a BL token) first."""
        outer = APIRouter()

        @outer.get(PREFIX + "/status", tags=["openadr3"])
        def status(request: Request) -> JSONResponse:
            """Auto mode's counters and last result, token and write counters (not an OpenADR resource)."""
            try:
                client = self.oauth.check(request.headers.get("authorization"))
            except OAuthError as exc:
                return JSONResponse({"error": exc.error, "error_description": exc.description}, exc.status)
            if client.role != "bl":
                return JSONResponse({"title": "forbidden", "status": 403, "detail": "a BL token"}, 403)
            return JSONResponse(self.status())

        outer.include_router(openadr_router(self.vtn, self.oauth))
        return outer

    def _program_id(self, name: str) -> str:
        for p in self.vtn.store.all("programs"):
            if p["programName"] == name:
                return str(p["id"])
        return str(self.vtn.create(INTERNAL_BL, "programs", {"programName": name})["id"])

    def on_forecast(self, latest: LatestForecast, planner: Any) -> Published | None:
        """Auto mode's step (a worker thread): publish the forecast's congestion events, or count why not."""
        if self.auto_program is None:
            return None
        self.runs += 1
        try:
            region = getattr(planner, "region", None)
            if region is None:
                raise ValueError("the planner has no grid model (region): no transformer ratings")
            ratings = {
                b.name: b.nominal_kw
                for b in limits_from_pandapower(region.net).branches.values()
                if b.kind == "trafo"
            }
            points, self.missing_ratings = points_from_forecast(latest, ratings)
            if not points:
                raise ValueError("no transformer of the forecast has a rating in the grid model")
            first = points[0].start.astimezone(UTC)
            window = datetime(first.year, first.month, first.day, tzinfo=UTC)
            self.last = publish_congestion_events(
                self.vtn, self._program_id(self.auto_program), points, window_start=window
            )
            self.last_error = None
            return self.last
        except Exception as exc:  # counted and kept: the forecast loop must go on
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("openadr auto events failed: %s", self.last_error)
            return None

    def status(self) -> dict[str, Any]:
        """Counters for the operator: auto-mode runs, errors, the last error and publication."""
        last = self.last
        return {
            "auto_program": self.auto_program,
            "runs": self.runs,
            "errors": self.errors,
            "last_error": self.last_error,
            "missing_ratings": self.missing_ratings,
            "last": None
            if last is None
            else {"events": last.events, "uncongested": last.uncongested, "dropped": last.dropped},
            "writes": self.vtn.writes,
            "refusals": self.vtn.refusals,
            "tokens_issued": self.oauth.issued,
            "tokens_refused": self.oauth.refused,
            "notifications": self.notifier.status(),
        }

    def close(self) -> None:
        """Stop the notifier (bounded) and close the VTN's store (the controller's shutdown)."""
        self.notifier.close()
        self.vtn.store.close()
