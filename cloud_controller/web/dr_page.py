"""The DR page (`/ui/dr`): requests → selection → acks → delivery, server-rendered like the market pages.

Why one table per stage rather than a page per request: an operator following an event
reads its whole chain at once — what was asked, what the selection gave each site and
source per interval, what the sites answered, what the meters say was delivered against
the baseline. Every number comes from the DR store (the request, its selection and its
run) through `DrActivator.report`, the same as `GET /dr/requests/{id}/report`, so the page
and the API cannot disagree. Pure of I/O beyond reading the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request

if TYPE_CHECKING:
    from cloud_controller.service import CloudController
    from cloud_controller.web.pages import Dashboard

__all__ = ["dr_context", "mount_dr_page"]


def _asked_kw(request: dict[str, Any]) -> list[float]:
    """KW asked per interval (the request's intervals, else its flat kW)."""
    intervals = request.get("intervals") or []
    return [float(iv["p_kw"]) for iv in intervals] if intervals else [float(request["p_kw"])]


def _command_rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    final = run.get("ack_by_cmd", {})
    return [
        {"cmd_id": cmd_id, "step": step, "ack": final.get(cmd_id, "pending")}
        for cmd_id, step in sorted(run.get("cmd_ids", {}).items(), key=lambda kv: (kv[1], kv[0]))
    ]


def dr_context(controller: CloudController, request: Request) -> dict[str, Any]:
    """Every DR request, newest first, with its selection, acks and delivery."""
    out = []
    for record in reversed(controller.dr.requests.all()):
        req = record.request.model_dump(mode="json")
        rid = record.request.request_id
        report = controller.dr_activator.report(rid) or {}
        run = controller.dr.requests.get_run(rid) or {}
        asked = _asked_kw(req)
        out.append(
            {
                "id": rid,
                "status": record.status,
                "program": req["program"],
                "start": req["start"],
                "end": req["end"],
                "direction": req["direction"],
                "objective": req.get("objective") or "flexibility",
                "asked_kw": asked,
                "asked_total_kw": max(asked),
                "unmet_kw": record.selection.get("unmet_kw", []),
                "sources": [
                    s for s in record.selection.get("sources", []) if any(abs(v) > 1e-6 for v in s["kw"])
                ],
                "notes": record.selection.get("notes", []),
                "refusals": record.refusals,
                "acks": report.get("acks", {}),
                "commands": _command_rows(run),
                "not_commandable": report.get("not_commandable", []),
                "intervals": report.get("intervals", []),
                "totals": report.get("totals", {}),
            }
        )
    return {"dr_requests": out}


def mount_dr_page(app: FastAPI, dashboard: Dashboard) -> None:
    """`/ui/dr` in the dashboard's navigation."""
    dashboard.add_page(app, "/ui/dr", "DR", "dr.html", dr_context)
