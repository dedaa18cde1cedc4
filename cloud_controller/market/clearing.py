"""Clearing the local flexibility market: a welfare-maximising MILP with grid rows (HiGHS).

Welfare = value of the relief bought − cost of the offers activated. With the DSO's value
per kWh as the price of shortfall, maximising welfare is minimising

    Σ_o price_o · E_o · a_o  +  Σ_{cp,t} value_cp · short_{cp,t} · Δt

subject to, for every congestion point cp and ISP t,
    Σ_{o at cp} kW_{o,t} · a_o + short_{cp,t} ≥ need_{cp,t},   short ≥ 0
(the relief covers the request, or the residual is reported: "orange" in USEF), for every
option o the activation factor a_o = 0 or a_o ∈ [min_o, 1] (a binary u_o: min_o·u_o ≤ a_o ≤ u_o;
no binary where min_o = 0), and for every other grid element e and ISP t (GOPACS: an
order must not cause congestion elsewhere)
    Σ_o sens_{o,e} · kW_{o,t} · a_o ≤ headroom_{e,t}
where headroom is what the element may take at the configured risk level (the caller
derives it from the congestion forecast's quantile, `headroom_at_risk`). An offer dearer
than the DSO's value is never bought; when offers fall short, all useful offers are
bought and the residual goes to the curative guard.

Pricing: pay-as-bid (each order at its own price, the default) or pay-as-clear (each
congestion point's orders at the highest accepted price there). Before orders go out an
optional `ac_check` (an AC power flow of the cleared result, supplied by the shell) must
find no violation, else the clearing is returned with status `ac_check_failed` and no
orders.

The MILP goes to HiGHS as one sparse matrix (highspy), not through pyomo: 1,000 offers x
96 ISPs is ~10^5 coefficients, which pyomo's expression build turns into most of the time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

from cloud_controller.market.milp import MilpSolution, solve_milp
from cloud_controller.market.products import (
    ISP_S,
    FlexOffer,
    FlexRequest,
    MarketRefusal,
    OfferOption,
    check_gate,
)

__all__ = ["Clearing", "ClearingOptions", "GridRow", "Order", "clear", "headroom_at_risk"]

Pricing = Literal["pay_as_bid", "pay_as_clear"]


@dataclass(frozen=True)
class GridRow:
    """An element other than the congestion points: what more it may carry per ISP (kW)."""

    element: str
    headroom_kw: Mapping[datetime, float]


@dataclass(frozen=True)
class ClearingOptions:
    """How the market clears."""

    pricing: Pricing = "pay_as_bid"
    gate_closure_s: float = 7200.0
    time_limit_s: float = 30.0
    #: Relative MIP gap HiGHS stops at: the clearing's cost is within 0.1 % of the optimum.
    mip_rel_gap: float = 1e-3


@dataclass(frozen=True)
class Order:
    """An accepted option: its activation factor, the kW per ISP it must deliver and its price."""

    order_id: str
    offer_id: str
    option_id: str
    fsp: str
    congestion_point: str
    factor: float
    kw: dict[datetime, float]
    price_eur_per_kwh: float  # what is paid (its own price, or the clearing price)
    price_eur: float  # price x ordered energy

    @property
    def energy_kwh(self) -> float:
        """Ordered energy of reduction."""
        return sum(self.kw.values()) * ISP_S / 3600.0


@dataclass(frozen=True)
class Clearing:
    """The result: orders, shortfall per congestion point and ISP, what it costs and is worth."""

    status: Literal["cleared", "partial", "ac_check_failed"]
    orders: tuple[Order, ...]
    shortfall_kw: dict[tuple[str, datetime], float]
    cost_eur: float
    welfare_eur: float
    refused: tuple[tuple[str, str], ...]  # (offer id, reason) left out before clearing
    violations: tuple[str, ...] = ()  # from the AC check
    #: HiGHS's relative gap of the welfare: <= the option's `mip_rel_gap` when solved, larger
    #: when the time limit stopped it with a feasible clearing (then said here, never hidden).
    mip_gap: float = 0.0
    grid_rows: int = 0  # other elements held to their headroom (GOPACS), set by grid_check


def headroom_at_risk(limit_kw: float, flow_scenarios_kw: npt.ArrayLike, risk: float) -> float:
    """What an element may take more, exceeded with probability at most `risk`.

    limit − the (1 − risk) quantile of its forecast flow over the scenarios (kW); negative
    when the element is already over its limit at that risk (then nothing may add to it).
    """
    if not 0.0 < risk < 1.0:
        raise ValueError("risk must be in (0, 1)")
    flows = np.asarray(flow_scenarios_kw, dtype=float)
    return float(limit_kw - np.quantile(flows, 1.0 - risk))


def _usable(
    offers: Sequence[FlexOffer], requests: Mapping[str, FlexRequest], now: datetime, gate_closure_s: float
) -> tuple[list[tuple[FlexOffer, OfferOption]], list[tuple[str, str]]]:
    options: list[tuple[FlexOffer, OfferOption]] = []
    refused: list[tuple[str, str]] = []
    for offer in offers:
        if offer.revoked:
            refused.append((offer.offer_id, "revoked"))
            continue
        if offer.expires <= now:
            refused.append((offer.offer_id, f"expired at {offer.expires.isoformat()}"))
            continue
        if offer.congestion_point not in requests:
            refused.append((offer.offer_id, f"no request at congestion point {offer.congestion_point!r}"))
            continue
        first = min(t for opt in offer.options for t in opt.kw)
        try:
            check_gate(offer.submitted, first, gate_closure_s)
        except MarketRefusal as exc:
            refused.append((offer.offer_id, str(exc)))
            continue
        options.extend((offer, opt) for opt in offer.options)
    return options, refused


def clear(
    requests: Sequence[FlexRequest],
    offers: Sequence[FlexOffer],
    *,
    now: datetime,
    grid_rows: Sequence[GridRow] = (),
    options: ClearingOptions | None = None,
    ac_check: Callable[[Sequence[Order]], Sequence[str]] | None = None,
    cover_per_kw: Mapping[str, float] | None = None,
) -> Clearing:
    """Clear `offers` against `requests` (one request per congestion point) under `grid_rows`.

    `cover_per_kw` (offer id → kW of relief at its congestion point per kW ordered, 1 where
    absent) is for meshed grids (`grid_check`), where an offer relieves its point by PTDF.
    """
    opts = options or ClearingOptions()
    by_cp: dict[str, FlexRequest] = {}
    for r in requests:
        if r.congestion_point in by_cp:
            raise MarketRefusal("request", f"two requests at congestion point {r.congestion_point!r}")
        by_cp[r.congestion_point] = r
    usable, refused = _usable(offers, by_cp, now, opts.gate_closure_s)
    needs = [(cp, t, kw) for cp, r in by_cp.items() for t, kw in sorted(r.needed_kw.items())]
    values = {cp: r.value_eur_per_kwh for cp, r in by_cp.items()}
    solution = solve_milp(
        usable,
        needs,
        values,
        grid_rows,
        time_limit_s=opts.time_limit_s,
        mip_rel_gap=opts.mip_rel_gap,
        cover_per_kw=cover_per_kw,
    )
    return _result(usable, needs, values, refused, opts, ac_check, solution)


def _result(
    usable: list[tuple[FlexOffer, OfferOption]],
    needs: list[tuple[str, datetime, float]],
    values: Mapping[str, float],
    refused: list[tuple[str, str]],
    opts: ClearingOptions,
    ac_check: Callable[[Sequence[Order]], Sequence[str]] | None,
    solution: MilpSolution,
) -> Clearing:
    factors, short = solution.factors, solution.short_kw
    accepted = [(off, opt, f) for (off, opt), f in zip(usable, factors, strict=True) if f > 1e-6]
    clear_price: dict[str, float] = {}
    for off, opt, _ in accepted:
        cp = off.congestion_point
        clear_price[cp] = max(clear_price.get(cp, 0.0), opt.price_eur_per_kwh)
    orders = []
    for off, opt, f in accepted:
        paid = clear_price[off.congestion_point] if opts.pricing == "pay_as_clear" else opt.price_eur_per_kwh
        order = Order(
            order_id=f"{off.offer_id}/{opt.option_id}",
            offer_id=off.offer_id,
            option_id=opt.option_id,
            fsp=off.fsp,
            congestion_point=off.congestion_point,
            factor=f,
            kw={t: f * kw for t, kw in sorted(opt.kw.items())},
            price_eur_per_kwh=paid,
            price_eur=paid * opt.energy_kwh(f),
        )
        orders.append(order)
    shortfall = {k: round(v, 9) for k, v in short.items() if v > 1e-6}
    dt_h = ISP_S / 3600.0
    cost = sum(o.price_eur for o in orders)
    relief_value = sum(values[cp] * dt_h * (need - short[(cp, t)]) for cp, t, need in needs)
    violations = tuple(ac_check(orders)) if ac_check is not None and orders else ()
    status: Literal["cleared", "partial", "ac_check_failed"] = "partial" if shortfall else "cleared"
    if violations:
        status, orders = "ac_check_failed", []
    return Clearing(
        status=status,
        orders=tuple(orders),
        shortfall_kw=shortfall,
        cost_eur=round(cost, 9),
        welfare_eur=round(relief_value - cost, 9),
        refused=tuple(refused),
        violations=violations,
        mip_gap=solution.mip_gap,
    )
