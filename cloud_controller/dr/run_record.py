"""A DR request's run (its `dr_runs` row): built once at selection time, its intervals read back.

The run is the activator's whole state for one request (`activator.py`): the intervals,
the actuation of every selected asset, each site's baseline per interval, and the
counters and rows the activation adds later. Built here from the selection, the sites'
snapshots and the latest plan, without I/O, so a restarted controller finds the same run.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cloud_controller.dr.activation import actuation, interval_bounds
from cloud_controller.dr.delivery import baseline_per_interval, site_selected_kw
from cloud_controller.dr.requests_store import DrRecord
from cloud_controller.live.types import Plan, SiteRef, SiteSnapshot

__all__ = ["new_run", "run_bounds"]


def _iso(t: datetime) -> str:
    return t.isoformat()


def run_bounds(run: Mapping[str, Any]) -> list[tuple[datetime, datetime]]:
    """The run's intervals as (start, end), from the ISO strings it stores."""
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in run["bounds"]]


def new_run(
    record: DrRecord,
    sites: Mapping[str, SiteRef],
    site_order: list[str],
    snaps: Mapping[str, SiteSnapshot],
    plan: Plan | None,
) -> dict[str, Any]:
    """The request's run: intervals, actuations, baselines, and empty counters.

    `site_order` is the registry's order (the plan's per-site forecast columns); a selected
    source that cannot be commanded is listed in `not_commandable` with the reason.
    """
    req, sel = record.request, record.selection
    n = len(sel.get("delivered_kw", [])) or 1
    bounds = interval_bounds(req.start, req.end, n)
    acts: list[dict[str, Any]] = []
    not_commandable: list[str] = []
    for src in sel.get("sources", []):
        if not any(abs(float(v)) > 1e-6 for v in src["kw"]):
            continue  # not selected
        snap = snaps.get(src["site"])
        a = actuation(src, sites.get(src["site"]), snap.points if snap else {})
        if isinstance(a, str):
            not_commandable.append(a)
        else:
            acts.append(a.json())
    baselines: dict[str, Any] = {}
    for site in site_selected_kw(sel.get("sources", []), n):
        snap = snaps.get(site)
        forecast = None
        if plan is not None and plan.site_forecast_kw is not None and site in site_order:
            forecast = [float(v) for v in plan.site_forecast_kw[:, site_order.index(site)]]
        kw, src_names = baseline_per_interval(
            bounds,
            plan_at=plan.at if plan is not None else None,
            period_s=plan.period_s if plan is not None else 0.0,
            forecast_kw=forecast,
            p_now_kw=snap.p_net_kw if snap else None,
        )
        baselines[site] = {"kw": kw, "source": src_names}
    return {
        "bounds": [[_iso(a), _iso(b)] for a, b in bounds],
        "dt_h": (req.end - req.start).total_seconds() / 3600.0 / n,
        "actuations": acts,
        "not_commandable": not_commandable,
        "baseline": baselines,
        "sent_steps": [],
        "cmd_ids": {},
        "acks": {},
        "released": False,
        "dropped_planner_commands": 0,
        "intervals": [],
        "reported_steps": [],
        "totals": {},
    }
