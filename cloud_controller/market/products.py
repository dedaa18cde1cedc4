"""What the local flexibility market trades: requests, offers with options, orders, gate closure.

Seed 002 (FlexiGrid's guide for DSOs) describes the market — a DSO buys, flexibility service
providers (FSPs) sell, a neutral operator clears for welfare — but gives no numbers, so
they come from the operating standards, each named where it is used:
- **USEF / UFTP** (the Shapeshifter specification): FlexRequest → FlexOffer → FlexOrder →
  FlexSettlement per ISP (imbalance settlement period, 15 min here) and congestion point;
  an offer has options, each with a power per ISP, a price and a minimum activation factor.
- **NODES**: gate closure 2 h before delivery by default (`DEFAULT_GATE_CLOSURE_S`).
- **GOPACS**: an order must solve the congestion and must not cause congestion elsewhere
  (the clearing's grid rows, `clearing.py`).

Pure data and checks; the clearing and the settlement are their own modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from protocols.errors import GridflexError

__all__ = [
    "DEFAULT_GATE_CLOSURE_S",
    "ISP_S",
    "FlexOffer",
    "FlexRequest",
    "MarketRefusal",
    "OfferOption",
    "Product",
    "check_activation_factor",
    "check_gate",
]

ISP_S = 900.0  # one imbalance settlement period: 15 min (USEF; the controller's period)
DEFAULT_GATE_CLOSURE_S = 2 * 3600.0  # NODES: offers close 2 h before delivery


class MarketRefusal(GridflexError):
    """An offer, request or order the market refuses; `rule` names the rule, the message says why."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule


class Product(StrEnum):
    """Products the DSO can buy (configurable per market)."""

    activation = "activation"  # kW per ISP, paid per kWh activated
    availability = "availability"  # €/kW held ready for a period, plus activation
    capacity_limitation = "capacity_limitation"  # a capped import per site and window


@dataclass(frozen=True)
class FlexRequest:
    """The DSO's need at one congestion point: kW of reduction per ISP, and what relief is worth.

    `value_eur_per_kwh` is the DSO's willingness to pay (its cost of the alternative:
    curtailment, a penalty, reinforcement spread over hours). An offer dearer than it is
    not bought; a need no offer covers stays open as shortfall ("orange" in USEF).
    """

    request_id: str
    congestion_point: str
    needed_kw: Mapping[datetime, float]  # ISP start -> kW of reduction
    value_eur_per_kwh: float
    product: Product = Product.activation
    revision: int = 0

    def __post_init__(self) -> None:
        if not self.needed_kw:
            raise MarketRefusal("request", f"{self.request_id}: no ISP asked for")
        if any(kw < 0 for kw in self.needed_kw.values()):
            raise MarketRefusal("request", f"{self.request_id}: a negative need")
        if not self.value_eur_per_kwh > 0:
            raise MarketRefusal("request", f"{self.request_id}: value_eur_per_kwh must be > 0")


@dataclass(frozen=True)
class OfferOption:
    """One way an FSP can deliver: kW per ISP at a price, activated as a whole or by a factor.

    The factor is 0 (not ordered) or within [min_activation_factor, 1] (UFTP's
    MinActivationFactor): 1.0 makes the option all-or-nothing, 0.0 fully divisible.
    """

    option_id: str
    kw: Mapping[datetime, float]  # ISP start -> kW of reduction at full activation
    price_eur_per_kwh: float
    min_activation_factor: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_activation_factor <= 1.0:
            raise MarketRefusal("option", f"{self.option_id}: min_activation_factor must be in [0, 1]")
        if self.price_eur_per_kwh < 0:
            raise MarketRefusal("option", f"{self.option_id}: negative price")
        if not self.kw or any(v < 0 for v in self.kw.values()):
            raise MarketRefusal("option", f"{self.option_id}: needs kW >= 0 for at least one ISP")

    def energy_kwh(self, factor: float = 1.0) -> float:
        """Energy of reduction over all ISPs at `factor`."""
        return factor * sum(self.kw.values()) * ISP_S / 3600.0


@dataclass(frozen=True)
class FlexOffer:
    """An FSP's offer at one congestion point (solicited: answers `request_id`), with options."""

    offer_id: str
    fsp: str
    congestion_point: str
    options: tuple[OfferOption, ...]
    submitted: datetime
    expires: datetime
    request_id: str | None = None  # None: unsolicited
    revoked: bool = False
    #: Elements other than the congestion point that the offer's sites load, kW per kW of
    #: reduction (negative: relieved). Filled from the grid model by the market's shell.
    sensitivity: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.options:
            raise MarketRefusal("offer", f"{self.offer_id}: no option")
        if self.expires <= self.submitted:
            raise MarketRefusal("offer", f"{self.offer_id}: expires before it was submitted")


def check_gate(
    submitted: datetime, delivery_start: datetime, gate_closure_s: float = DEFAULT_GATE_CLOSURE_S
) -> None:
    """Refuse an offer for `delivery_start` submitted after gate closure (`gate_closure_s` before it)."""
    gate = delivery_start - timedelta(seconds=gate_closure_s)
    if submitted > gate:
        late_s = (submitted - gate).total_seconds()
        raise MarketRefusal(
            "gate_closure",
            f"submitted {late_s:g} s after gate closure at {gate.isoformat()} "
            f"({gate_closure_s / 60:g} min before delivery at {delivery_start.isoformat()})",
        )


def check_activation_factor(factor: float, min_factor: float) -> None:
    """A factor is 0 or within [min_factor, 1]; anything else is refused with the bounds."""
    if factor == 0.0 or (min_factor - 1e-9 <= factor <= 1.0 + 1e-9):
        return
    raise MarketRefusal("activation_factor", f"factor {factor:g} is neither 0 nor within [{min_factor:g}, 1]")
