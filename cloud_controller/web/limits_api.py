"""`GET /grid/limits` (viewer) and `PUT /grid/limits` (operator): every element's limits and the DSO's envelopes.

The limits are the planner's (`MpcPlanner.limits_book`, cloud_controller/grid/limits_config.py):
the net's ratings and bands with the config's overrides and envelopes, plus the operator's
envelopes, which a PUT replaces as a whole. The operator's envelopes are written to the
store before the planner takes them, so a restarted controller plans within them again;
expired ones are dropped on read. The last plan's violations (element by name) come along.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request

from cloud_controller.grid.limits_config import LimitsBook, envelopes_to_rows, limits_view, parse_envelopes
from protocols.errors import ConfigError

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["limits_router"]


def _book(controller: CloudController) -> LimitsBook:
    book = getattr(controller.planner(), "limits_book", None)
    if not isinstance(book, LimitsBook):
        raise HTTPException(409, "this planner has no grid limits")
    return book


def limits_router(controller: CloudController) -> APIRouter:
    """The limits routes over `controller` (reads by the viewer role, the PUT by the operator)."""
    router = APIRouter()

    @router.get("/grid/limits", dependencies=[Depends(controller.auth.read)])
    def get_limits() -> dict[str, Any]:
        """Every transformer's and line's rating and its limit now, every bus's band, the envelopes.

        `violations`: the last plan's, per element by name (kind, interval start, value, limit).
        """
        book = _book(controller)
        now = controller.clock.now()
        period_s = controller.config.control.period_s
        with controller.planner_lock:
            view = limits_view(book.current(now), now, period_s)
        plan = controller.last_plan
        view["violations"] = [v.as_dict() for v in getattr(plan, "violations", None) or []]
        return view

    @router.put("/grid/limits", dependencies=[Depends(controller.auth.write)])
    async def put_limits(request: Request) -> dict[str, Any]:
        """Replace the operator's envelopes: `{"envelopes": [{element, from, until, max_kw | max_loading_pct}]}`.

        Names are the elements' (as `GET /grid/limits` lists them); unknown ones are refused
        (422, with did-you-mean), as is an envelope without a zone or with until <= from.
        """
        try:
            doc = json.loads(await request.body())
        except ValueError:
            raise HTTPException(422, "the body is not JSON") from None
        if not isinstance(doc, dict) or set(doc) != {"envelopes"}:
            raise HTTPException(422, 'the body is {"envelopes": [...]}')
        book = _book(controller)
        try:
            envelopes = parse_envelopes(doc["envelopes"])
            book.check(envelopes)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        now = controller.clock.now()
        fresh = [e for e in envelopes if e.until > now]
        controller.store.replace_envelopes(envelopes_to_rows(fresh))
        with controller.planner_lock:
            book.set_operator(fresh)
            return limits_view(book.current(now), now, controller.config.control.period_s)

    return router
