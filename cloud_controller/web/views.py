"""What the dashboard shows, as plain JSON-ready dicts: the API returns them and the pages draw them.

One function per view, reading the controller's in-memory state (snapshots, last plan,
command tracker) and the store; no HTTP here, so the same numbers are unit-tested
without a server and the pages cannot drift from the API.

Sign convention (protocols.units): power is load-positive everywhere, `p_kw` < 0 is
generation or feed-in. A *command* carries the value the device is told: `p_limit_kw`
is a magnitude (PV inverter output cap, EV / heat-pump consumption cap, always >= 0),
while `p_setpoint_kw` of a battery is load-positive (+ = charge). So a PV planned at
-8 kW in `/schedule` is commanded `p_limit_kw` = 8.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cloud_controller.commands import CommandTracker, Tracked
from cloud_controller.live.types import Plan, SiteSnapshot
from protocols.assets import PointKey, Points, Role

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = [
    "SITE_SORT_KEYS",
    "Z_P90",
    "command_rows",
    "command_summary",
    "grid_loading",
    "overview",
    "percentile",
    "query_rows",
    "site_row",
    "site_rows",
    "status",
]

Z_P90 = 1.2816  # standard normal quantile of 0.9: p10/p90 = p50 -/+ Z_P90 * sigma
#: A plan older than this many control periods is stale (the dispatch loop plans every period).
STALE_PERIODS = 2.0
SITE_SORT_KEYS = ("site", "mode", "last_seen", "watermark", "p_net_kw", "soc_pct", "last_ack")


def percentile(sorted_values: Sequence[float], frac: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence (None when empty): the /metrics rule."""
    if not sorted_values:
        return None
    return float(sorted_values[int(frac * (len(sorted_values) - 1))])


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _period_start(at: datetime, period_s: float) -> datetime:
    ts = at.timestamp()
    return datetime.fromtimestamp(ts - ts % period_s, tz=UTC)


def status(controller: CloudController) -> dict[str, Any]:
    """What the banner and the "data as of" line need: broker, plan age, newest telemetry."""
    now = controller.clock.now()
    plan = controller.last_plan
    period_s = controller.config.control.period_s
    plan_age_s = (now - plan.at).total_seconds() if plan is not None else None
    dispatching = controller.config.control.dispatch and controller.role in ("all", "dispatch")
    stale = dispatching and plan_age_s is not None and plan_age_s > STALE_PERIODS * period_s
    measured = [s.measured_at for s in controller.snapshots.values() if s.measured_at is not None]
    connected = controller.session.connected.is_set()
    banners = []
    lease = controller.lease
    standby = lease is not None and lease.status.state == "standby"
    if standby:
        assert lease is not None
        banners.append(f"This controller is on {lease.status.describe()}; it does not dispatch.")
    elif not connected:
        banners.append("The controller has lost the MQTT broker: no telemetry in, no commands out.")
    if stale:
        banners.append(f"The plan is stale: last plan {plan_age_s:.0f} s ago (period {period_s:.0f} s).")
    return {
        "now": now,
        "data_as_of": max(measured) if measured else None,
        "broker_connected": connected,
        "role": controller.role,
        "lease": lease.status.describe() if lease is not None else None,
        "last_plan_at": plan.at if plan is not None else None,
        "plan_age_s": plan_age_s,
        "plan_stale": stale,
        "period_s": period_s,
        # /forecast/congestion?scenarios=N can answer (a planner with a per-site forecast)
        "scenario_forecast": plan is not None
        and plan.site_forecast_kw is not None
        and hasattr(controller.built_planner, "congestion_forecast"),
        "banners": banners,
    }


def command_summary(tracker: CommandTracker) -> dict[str, Any]:
    """Counts by status (pending = sent, not yet answered) and decision-to-ack latency p50/p99."""
    counts = {k: tracker.counts.get(k, 0) for k in ("sent", "applied", "clamped", "rejected", "failed")}
    counts["expired"] = tracker.counts.get("expired", 0)
    counts["missing"] = tracker.missing
    counts["publish_failed"] = tracker.counts.get("publish_failed", 0)
    counts["pending"] = sum(1 for t in tracker.sent.values() if t.status is None)
    lat = tracker.ack_latencies_ms()
    return {
        "counts": counts,
        "ack_latency_ms": {"p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99), "n": len(lat)},
    }


def grid_loading(plan: Plan | None, period_s: float, limit_kw: float | None) -> dict[str, Any]:
    """The constrained element's load over the plan horizon, one shape before and after the first plan.

    Before a plan every list is empty and `at` is null; `start` holds each interval's start
    (UTC), so a client never has to reconstruct the time axis from `at` and `period_s`.
    """
    if plan is None:
        return {
            "at": None,
            "period_s": period_s,
            "element": "hvmv",
            "limit_kw": limit_kw,
            "start": [],
            "baseline_kw": [],
            "planned_kw": [],
            "p10_kw": [],
            "p90_kw": [],
            "loading_pct": [],
            "p_exceed": [],
            "station_background": [],
        }
    first = _period_start(plan.at, plan.period_s)
    n = len(plan.root_baseline_kw)
    sigma: list[float] | None = None
    if plan.site_sigma_kw is not None:
        sigma = [math.sqrt(sum(float(v) ** 2 for v in row)) for row in plan.site_sigma_kw][:n]
    limit = _finite(plan.station_limit_kw)
    p_exceed = {c.start: c.p_exceed for c in plan.congestion if c.element == "hvmv"}
    starts = [first + timedelta(seconds=k * plan.period_s) for k in range(n)]
    return {
        "at": plan.at,
        "period_s": plan.period_s,
        "element": "hvmv",
        "limit_kw": limit,
        "start": starts,
        "baseline_kw": [round(v, 3) for v in plan.root_baseline_kw],
        "planned_kw": [round(v, 3) for v in plan.root_planned_kw[:n]],
        "p10_kw": [round(b - Z_P90 * s, 3) for b, s in zip(plan.root_baseline_kw, sigma, strict=False)]
        if sigma
        else [],
        "p90_kw": [round(b + Z_P90 * s, 3) for b, s in zip(plan.root_baseline_kw, sigma, strict=False)]
        if sigma
        else [],
        "loading_pct": [round(100.0 * v / limit, 2) for v in plan.root_planned_kw[:n]] if limit else [],
        "p_exceed": [round(p_exceed.get(t, 0.0), 4) for t in starts] if limit else [],
        # each metered station's load outside the fleet (in baseline_kw / planned_kw too)
        "station_background": [bg.as_dict() for bg in plan.station_background.values()],
    }


def _fleet_kw(snapshots: Iterable[SiteSnapshot]) -> float:
    return sum(s.p_net_kw for s in snapshots if s.p_net_kw is not None and s.mode != "offline")


def overview(controller: CloudController) -> dict[str, Any]:
    """The fleet now and over the horizon against every limit; overloaded intervals today; modes; commands."""
    now = controller.clock.now()
    plan = controller.last_plan
    configured = controller.config.control.station_limit_kw
    loading = grid_loading(plan, controller.config.control.period_s, configured)
    limits = []
    if configured is not None:
        limits.append({"element": "hvmv", "name": "HV/MV congestion limit", "limit_kw": configured})
    fleet_kw = _fleet_kw(controller.snapshots.values())
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    over = [
        {"start": t, "planned_kw": p}
        for t, p in zip(loading["start"], loading["planned_kw"], strict=True)
        if loading["limit_kw"] is not None
        and today <= t < today + timedelta(days=1)
        and p > loading["limit_kw"]
    ]
    modes = {m: 0 for m in ("online", "offline", "fallback", "degraded", "unknown")}
    for s in controller.snapshots.values():
        modes[s.mode] = modes.get(s.mode, 0) + 1
    return {
        "now": now,
        "fleet_kw": round(fleet_kw, 3),
        "limits": limits,
        "loading_now_pct": round(100.0 * fleet_kw / configured, 2) if configured else None,
        "horizon": loading,
        "overloaded_today": {"count": len(over), "intervals": over},
        "sites": {"total": len(controller.snapshots), **modes},
        "commands": command_summary(controller.tracker),
    }


def _asset_values(snap: SiteSnapshot, suffix: str) -> dict[str, float]:
    out = {}
    for key, value in snap.points.items():
        asset, _, point = key.partition("/")
        if point == suffix and asset != Points.METER_P_KW.asset:
            out[asset] = round(value, 3)
    return out


@dataclass(frozen=True)
class _Lookups:
    """Per-site facts gathered in one pass over the registry and the tracker (1,000 sites x 50k commands)."""

    battery: dict[str, str]
    caps_kw: dict[str, dict[str, float | str]]
    last_ack: dict[str, Tracked]
    watermark: dict[str, int]  # one query for every site, not one per row


def _lookups(controller: CloudController) -> _Lookups:
    battery = {
        s.site: a.asset for s in controller.registry.sites for a in s.assets if a.kind == Role.BATTERY.value
    }
    now = controller.clock.now()
    caps: dict[str, dict[str, float | str]] = {}
    last_ack: dict[str, Tracked] = {}
    for t in controller.tracker.sent.values():
        cmd = t.command
        if cmd.kind == "p_limit_kw" and cmd.valid_from <= now < cmd.valid_until:
            caps.setdefault(cmd.site, {})[cmd.asset] = cmd.value
        if t.ack is not None:
            prev = last_ack.get(cmd.site)
            if prev is None or prev.ack is None or t.ack.ts >= prev.ack.ts:
                last_ack[cmd.site] = t
    return _Lookups(battery, caps, last_ack, controller.store.watermarks())


def site_row(controller: CloudController, snap: SiteSnapshot, facts: _Lookups) -> dict[str, Any]:
    """One line of the sites table: mode, last seen, watermark, each asset's power, SoC, caps, last ack."""
    plan = controller.last_plan
    battery = facts.battery.get(snap.site, Points.BATTERY_SOC_PCT.asset)
    soc = snap.points.get(str(PointKey(battery, Points.BATTERY_SOC_PCT.point)))
    ack = facts.last_ack.get(snap.site)
    return {
        "site": snap.site,
        "mode": snap.mode,
        "last_seen": snap.last_seen,
        "watermark": facts.watermark.get(snap.site, -1),
        "p_net_kw": snap.p_net_kw,
        "assets_p_kw": _asset_values(snap, "p_kw"),
        "soc_pct": round(soc, 2) if soc is not None else None,
        "caps_kw": facts.caps_kw.get(snap.site, {}),
        "setpoints_kw": plan.site_setpoints.get(snap.site, {}) if plan else {},
        "excluded": bool(plan and snap.site in plan.excluded_sites),
        "last_ack": None
        if ack is None or ack.ack is None
        else {"ts": ack.ack.ts, "status": ack.status, "asset": ack.command.asset, "reason": ack.ack.reason},
    }


def site_rows(controller: CloudController, sites: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Rows of `sites` (default: every registered site), in registry order."""
    facts = _lookups(controller)
    wanted = controller.snapshots.keys() if sites is None else sites
    return [site_row(controller, controller.snapshots[s], facts) for s in wanted if s in controller.snapshots]


def _sort_value(row: Mapping[str, Any], key: str) -> tuple[int, Any]:
    value = row.get(key)
    if key == "last_ack":
        value = value["ts"] if value else None
    return (1, value) if value is None else (0, value)  # missing values last


def query_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    sort: str = "site",
    descending: bool = False,
    text: str = "",
    mode: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> dict[str, Any]:
    """Filter (site id substring, mode), sort and page the sites table on the server (1,000+ sites)."""
    if sort not in SITE_SORT_KEYS:
        raise ValueError(f"cannot sort by {sort!r}; one of {', '.join(SITE_SORT_KEYS)}")
    needle = text.strip().lower()
    picked = [r for r in rows if needle in str(r["site"]).lower() and (mode is None or r["mode"] == mode)]
    present = [r for r in picked if _sort_value(r, sort)[0] == 0]
    absent = [r for r in picked if _sort_value(r, sort)[0] == 1]
    present.sort(key=lambda r: _sort_value(r, sort)[1], reverse=descending)
    ordered = present + absent
    return {
        "total": len(rows),
        "matched": len(ordered),
        "offset": offset,
        "limit": limit,
        "rows": ordered[offset : offset + limit],
    }


def command_rows(
    tracker: CommandTracker, *, site: str | None = None, status: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The newest commands first with status, reason and decision-to-ack latency."""
    out = []
    for t in reversed(list(tracker.sent.values())):
        if site is not None and t.command.site != site:
            continue
        shown = t.status or "pending"
        if status is not None and shown != status:
            continue
        lat = t.ack_latency_ms
        out.append(
            {
                "cmd_id": t.command.cmd_id,
                "ts": t.command.ts,
                "site": t.command.site,
                "asset": t.command.asset,
                "kind": t.command.kind,
                "value": t.command.value,
                "valid_from": t.command.valid_from,
                "valid_until": t.command.valid_until,
                "status": shown,
                "reason": t.ack.reason if t.ack else None,
                "applied_value": t.ack.applied_value if t.ack else None,
                "latency_ms": round(lat, 1) if lat is not None else None,
            }
        )
        if len(out) >= limit:
            break
    return out
