"""The demo's DR event scenario (issue 20, seed 003), pure: contracts, the request, the summary's DR section.

`gridflex demo --dr` runs the closed loop with a flexibility contract per battery site of the
fleet (written into the run folder as the controller's `dr.contracts` file) and posts one
reduction request to the controller's API at a set simulated time, with a notice at least
the contracts' minimum. This module holds everything about that event that needs no
socket: the contracts file, the request's body, and the section the summary gains from the
controller's answers (the request, the selection, the measured delivery, the comfort
vetoes) with its verdict.

Why only battery sites are contracted: a contract without a battery and without a
heat-pump/fan envelope from its edge is a flat curtailable load with no asset to command
(docs/dr.md §6 "not_commandable"), so selecting it could only ever show as shortfall.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import yaml

from cloud_controller import SiteRef
from cloud_controller.dr import hold_mean

__all__ = [
    "DrEventSettings",
    "DrSection",
    "contracts_yaml",
    "dr_section",
    "render_dr_markdown",
    "request_body",
]

#: The contracts' minimum notice; the request is posted `DrEventSettings.notice_s` ahead (≥ this).
MIN_NOTICE_S = 1800.0


@dataclass(frozen=True)
class DrEventSettings:
    """One reduction request: posted at `post_at`, `intervals` × `step_min` from `start`, `p_kw` each.

    `p_kw` None: `share` of the contracted battery power (Σ of the contracts' `p_max_kw`).
    Times are simulated (the loop's SimClock).
    """

    start: datetime
    intervals: int = 4
    step_min: int = 15
    notice_s: float = 3600.0
    p_kw: float | None = None
    share: float = 0.4
    program: str = "peak"
    request_id: str = "demo-dr-1"
    #: €/kWh each contracted battery asks (the selection's cost; the request's objective is `flexibility`).
    price_eur_per_kwh: float = 0.10

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("DrEventSettings.start must be timezone-aware (UTC)")
        if not 1 <= self.intervals <= 96:
            raise ValueError(f"DrEventSettings.intervals must be in [1, 96], got {self.intervals}")
        if not 1 <= self.step_min <= 240:
            raise ValueError(f"DrEventSettings.step_min must be in [1, 240], got {self.step_min}")
        if self.notice_s < MIN_NOTICE_S:
            raise ValueError(
                f"DrEventSettings.notice_s must be >= the contracts' minimum notice {MIN_NOTICE_S:g} s, "
                f"got {self.notice_s:g}"
            )
        if self.p_kw is not None and not self.p_kw > 0:
            raise ValueError(f"DrEventSettings.p_kw must be > 0, got {self.p_kw}")
        if not 0 < self.share <= 1:
            raise ValueError(f"DrEventSettings.share must be in (0, 1], got {self.share}")

    @property
    def post_at(self) -> datetime:
        """When the request is posted: `notice_s` before its start."""
        return self.start - timedelta(seconds=self.notice_s)

    @property
    def end(self) -> datetime:
        """The end of the request's last interval."""
        return self.start + timedelta(minutes=self.step_min * self.intervals)

    def check_window(self, window_start: datetime, window_end: datetime, report_after_s: float) -> None:
        """Raise unless the post, the event and its last report fall inside the run's window."""
        last_report = self.end + timedelta(seconds=report_after_s)
        if not window_start <= self.post_at or last_report >= window_end:
            raise ValueError(
                f"the DR event (posted {self.post_at:%H:%M}, {self.start:%H:%M}-{self.end:%H:%M}, its last "
                f"report {report_after_s:g} s after) must lie inside the run's window "
                f"{window_start:%H:%M}-{window_end:%H:%M} UTC"
            )


def battery_sites(sites: Sequence[SiteRef]) -> list[tuple[str, str, float, float]]:
    """(site, battery asset, p_kw, capacity_kwh) of every site with a rated battery, in registry order."""
    out = []
    for s in sites:
        for a in s.assets:
            if a.kind == "battery" and a.p_nominal_kw and a.capacity_kwh:
                out.append((s.site, a.asset, float(a.p_nominal_kw), float(a.capacity_kwh)))
                break
    return out


def contracts_yaml(sites: Sequence[SiteRef], ev: DrEventSettings) -> str:
    """The contracts file (docs/dr.md §5): one reduce contract per battery site of the fleet.

    Each offers its battery's rated power for up to 2 h, once a day, with 30 min notice and
    a 10 % SoC floor. Raises when the fleet has no battery (nothing could be contracted).
    """
    rows = battery_sites(sites)
    if not rows:
        raise ValueError("the fleet has no site with a battery: no DR contract can be written")
    contracts = [
        {
            "site": site,
            "program": ev.program,
            "directions": ["reduce"],
            "p_max_kw": p_kw,
            "events_per_day": 1,
            "max_duration": "PT2H",
            "min_notice": f"PT{int(MIN_NOTICE_S // 60)}M",
            "soc_floor_pct": 10,
            "price_eur_per_kwh": ev.price_eur_per_kwh,
            "battery": {"asset": asset, "capacity_kwh": cap},
        }
        for site, asset, p_kw, cap in rows
    ]
    return yaml.safe_dump({"contracts": contracts}, sort_keys=False)


def request_kw(sites: Sequence[SiteRef], ev: DrEventSettings) -> float:
    """The request's kW per interval: `ev.p_kw`, else `ev.share` of the contracted battery power."""
    if ev.p_kw is not None:
        return ev.p_kw
    return round(ev.share * sum(p for _, _, p, _ in battery_sites(sites)), 1)


def request_body(sites: Sequence[SiteRef], ev: DrEventSettings, now: datetime) -> dict[str, Any]:
    """The `POST /dr/requests` body (a `DRRequest`), stamped `now` (the controller's clock)."""
    p_kw = request_kw(sites, ev)
    return {
        "program": ev.program,
        "ts": now.isoformat(),
        "request_id": ev.request_id,
        "start": ev.start.isoformat(),
        "end": ev.end.isoformat(),
        "direction": "reduce",
        "p_kw": p_kw,
        "objective": "flexibility",
        "notice_s": (ev.start - now).total_seconds(),
        "intervals": [{"p_kw": p_kw}] * ev.intervals,
    }


def interval_bounds(start: datetime, end: datetime, n: int) -> list[tuple[datetime, datetime]]:
    """`n` equal intervals of [start, end)."""
    step = (end - start) / n
    return [(start + k * step, start + (k + 1) * step) for k in range(n)]


#: The point each source kind's power is measured by (a fan's selection is a change from its power now).
MEASURED_POINT = {"battery": "p_kw", "ev": "p_kw", "hp": "p_kw", "fan": "fan_kw"}


def asset_delivery(
    sources: Sequence[Mapping[str, Any]],
    bounds: Sequence[tuple[datetime, datetime]],
    series: Mapping[tuple[str, str, str], Sequence[tuple[datetime, float]]],
) -> list[dict[str, Any]]:
    """Each selected source's measured power per interval against its selection (kW, load-positive).

    `series`: stored samples by (site, asset, point), including the last before the first
    interval: the power point of `MEASURED_POINT` and, for a battery, `soc_pct` (its lowest
    value in the interval is reported: a battery on its floor cannot give more). Why beside
    the site meter's delivery: the meter's baseline is one reading at selection time
    (docs/dr.md §6) while a household's own load moves by kilowatts within the notice; the
    asset's power shows whether the commanded source did what was selected. `error_pct` =
    (measured − selected) / |selected|, for batteries only (whose selection is an absolute
    setpoint; a fan's or heat pump's is a change from its power at selection time).
    """
    rows = []
    for s in sources:
        site, asset, kind = str(s["site"]), str(s["asset"]), str(s.get("kind"))
        power = series.get((site, asset, MEASURED_POINT.get(kind, "p_kw")), [])
        soc = series.get((site, asset, "soc_pct"), [])
        for k, (start, end) in enumerate(bounds):
            sel = float(s["kw"][k]) if k < len(s["kw"]) else 0.0
            mean, n = hold_mean(power, start, end)
            socs = [v for t, v in soc if start <= t < end]
            error = None
            if kind == "battery" and mean is not None and abs(sel) > 1e-9:
                error = round(100.0 * (mean - sel) / abs(sel), 2)
            rows.append(
                {
                    "site": site,
                    "asset": asset,
                    "kind": kind,
                    "step": k,
                    "selected_kw": round(sel, 3),
                    "measured_kw": None if mean is None else round(mean, 3),
                    "error_pct": error,
                    "soc_min_pct": round(min(socs), 2) if socs else None,
                    "samples": n,
                }
            )
    return rows


@dataclass(frozen=True)
class DrSection:
    """The summary's DR section and its verdict (`ok`: selected with every step met and kW delivered)."""

    data: dict[str, Any]
    ok: bool
    problems: list[str]


def _f(x: Any) -> float:
    return float(x) if isinstance(x, int | float) else 0.0


def dr_section(
    request: Mapping[str, Any],
    answer: Mapping[str, Any],
    report: Mapping[str, Any] | None,
    vetoes: Sequence[Mapping[str, Any]],
    assets: Sequence[Mapping[str, Any]] = (),
) -> DrSection:
    """The DR section from the request posted, the API's answer (201 body) and its report.

    Fails (`ok` False) when the request was refused, the selection left kW unmet, or nothing
    was delivered (no report, or delivered kWh ≤ 0).
    """
    problems: list[str] = []
    status = str(answer.get("status", "?"))
    selection = answer.get("selection") or {}
    detail = answer.get("detail")
    refusals = list(
        answer.get("refusals")
        or (detail.get("detail", {}) if isinstance(detail, dict) else {}).get("refusals", [])
    )
    if status not in ("selected", "partial"):
        reason = (detail.get("detail", {}) if isinstance(detail, dict) else {}).get("reason")
        problems.append(
            f"the request was not selected (status {status!r}{': ' + str(reason) if reason else ''})"
        )
    elif status == "partial":
        unmet = [round(_f(x), 3) for x in answer.get("unmet_kw", [])]
        problems.append(f"the selection is partial: unmet kW per interval {unmet}")
    sources = [
        {
            "site": s["site"],
            "asset": s["asset"],
            "kind": s.get("kind"),
            "kw": [round(_f(k), 3) for k in s["kw"]],
        }
        for s in selection.get("sources", [])
        if any(abs(_f(k)) > 1e-9 for k in s.get("kw", []))
    ]
    rows = list((report or {}).get("intervals", []))
    totals = dict((report or {}).get("totals", {}))
    per_step: dict[int, dict[str, float]] = {}
    for r in rows:
        agg = per_step.setdefault(int(r["step"]), {"baseline_kw": 0.0, "actual_kw": 0.0, "selected_kw": 0.0})
        for key in ("baseline_kw", "actual_kw", "selected_kw", "delivered_kw", "shortfall_kw"):
            agg[key] = agg.get(key, 0.0) + _f(r.get(key))
    delivered_kwh = _f(totals.get("delivered_kwh"))
    if report is None or not rows:
        problems.append("no delivery was reported")
    elif delivered_kwh <= 0:
        problems.append(f"nothing was delivered ({delivered_kwh:.3f} kWh)")
    data = {
        "request": {k: request[k] for k in ("request_id", "program", "start", "end", "direction", "p_kw")},
        "status": status,
        "final_status": (report or {}).get("status"),
        "selection": {
            "objective": selection.get("objective"),
            "route": selection.get("route"),
            "delivered_kw": [round(_f(k), 3) for k in selection.get("delivered_kw", [])],
            "unmet_kw": [round(_f(k), 3) for k in answer.get("unmet_kw", [])],
            "sites": len({s["site"] for s in sources}),
            "sources": sources,
        },
        "refusals": refusals,
        "commands_sent": (report or {}).get("commands_sent", 0),
        "acks": (report or {}).get("acks", {}),
        "delivery": {
            "per_interval": [
                {"step": k, **{n: round(v, 3) for n, v in agg.items()}} for k, agg in sorted(per_step.items())
            ],
            "per_site": rows,
            "totals": totals,
        },
        "assets": list(assets),
        "comfort_vetoes": list(vetoes),
        "ok": not problems,
        "problems": problems,
    }
    return DrSection(data=data, ok=not problems, problems=problems)


def render_dr_markdown(section: DrSection) -> str:
    """The DR section of summary.md."""
    d = section.data
    req, sel, dl = d["request"], d["selection"], d["delivery"]
    lines = [
        "## Demand response event",
        "",
        f"Request `{req['request_id']}` ({req['program']}): {req['direction']} {req['p_kw']:g} kW, "
        f"{req['start']} to {req['end']}; answer `{d['status']}`, finally `{d['final_status']}`.",
        "",
        f"Selection ({sel['objective']}, route {sel['route']}): {sel['sites']} sites, delivered kW per "
        f"interval {sel['delivered_kw']}, unmet {sel['unmet_kw']}.",
        "",
        "| site | asset | kind | kW per interval |",
        "|---|---|---|---|",
        *(f"| {s['site']} | {s['asset']} | {s['kind']} | {s['kw']} |" for s in sel["sources"]),
        "",
        f"Commands sent {d['commands_sent']}, acks {d['acks']}.",
        "",
        "| interval | baseline kW | actual kW | selected kW | delivered kW | shortfall kW |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['step']} | {r['baseline_kw']:.2f} | {r['actual_kw']:.2f} | {r['selected_kw']:.2f} | "
            f"{r.get('delivered_kw', 0.0):.2f} | {r.get('shortfall_kw', 0.0):.2f} |"
            for r in dl["per_interval"]
        ),
        "",
        "Selected sources, measured at the asset (its `p_kw` telemetry):",
        "",
        "| site | asset | kind | interval | selected kW | measured kW | error % | lowest SoC % |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {a['site']} | {a['asset']} | {a['kind']} | {a['step']} | {a['selected_kw']:.2f} | {a['measured_kw']} "
            f"| {a['error_pct']} | {a['soc_min_pct']} |"
            for a in d["assets"]
        ),
        "",
        "Totals (site meters): "
        + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in dl["totals"].items()),
        "",
        f"Comfort vetoes: {len(d['comfort_vetoes'])}"
        + "".join(f"\n- {v['site']} {v['asset']}: {v.get('reason')}" for v in d["comfort_vetoes"]),
        "",
        "Verdict: " + ("ok" if section.ok else "FAILED: " + "; ".join(section.problems)),
        "",
    ]
    return "\n".join(lines)
