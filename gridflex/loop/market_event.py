"""The market in the closed loop: configuration, two FSPs, orders into the command path, settlement.

`gridflex demo --market` (gridflex/cli/demo_market.py) runs the closed loop with the local
flexibility market of docs/market.md switched on at the congested transformer:

- the DSO's requests come from the controller's own congestion forecast
  (`market.auto_request`, one congestion point: the element, the fleet's sites behind it);
- two FSPs post offers over the controller's HTTP API with their own Bearer tokens, as a
  real FSP would: GridFlex's aggregator (`gridflex-agg`, half the fleet, cheaper) and a
  scripted one (`scripted-fsp`, the other half, dearer). Each offers, per ISP of an open
  request, what its running EVs and heat pumps can give then, up to its cap and the need
  (`ScriptedFsp`, `fsp_offers.offer_for`, `fsp_prognosis`);
- the controller clears at gate closure (`auto_clear`, 30 min before delivery: intraday);
- each order is dispatched as the twin does: `p_limit_kw` on its sites' EVs and heat
  pumps per ordered ISP (`fsp_dispatch.LimitDispatch`, `twin_market.limits_for`), sent
  through the controller's command path. GridFlex's aggregator is the controller's own
  FSP (`own_program: market`): the controller's own-order execution hands its orders to
  that dispatch (`OwnOrders.dispatch`); `OrderBridge` hands it the scripted FSP's and reads
  the controller's execution of the own orders. With the `nominal` prognosis (no device
  figures) orders become DR requests of the market programme instead;
- settlement after delivery: actual = the sites' stored `meter/p_kw` (live telemetry),
  baseline = NODES' 5 working days from the meter history the demo imports at start
  (`imported_metering`; the controller's store begins with the run).

Why the scripted FSP's sites are dispatched by GridFlex too: an FSP without its own
head-end contracts dispatch; here both FSPs' orders go through the one command path.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from cloud_controller import CloudConfig, CommandBuilder
from cloud_controller.market import isp_means, metered, own_orders
from gridflex.loop.closed_loop import ClosedLoop
from gridflex.loop.fsp_dispatch import LimitDispatch, device_nominal_kw
from gridflex.loop.fsp_offers import (
    AGG_FSP,
    GATE_CLOSURE_S,
    PRICE_EUR_PER_KWH,
    SCRIPTED_FSP,
    VALUE_EUR_PER_KWH,
    FspPlan,
    fsp_plans,
    market_sites,
    offer_for,
    offer_kw,
    split_sites,
)
from gridflex.loop.fsp_prognosis import device_prognosis
from gridflex.loop.prior_history import prior_from_reference
from protocols.assets import Points
from protocols.market import ISP_S, MarketOrder
from protocols.messages import DRRequest

__all__ = [
    "AGG_FSP",
    "MARKET_PROGRAM",
    "SCRIPTED_FSP",
    "FspPlan",
    "ImportedMetering",
    "MarketLoop",
    "OrderBridge",
    "ScriptedFsp",
    "fsp_plans",
    "gap_filled_means",
    "market_sites",
    "offer_for",
    "offer_kw",
    "site_flex_kw",
    "split_sites",
]

log = logging.getLogger(__name__)

MARKET_PROGRAM = "market"
ISP = timedelta(seconds=ISP_S)


def site_flex_kw(loop: ClosedLoop) -> dict[str, float]:
    """Each site's contracted reduction, kW: the nominal power of its EV and heat pump."""
    return {
        s.site: sum(float(a.p_nominal_kw or 0.0) for a in s.assets if a.kind in ("ev", "hp"))
        for s in loop.registry.sites
    }


@dataclass
class ScriptedFsp:
    """An FSP on the controller's HTTP API: offers on each new request revision, revokes the one it replaces."""

    plan: FspPlan
    base_url: str
    token: str
    now: Any  # () -> datetime: the FSP's clock (the demo's simulated time)
    posted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    _answered: dict[str, int] = field(default_factory=dict)  # request id -> revision offered on
    _open: dict[str, str] = field(default_factory=dict)  # request id -> our open offer id

    async def run(self, poll_s: float = 0.5) -> None:
        """Poll the open requests until cancelled."""
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10.0) as client:
            while True:
                try:
                    await self.step(client)
                except httpx.HTTPError as exc:  # the controller may be restarting: try again
                    log.warning("%s: market API: %s", self.plan.fsp, exc)
                except Exception as exc:  # kept with its reason: the summary reports it
                    self.refused.append(f"{type(exc).__name__}: {exc}")
                    log.exception("%s: offer step failed", self.plan.fsp)
                await asyncio.sleep(poll_s)

    async def step(self, client: httpx.AsyncClient) -> None:
        """One look at the requests: an offer on every open request revision not yet answered."""
        r = await client.get("/market/requests")
        r.raise_for_status()
        for row in r.json():
            req = row["request"]
            rid, rev = req["request_id"], int(req["revision"])
            if row["status"] != "open" or self._answered.get(rid, -1) >= rev:
                continue
            self._answered[rid] = rev
            offer = offer_for(self.plan, req, self.now(), len(self.posted))
            if offer is None:
                continue
            if rid in self._open:  # the request changed: the old offer goes
                await client.delete(f"/market/offers/{self._open.pop(rid)}")
            p = await client.post("/market/offers", content=offer.model_dump_json())
            if p.status_code == 201:
                self.posted.append(offer.offer_id)
                self._open[rid] = offer.offer_id
            else:
                self.refused.append(f"{offer.offer_id}: {p.status_code} {p.text[:200]}")
                log.warning("%s: offer refused: %s", self.plan.fsp, self.refused[-1])


def dr_request_of(order: MarketOrder, sites: Sequence[str], now: datetime) -> DRRequest:
    """The DR request that delivers an order: the order's kW per ISP, its sites, the market programme.

    The same request the controller makes for its own aggregator's orders (own_orders.py).
    """
    return own_orders.dr_request_of(order, sites, now, MARKET_PROGRAM)


@dataclass
class OrderBridge:
    """Both FSPs' orders → their devices' limits (`fsp_dispatch`); the own ones through the controller.

    With a device prognosis (`loop.prognosis` other than "nominal") the orders are
    dispatched as `p_limit_kw` on the sites' EVs and heat pumps (`LimitDispatch`): the
    scripted FSP's from here, the own aggregator's by the controller's own-order execution,
    which hands them to the same dispatch (`OwnOrders.dispatch`). Without one ("nominal":
    no device figures to cut by) the scripted FSP's orders become DR requests of the market
    programme (the steps of `POST /dr/requests`) and the own ones the controller's. The
    own orders' state is copied (`ctl.market.own.state`) into `activated` / `failed`.
    """

    loop: MarketLoop
    activated: dict[str, str] = field(default_factory=dict)  # order id -> status
    failed: dict[str, str] = field(default_factory=dict)
    dispatch: LimitDispatch | None = None
    _wired: bool = False

    async def run(self, poll_s: float = 0.5, send_poll_s: float = 0.05) -> None:
        """Until cancelled: the orders every `poll_s`, the due limits every `send_poll_s` (host seconds).

        The limits are polled often because the loop's clock is accelerated (240 simulated s per
        host s by default): a limit sent late is a part of its ISP not delivered.
        """
        last = 0.0
        while True:
            if time.monotonic() - last >= poll_s:
                last = time.monotonic()
                await self.step()
            elif self.dispatch is not None:
                await self.dispatch.step()
            await asyncio.sleep(send_poll_s)

    def _wire(self, ctl: Any) -> None:
        """Build the dispatch from the FSPs' prognosis and hand it to the controller's own orders, once."""
        self._wired = True
        prognosis = device_prognosis(self.loop.scenario, self.loop.market_only_sites(), self.loop.prognosis)
        if prognosis is None:
            return
        self.dispatch = LimitDispatch(
            prognosis,
            device_nominal_kw(self.loop.registry.sites),
            CommandBuilder(period_s=ISP_S, margin_s=0.0, signing_keys=ctl.dr_activator.ctx.keys),
            ctl._publish_commands,  # the controller's one sender: fence, tracker, MQTT
            ctl.clock.now,
        )
        ctl.market.own.dispatch = self.dispatch.execute

    async def step(self) -> None:
        """Dispatch the orders not yet dispatched, then send the limits due."""
        ctl = self.loop.controller
        if ctl is None:
            return
        if not self._wired:
            self._wire(ctl)
        for order in await asyncio.to_thread(ctl.market.book.store.orders):
            if order.order_id in self.activated or order.order_id in self.failed:
                continue
            own = ctl.market.own.state(order)
            if own is not None:  # our own aggregator's: the controller executes it
                if own["status"] == "failed":
                    self.failed[order.order_id] = str(own["reason"])
                elif own["status"] != "pending":
                    self.activated[order.order_id] = str(own["dr_status"] or own["status"])
                continue
            if all(i.kw <= 0 for i in order.isps):
                self.activated[order.order_id] = "nothing ordered"
                continue
            found = ctl.market.book.store.offer(order.offer_id)
            sites = found[0].sites if found is not None else []
            try:
                if self.dispatch is not None:
                    n = self.dispatch.accept(order, sites)
                    self.activated[order.order_id] = f"{n} device limits"
                    continue
                req = dr_request_of(order, sites, ctl.clock.now())
                record = await asyncio.to_thread(
                    ctl.dr.submit, req, dict(ctl.snapshots), sites=ctl.dr_activator.ctx.sites, grid=None
                )
                ctl.dr_requests.append(req)
                await asyncio.to_thread(ctl.dr_activator.prepare, record)
                await ctl.dr_activator.tick()
                await ctl.publish_dr(req)
                self.activated[order.order_id] = str(record.status)
            except Exception as exc:  # kept with its reason: the summary reports it
                self.failed[order.order_id] = f"{type(exc).__name__}: {exc}"
                log.warning("order %s not activated: %s", order.order_id, exc)
        if self.dispatch is not None:
            await self.dispatch.step()


def gap_filled_means(
    samples: Sequence[tuple[datetime, float]], isps: Sequence[datetime]
) -> tuple[dict[datetime, float], list[datetime]]:
    """ISP means of `samples`; an ISP without a sample inside the samples' span is estimated.

    The estimate is the linear interpolation at the ISP's middle between the neighbouring
    samples (the usual estimation step of meter-data validation: an agent that misses a
    poll under load leaves an ISP empty though the meter ran). Returns (means, the ISPs estimated).
    """
    means = isp_means(samples)
    if not samples:
        return means, []
    ts = np.array([t.timestamp() for t, _ in samples])
    vs = np.array([v for _, v in samples])
    estimated = []
    for isp in isps:
        mid = isp + ISP / 2
        if isp not in means and ts[0] < mid.timestamp() < ts[-1]:
            means[isp] = float(np.interp(mid.timestamp(), ts, vs))
            estimated.append(isp)
    return means, estimated


@dataclass
class ImportedMetering:
    """A `Book.settle_due` metering: actual from the store, baseline from the imported meter history.

    The history is the same buildings' physics on the days before (`scenario.yesterday`,
    `scenario.older`), as a utility imports meter data when a controller is commissioned.
    `estimated`: (site, ISP) whose actual was interpolated (`gap_filled_means`), reported.
    """

    loop: ClosedLoop
    estimated: list[tuple[str, datetime]] = field(default_factory=list)
    _history: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        history: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
        for ref in (self.loop.scenario.older, self.loop.scenario.yesterday):
            if ref is None:
                continue
            for (site, asset, point), rows in prior_from_reference(ref).items():
                if (asset, point) == (Points.METER_P_KW.asset, Points.METER_P_KW.point):
                    history[site].extend(rows)
        self._history = dict(history)

    def __call__(
        self, sites: Sequence[str], isps: Sequence[datetime], baseline: str
    ) -> tuple[dict[datetime, float], dict[datetime, float]]:
        """(baseline, actual) kW per ISP of the sum of `sites`, as `metering.metered` computes them."""
        ctl = self.loop.controller
        assert ctl is not None
        start, end = min(isps) - ISP, max(isps) + 2 * ISP  # a neighbour each side for the estimate
        per_site = {}
        for s in sites:
            live = ctl.store.read_series(s, Points.METER_P_KW.asset, Points.METER_P_KW.point, start, end)
            means, estimated = gap_filled_means(live, isps)
            self.estimated += [(s, t) for t in estimated]
            per_site[s] = {**isp_means(self._history.get(s, [])), **means}
        return metered(per_site, isps, baseline)


def _token(path: Path) -> str:
    token = secrets.token_urlsafe(24)
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return token


class MarketLoop(ClosedLoop):
    """The closed loop with the market at the scenario's element and a DR programme for the orders.

    The FSPs' sites (`market_sites`) are market-only in both variants: with `market=False`
    the same loop runs without the market (guard-only control of the other sites, nobody
    moves the FSPs' sites), the reference the market's relief per euro is measured against.
    """

    def __init__(
        self,
        scenario: Any,
        out_dir: Path,
        *,
        api_port: int = 0,
        market: bool = True,
        prognosis: str = "schedule",
    ) -> None:
        super().__init__(scenario, out_dir, api_port=api_port)
        #: each FSP's API token (generated at start, in the run dir's market-config/, never in the repo)
        self.tokens: dict[str, str] = {}
        self.market = market
        #: where the FSPs' offers come from (`fsp_prognosis.PROGNOSIS_SOURCES`)
        self.prognosis = prognosis

    def market_only_sites(self) -> tuple[str, ...]:
        """The FSPs' portfolios: only the market's orders move them."""
        return tuple(market_sites([s for s, kw in site_flex_kw(self).items() if kw > 0]))

    def market_files(self) -> dict[str, Any]:
        """Tokens and the contracts file in the run dir; the `market` and `dr` config sections."""
        cfg_dir = self.out_dir / "market-config"
        cfg_dir.mkdir(parents=True, exist_ok=True)
        if not self.tokens:
            self.tokens = {fsp: _token(cfg_dir / f"{fsp}.token") for fsp in (AGG_FSP, SCRIPTED_FSP)}
        flex = site_flex_kw(self)
        fsp_sites = set(self.market_only_sites())
        contracts = [
            {
                "site": site,
                "program": MARKET_PROGRAM,
                "directions": ["reduce"],
                "p_max_kw": kw,
                "events_per_day": 48,
                "max_duration": "PT12H",
                "price_eur_per_kwh": PRICE_EUR_PER_KWH[AGG_FSP],
            }
            for site, kw in sorted(flex.items())
            if kw > 0 and site in fsp_sites
        ]
        (cfg_dir / "contracts.yaml").write_text(yaml.safe_dump({"contracts": contracts}), encoding="utf-8")
        cp = (self.scenario.element or "root").lower()  # market ids are lower case; the view matches either
        return {
            "market": {
                "fsps": {
                    f: {"token_file": str(cfg_dir / f"{f}.token")}
                    | ({"own_program": MARKET_PROGRAM} if f == AGG_FSP else {})
                    for f in self.tokens
                },
                "congestion_points": {cp: sorted(flex)},
                "gate_closure_s": GATE_CLOSURE_S,
                "auto_clear": True,
                "auto_request": {"enabled": True, "risk": 0.1, "value_eur_per_kwh": VALUE_EUR_PER_KWH},
            },
            "dr": {"contracts": str(cfg_dir / "contracts.yaml")},
        }

    def cloud_config(self) -> CloudConfig:
        """The closed loop's configuration plus the market's (also written to the run dir)."""
        base = super().cloud_config().model_dump(mode="json", exclude_unset=True)
        base["control"] = {**base.get("control", {}), "market_only_sites": list(self.market_only_sites())}
        if not self.market:  # the reference: the same exclusions, no market
            return CloudConfig.model_validate(base)
        merged = CloudConfig.model_validate({**base, **self.market_files()})
        (self.out_dir / "market-config" / "cloud.yaml").write_text(
            yaml.safe_dump(merged.model_dump(mode="json", exclude_unset=True)), encoding="utf-8"
        )
        return merged

    def fsp_plans(self) -> list[FspPlan]:
        """Each FSP's sites, its offer cap (a share of their contracted kW), its price and its devices' prognosis."""
        return fsp_plans(site_flex_kw(self), self.market_only_sites(), self.scenario, self.prognosis)
