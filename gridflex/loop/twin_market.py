"""The market on the twin's simulated time: the live demo's market steps, without wall-clock noise.

Why: two live references of the same seed differ by 13 kVAh above the rating (MQTT, the
agents' polls and the controller's tasks race the accelerated clock), more than the
market's relief. The twin (`gridflex.loop.twin`) steps the same buildings, planner and
agent decisions on simulated time, so a seed gives one figure and the market's relief
is the difference of two runs of one seed.

What is the live demo's here, unchanged: the planner's probabilistic congestion
forecast after each plan, its grid view (`ViewBuilder`), the DSO's request from it
(`request_action`), the `Book` (offers checked, gate closure, clearing with grid rows and
the AC check, settlement), the FSPs' offers (`offer_for`). What differs: the FSPs post
straight into the book (no HTTP), and an order reaches its devices as `p_limit_kw`
commands of the FSP's own dispatch (`limits_for`) through the agent's decision, where the
live demo goes through the DR programme. Settlement: actual = the twin's metered site
power per ISP, baseline = the FSP's prognosis sent with its offer (`fsp_prognosis`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from cloud_controller import Book, ForecastOptions, Plan
from cloud_controller.market import GridView, LatestForecast, Refused, ViewBuilder, request_action
from gridflex.loop.fsp_battery import BatteryBook
from gridflex.loop.fsp_offers import GATE_CLOSURE_S, FspPlan, offer_for
from gridflex.loop.fsp_prognosis import DevicePrognosis
from gridflex.loop.twin import TwinResult
from protocols.assets import BATTERY
from protocols.market import ISP_S, MarketOrder
from protocols.messages import Command
from simulators.siteconfig import GUARANTEED_MIN_KW

__all__ = ["TwinMarket", "limits_for", "twin_metering"]

ISP = timedelta(seconds=ISP_S)


def limits_for(
    order: MarketOrder,
    sites: Sequence[str],
    prognosis: DevicePrognosis,
    nominal_kw: Mapping[tuple[str, str], float],
    *,
    floor_kw: float = GUARANTEED_MIN_KW,
) -> list[tuple[datetime, str, str, float]]:
    """The FSP's dispatch of an order: (ISP start, site, asset, p_limit_kw) for each device of `sites`.

    In each ordered ISP every device of the order's sites is cut by the same share f of what
    it can give (`DevicePrognosis.cut_share`): its limit is nominal − f·(nominal − floor),
    so while it runs at nominal it gives f·(nominal − floor) and, over the ISP, f of its
    reducible kW. A device the prognosis has no reducible kW for is left alone.
    """
    out = []
    for isp in sorted(order.isps, key=lambda i: i.start):
        f = prognosis.cut_share(sites, isp.start, isp.kw)
        if f <= 0.0:
            continue
        for (site, asset), per_isp in sorted(prognosis.reducible_kw.items()):
            p_nom = nominal_kw.get((site, asset), 0.0)
            if site in sites and per_isp.get(isp.start, 0.0) > 0.0 and p_nom > floor_kw:
                out.append((isp.start, site, asset, round(p_nom - f * (p_nom - floor_kw), 3)))
    return out


def twin_metering(
    result: TwinResult,
) -> Any:
    """A `Book.settle_due` metering over the twin's per-interval site power: ({} , actual kW per ISP)."""
    index = {t: k for k, t in enumerate(result.interval_starts)}

    def metering(
        sites: Sequence[str], isps: Sequence[datetime], baseline: str
    ) -> tuple[dict[datetime, float], dict[datetime, float]]:
        missing = [t for t in isps if t not in index]
        if missing:
            raise ValueError(f"no metered interval at {missing[0].isoformat()}")
        actual = {t: sum(result.site_p_kw[s][index[t]] for s in sites) for t in isps}
        return {}, actual  # the baseline is the offer's prognosis (`fsp_prognosis`)

    return metering


@dataclass
class TwinMarket:
    """The `TwinHook` of the market: forecast → request → offers → clearing at gate closure → limits.

    `physics_step_s`: each limit holds one physics step past its ISP, because the twin
    returns an expired command's asset to its safe state before it steps (the agent's
    successor would arrive in time; here it is applied after the step).
    """

    book: Book
    congestion_point: str
    plans: list[FspPlan]
    prognosis: DevicePrognosis
    nominal_kw: dict[tuple[str, str], float]
    risk: float
    n_scenarios: int = 100
    physics_step_s: float = 30.0
    view: GridView | None = None
    #: the FSPs' site batteries (`fsp_battery`): offered and dispatched first; None: EVs and heat pumps only
    batteries: BatteryBook | None = None
    actions: list[str] = field(default_factory=list)  # "post r0 at 15:15", ...
    refused: list[str] = field(default_factory=list)
    clearings: list[dict[str, Any]] = field(default_factory=list)
    commands: int = 0
    _views: ViewBuilder = field(default_factory=ViewBuilder)
    _pending: list[Command] = field(default_factory=list)
    _answered: dict[tuple[str, str], int] = field(default_factory=dict)  # (fsp, request) -> revision
    _open: dict[tuple[str, str], str] = field(default_factory=dict)  # (fsp, request) -> offer id
    _serial: int = 0
    _battery_kw: dict[datetime, dict[str, float]] = field(
        default_factory=dict
    )  # the last offer's, per ISP and site

    def step(self, now: datetime, plan: Plan | None, planner: Any) -> list[Command]:
        """After each physics step: with a new plan the forecast's request; the FSPs' offers; clear; due limits."""
        if plan is not None:
            self._forecast(now, plan, planner)
        self._offer(now)
        gate = self.book.next_gate()
        if gate is not None and gate <= now:
            record = self.book.clear(now, gate_closed_only=True, view=self.view)
            if record is not None:
                self.clearings.append(record.summary)
                for order in record.orders:
                    self._dispatch(order, now)
        due = [c for c in self._pending if c.valid_from <= now]
        self._pending = [c for c in self._pending if c.valid_from > now]
        return due

    def _forecast(self, now: datetime, plan: Plan, planner: Any) -> None:
        fc = planner.probabilistic_forecast(plan, ForecastOptions(n_scenarios=self.n_scenarios))
        view = self._views.view(LatestForecast(fc, plan.at, plan.period_s, now), plan, planner)
        if view is None:
            self.refused.append(f"{now:%H:%M} no grid view: {self._views.unavailable}")
            return
        self.view = view
        store = self.book.store
        cfg = self.book.config
        open_req = next(
            (r for r, _ in store.requests("open") if r.congestion_point == self.congestion_point), None
        )
        ordered = {i.start for o in store.orders() for i in o.isps if i.kw > 0}
        action = request_action(
            self.congestion_point,
            view.relief_needed_kw(self.congestion_point, self.risk),
            open_req,
            ordered,
            now=now,
            gate_closure_s=cfg.gate_closure_s,
            policy=cfg.auto_request,
            serial=len(store.requests()),
        )
        if action is None:
            return
        if action.request is None:
            self.book.withdraw_request(action.request_id)
        else:
            self.book.post_request(action.request, now)
        self.actions.append(f"{action.kind} {action.request_id} at {now:%H:%M}")

    def _offer(self, now: datetime) -> None:
        """Each FSP answers every open request revision it has not answered, revoking its older offer."""
        for req, _ in self.book.store.requests("open"):
            doc = json.loads(req.model_dump_json())
            for plan in self.plans:
                key = (plan.fsp, req.request_id)
                if self._answered.get(key, -1) >= req.revision:
                    continue
                self._answered[key] = req.revision
                offer = offer_for(self._with_batteries(plan, doc, now), doc, now, self._serial)
                self._serial += 1
                if offer is None:
                    continue
                try:
                    if key in self._open:
                        self.book.revoke_offer(self._open.pop(key), plan.fsp)
                    self.book.post_offer(offer, plan.fsp, now)
                    if self.batteries is not None:
                        self.batteries.offered[offer.offer_id] = self._battery_kw
                    self._open[key] = offer.offer_id
                except Refused as exc:
                    self.refused.append(f"{offer.offer_id}: {exc}")

    def _with_batteries(self, plan: FspPlan, request: Mapping[str, Any], now: datetime) -> FspPlan:
        """`plan` with its batteries' discharge added to what it can give in the request's open ISPs."""
        self._battery_kw = {}
        if self.batteries is None:
            return plan
        gate = timedelta(seconds=GATE_CLOSURE_S)
        starts = [
            t
            for t in (datetime.fromisoformat(str(i["start"])) for i in request["isps"])
            if t - gate > now + ISP
        ]
        self._battery_kw = self.batteries.offer(plan.sites, starts, now)
        extra = {t: sum(v.values()) for t, v in self._battery_kw.items()}
        if not any(extra.values()):
            return plan
        base = plan.available_kw
        return replace(
            plan,
            cap_kw=plan.cap_kw + max(extra.values()),
            available_kw={
                t: (plan.cap_kw if base is None else base.get(t, 0.0)) + extra.get(t, 0.0)
                for t in set(extra) | set(base or {})
            },
        )

    def _dispatch(self, order: MarketOrder, now: datetime) -> None:
        found = self.book.store.offer(order.offer_id)
        sites = list(found[0].sites) if found is not None else []
        hold = ISP + timedelta(seconds=self.physics_step_s)
        setpoints: list[tuple[datetime, str, float]] = []
        if self.batteries is not None:
            rest = []
            for isp in order.isps:
                bat, left_kw = self.batteries.dispatch(order.offer_id, isp.start, isp.kw)
                setpoints += [(isp.start, site, kw) for site, kw in bat]
                rest.append(isp.model_copy(update={"kw": left_kw}))
            order = order.model_copy(update={"isps": rest})
        out = [(start, site, BATTERY, "p_setpoint_kw", kw) for start, site, kw in setpoints] + [
            (start, site, asset, "p_limit_kw", kw)
            for start, site, asset, kw in limits_for(order, sites, self.prognosis, self.nominal_kw)
        ]
        for start, site, asset, kind, value in out:
            self.commands += 1
            self._pending.append(
                Command.model_validate(
                    {
                        "site": site,
                        "ts": now,
                        "cmd_id": f"mkt{self.commands}-{site}-{asset}"[:64],
                        "asset": asset,
                        "kind": kind,
                        "value": value,
                        "valid_from": start,
                        "valid_until": start + hold,
                        "request_id": order.order_id[:64],
                    }
                )
            )
