"""The demo's two FSPs: portfolios, terms and their offers for the DSO's requests (pure).

Used by the live market demo (`market_event.ScriptedFsp`, over the controller's HTTP API)
and by the market on the twin (`twin_market.TwinMarket`, straight into the book), so both
offer alike. Each offer per ISP is capped by what the FSP's running devices can give
(`fsp_prognosis`), unless the FSP offers from nominal kW.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gridflex.loop.fsp_prognosis import device_prognosis
from protocols.market import ISP_S, MarketOffer

__all__ = [
    "AGG_FSP",
    "GATE_CLOSURE_S",
    "OFFER_SHARE",
    "PRICE_EUR_PER_KWH",
    "SCRIPTED_FSP",
    "VALUE_EUR_PER_KWH",
    "FspPlan",
    "fsp_plans",
    "market_sites",
    "offer_for",
    "offer_kw",
    "split_sites",
]

AGG_FSP = "gridflex-agg"
SCRIPTED_FSP = "scripted-fsp"
ISP = timedelta(seconds=ISP_S)
#: Intraday gate closure: two ISPs before delivery (NODES' 2 h would leave a 7 h window few requests).
GATE_CLOSURE_S = 1800.0
#: The DSO's value of relief, EUR/kWh (our assumption for the demo: the cost of its alternative).
VALUE_EUR_PER_KWH = 0.5
#: What each FSP asks, EUR/kWh: GridFlex's aggregator below the scripted one, both below the DSO's value.
PRICE_EUR_PER_KWH = {AGG_FSP: 0.15, SCRIPTED_FSP: 0.30}
#: An FSP offers at most this share of its sites' contracted kW (comfort and EV needs leave the rest).
OFFER_SHARE = 0.5


def market_sites(flex_sites: Sequence[str]) -> list[str]:
    """The FSPs' portfolios: every other site with flexibility (sorted ids, odd positions).

    They are market-only: the planner and the guard never steer them (`control.market_only_sites`),
    so an order buys relief the controller would not have produced anyway; the controller
    keeps the even positions. Why half: both sides keep a share of the fleet.
    """
    return sorted(flex_sites)[1::2]


def split_sites(sites: Sequence[str]) -> dict[str, list[str]]:
    """GridFlex's aggregator gets the even positions, the scripted FSP the odd ones."""
    ordered = sorted(sites)
    return {AGG_FSP: ordered[0::2], SCRIPTED_FSP: ordered[1::2]}


@dataclass(frozen=True)
class FspPlan:
    """One FSP's portfolio and terms, and what its devices can give per ISP.

    `available_kw`: the reducible kW of its running devices per ISP start
    (`fsp_prognosis.DevicePrognosis.available_kw`); None offers up to `cap_kw` in every
    ISP (nominal kW: the devices may be off). `prognosis_kw`: its sites' expected net load
    per ISP without activation, sent with the offer (USEF's D-prognosis); `baseline`: the
    baseline the offer names for its settlement.
    """

    fsp: str
    sites: tuple[str, ...]
    cap_kw: float  # the most it offers per ISP
    price_eur_per_kwh: float
    available_kw: Mapping[datetime, float] | None = None
    prognosis_kw: Mapping[datetime, float] | None = None
    baseline: str = "nodes_5wd"


def offer_kw(plan: FspPlan, start: datetime, need_kw: float) -> float:
    """What the FSP offers in the ISP at `start`: min(need, cap, what its running devices can give), 0.1 kW."""
    kw = min(need_kw, plan.cap_kw)
    if plan.available_kw is not None:
        kw = min(kw, plan.available_kw.get(start, 0.0))
    return math.floor(max(kw, 0.0) * 10.0 + 1e-9) / 10.0  # rounded down: never more than the devices give


def offer_for(plan: FspPlan, request: Mapping[str, Any], now: datetime, serial: int) -> MarketOffer | None:
    """The FSP's offer for a request (its JSON from `GET /market/requests`): per ISP `offer_kw`.

    Only ISPs whose gate is still open a full ISP from `now` (the post takes time); None if
    none is left or the FSP has nothing to offer. Divisible (minimum activation factor 0).
    """
    gate = timedelta(seconds=GATE_CLOSURE_S)
    isps = [
        {"start": i["start"], "kw": offer_kw(plan, datetime.fromisoformat(str(i["start"])), float(i["kw"]))}
        for i in request["isps"]
        if datetime.fromisoformat(str(i["start"])) - gate > now + ISP
    ]
    isps = [i for i in isps if float(i["kw"]) > 0]
    if not isps or not plan.sites:
        return None
    starts = [datetime.fromisoformat(str(i["start"])) for i in isps]
    doc: dict[str, Any] = {
        "offer_id": f"{plan.fsp}-{request['request_id']}-r{request['revision']}-{serial}"[:64],
        "fsp": plan.fsp,
        "congestion_point": request["congestion_point"],
        "ts": now.isoformat(),
        # valid until delivery begins: the clearing at gate closure may run a little after it
        "expires": min(starts).isoformat(),
        "request_id": request["request_id"],
        "sites": list(plan.sites),
        "baseline": plan.baseline,
        "options": [
            {
                "option_id": "all",
                "isps": isps,
                "price_eur_per_kwh": plan.price_eur_per_kwh,
                "min_activation_factor": 0.0,
            }
        ],
    }
    if plan.prognosis_kw is not None:
        doc["prognosis"] = [
            {"start": t.isoformat(), "kw": round(plan.prognosis_kw.get(t, 0.0), 3)} for t in starts
        ]
    return MarketOffer.model_validate_json(json.dumps(doc))


def fsp_plans(
    flex_kw: Mapping[str, float],
    fsp_sites: Sequence[str],
    scenario: Any,
    prognosis: str,
    *,
    baseline: str = "nodes_5wd",
) -> list[FspPlan]:
    """The two FSPs' plans: sites, cap, price and, unless `prognosis` is "nominal", what their devices can give."""
    prog = device_prognosis(scenario, fsp_sites, prognosis)
    return [
        FspPlan(
            fsp,
            tuple(sites),
            OFFER_SHARE * sum(flex_kw[s] for s in sites),
            PRICE_EUR_PER_KWH[fsp],
            available_kw=None if prog is None else prog.available_kw(sites),
            prognosis_kw=None if prog is None else prog.baseline_kw(sites),
            baseline=baseline,
        )
        for fsp, sites in split_sites(fsp_sites).items()
    ]
