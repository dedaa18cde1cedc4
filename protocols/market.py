"""The local flexibility market on the wire: topics per FSP and their message models (schema v1).

Topics are `gridflex/v1/market/{fsp}/{kind}`, one subtree per flexibility service provider
(FSP), so the broker's ACL can keep each FSP in its own (`gridflex.ops.market_acl`):

| kind | direction | carries |
|---|---|---|
| `request` | controller → FSP | `MarketRequest`, the DSO's need at a congestion point (UFTP FlexRequest) |
| `offer` | FSP → controller | `MarketOffer`, options per ISP with price and min activation factor (FlexOffer) |
| `order` | controller → FSP | `MarketOrder`, an accepted option and its activation factor (FlexOrder) |
| `settlement` | controller → FSP | `MarketSettlement`, per ISP baseline/ordered/actual/delivered/deficiency (FlexSettlement) |

The same models are the bodies of the HTTP API (`/market/...`), written once here. They are
strict like `protocols.messages`: finite floats, aware timestamps stored as UTC, bounded
lists, no unknown field; every ISP starts on the 15-min grid (USEF's ISP).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from protocols.errors import ContractError
from protocols.topics import ID_PATTERN, ROOT, validate_id

__all__ = [
    "ISP_S",
    "MAX_ISPS",
    "DisputeBody",
    "MarketDispute",
    "MarketIsp",
    "MarketKind",
    "MarketOffer",
    "MarketOption",
    "MarketOrder",
    "MarketPrognosis",
    "MarketRequest",
    "MarketSettlement",
    "PrognosisIsp",
    "ResolveBody",
    "SettledIsp",
    "decode_offer",
    "market_topic",
    "market_wildcard",
    "parse_market",
]

ISP_S: Final = 900  # USEF's imbalance settlement period: 15 min
MAX_ISPS: Final = 192  # 48 h of ISPs per request, option or order
MAX_OPTIONS: Final = 32
MAX_PAYLOAD_BYTES: Final = 256 * 1024


class MarketKind(StrEnum):
    """The last level of a market topic."""

    REQUEST = "request"
    OFFER = "offer"
    ORDER = "order"
    SETTLEMENT = "settlement"


def market_topic(fsp: str, kind: MarketKind | str) -> str:
    """`gridflex/v1/market/{fsp}/{kind}` (the FSP id validated like a site id)."""
    return f"{ROOT}/market/{validate_id(fsp, what='FSP id')}/{MarketKind(kind).value}"


def market_wildcard(kind: MarketKind | str) -> str:
    """One kind of every FSP: `gridflex/v1/market/+/{kind}` (the controller subscribes to offers)."""
    return f"{ROOT}/market/+/{MarketKind(kind).value}"


def is_market_topic(topic: str) -> bool:
    """Whether `topic` is under `gridflex/v1/market/`."""
    return topic.startswith(f"{ROOT}/market/")


def parse_market(topic: str) -> tuple[str, MarketKind]:
    """(FSP id, kind) of a market topic; ValueError naming what is wrong otherwise."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT or parts[2] != "market":
        raise ValueError(f"not a GridFlex market topic: {topic!r}")
    fsp = validate_id(parts[3], what="FSP id")
    try:
        kind = MarketKind(parts[4])
    except ValueError:
        raise ValueError(f"unknown market topic kind {parts[4]!r} in {topic!r}") from None
    return fsp, kind


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _on_isp_grid(value: datetime) -> datetime:
    if value.timestamp() % ISP_S != 0:
        raise ValueError(f"{value.isoformat()} is not on the {ISP_S // 60}-min ISP grid")
    return value


Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
MsgId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Utc = Annotated[AwareDatetime, AfterValidator(_to_utc)]
IspStart = Annotated[AwareDatetime, AfterValidator(_to_utc), AfterValidator(_on_isp_grid)]
Kw = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Eur = Annotated[float, Field(allow_inf_nan=False)]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Factor = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Product = Literal["activation", "availability", "capacity_limitation"]
#: The baseline an offer is settled against: NODES' 5-working-day same-ISP mean, high 4 of 5,
#: the FSP's own prognosis (`MarketPrognosis`, before gate closure) or our site forecast
#: (frozen when the offer is cleared).
Baseline = Literal["nodes_5wd", "high_4_of_5", "fsp_prognosis", "our_forecast"]
#: Net load of the delivering sites, kW (load positive; negative when they export).
LoadKw = Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class MarketIsp(_Strict):
    """kW of reduction in one ISP (its start on the 15-min grid)."""

    start: IspStart
    kw: Kw


def _distinct(isps: list[MarketIsp], what: str) -> None:
    starts = [i.start for i in isps]
    if len(set(starts)) != len(starts):
        raise ValueError(f"{what}: an ISP is given twice")


class MarketRequest(_Strict):
    """The DSO's FlexRequest at one congestion point: kW per ISP and the value of relief (€/kWh)."""

    v: Literal[1] = 1
    request_id: MsgId
    congestion_point: Id
    ts: Utc
    isps: list[MarketIsp] = Field(min_length=1, max_length=MAX_ISPS)
    value_eur_per_kwh: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    product: Product = "activation"
    revision: int = Field(default=0, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _isps(self) -> Self:
        _distinct(self.isps, "isps")
        return self


class MarketOption(_Strict):
    """One way to deliver: kW per ISP at a price; factor 0 or within [min_activation_factor, 1]."""

    option_id: MsgId
    isps: list[MarketIsp] = Field(min_length=1, max_length=MAX_ISPS)
    price_eur_per_kwh: Price
    min_activation_factor: Factor = 1.0

    @model_validator(mode="after")
    def _isps(self) -> Self:
        _distinct(self.isps, f"option {self.option_id}")
        return self


class PrognosisIsp(_Strict):
    """The delivering sites' expected net load in one ISP without the activation (kW, load positive)."""

    start: IspStart
    kw: LoadKw


class MarketPrognosis(_Strict):
    """An FSP's own baseline for one of its offers (USEF's prognosis): kW per ISP of the offer's sites.

    Submitted with the offer (`MarketOffer.prognosis`) or before the offer's gate closure
    (`POST /market/prognoses`); a later one replaces it until gate closure. Used when the
    offer (and so its order) names `baseline: fsp_prognosis`.
    """

    v: Literal[1] = 1
    offer_id: MsgId
    fsp: Id
    ts: Utc
    isps: list[PrognosisIsp] = Field(min_length=1, max_length=MAX_ISPS)

    @model_validator(mode="after")
    def _isps(self) -> Self:
        starts = [i.start for i in self.isps]
        if len(set(starts)) != len(starts):
            raise ValueError("isps: an ISP is given twice")
        return self


class MarketOffer(_Strict):
    """An FSP's FlexOffer: solicited (`request_id`) or not, with options, an expiry and a baseline.

    `sites` are the sites that deliver (behind the congestion point); the settlement
    meters them against `baseline`.
    """

    v: Literal[1] = 1
    offer_id: MsgId
    fsp: Id
    congestion_point: Id
    ts: Utc
    expires: Utc
    options: list[MarketOption] = Field(min_length=1, max_length=MAX_OPTIONS)
    request_id: MsgId | None = None
    sites: list[Id] = Field(default_factory=list, max_length=10_000)
    baseline: Baseline = "nodes_5wd"
    #: the FSP's prognosis (kW per ISP of `sites`), or later as a `MarketPrognosis`
    prognosis: list[PrognosisIsp] | None = Field(default=None, max_length=MAX_ISPS)

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.expires <= self.ts:
            raise ValueError("expires must be after ts")
        ids = [o.option_id for o in self.options]
        if len(set(ids)) != len(ids):
            raise ValueError("option ids must be distinct")
        return self


class MarketOrder(_Strict):
    """A FlexOrder: the option accepted, its activation factor, the kW per ISP and the price."""

    v: Literal[1] = 1
    order_id: MsgId
    clearing_id: MsgId
    offer_id: MsgId
    option_id: MsgId
    fsp: Id
    congestion_point: Id
    ts: Utc
    factor: Factor
    isps: list[MarketIsp] = Field(min_length=1, max_length=MAX_ISPS)
    price_eur_per_kwh: Price
    price_eur: Eur
    #: the baseline it is settled against (the offer's)
    baseline: Baseline = "nodes_5wd"


class SettledIsp(_Strict):
    """One ISP of a settlement (kW means over the ISP)."""

    start: Utc
    baseline_kw: Eur
    ordered_kw: Kw
    actual_kw: Eur
    delivered_kw: Kw
    deficiency_kw: Kw


class MarketSettlement(_Strict):
    """A FlexSettlement of one order: per ISP, then price, penalty (our policy) and net = price − penalty."""

    v: Literal[1] = 1
    order_id: MsgId
    fsp: Id
    congestion_point: Id
    ts: Utc
    baseline: Baseline
    isps: list[SettledIsp] = Field(min_length=1, max_length=MAX_ISPS)
    price_eur: Eur
    penalty_eur: Eur
    net_eur: Eur
    delivered_kwh: Kw
    deficiency_kwh: Kw
    #: 0 as first settled; +1 each time an accepted dispute recomputes it
    revision: int = Field(default=0, ge=0, le=1000)


DisputeStatus = Literal["open", "accepted", "rejected"]


class DisputeBody(_Strict):
    """`POST /market/settlements/{order_id}/dispute`: the FSP's reason."""

    reason: Reason


class ResolveBody(_Strict):
    """`POST /market/disputes/{order_id}/resolve`: the operator's decision (accept names the baseline)."""

    decision: Literal["accept", "reject"]
    reason: Reason
    baseline: Baseline | None = None

    @model_validator(mode="after")
    def _baseline(self) -> Self:
        if self.decision == "accept" and self.baseline is None:
            raise ValueError("an accepted dispute states the baseline to settle against")
        if self.decision == "reject" and self.baseline is not None:
            raise ValueError("a rejected dispute keeps the settlement: no baseline")
        return self


class MarketDispute(_Strict):
    """An FSP's dispute of one settlement and the market operator's resolution (open → accepted | rejected)."""

    v: Literal[1] = 1
    order_id: MsgId
    fsp: Id
    ts: Utc
    reason: Reason
    status: DisputeStatus = "open"
    resolved_ts: Utc | None = None
    resolution: Reason | None = None
    #: the baseline the accepted dispute was settled again against
    baseline: Baseline | None = None
    #: net before and after (accepted only)
    net_before_eur: Eur | None = None
    net_after_eur: Eur | None = None


def decode_offer(topic: str, payload: bytes) -> MarketOffer:
    """An offer received on `market/{fsp}/offer`, or ContractError (the payload's FSP must be the topic's)."""
    try:
        fsp, kind = parse_market(topic)
    except ValueError as exc:
        raise ContractError(str(exc), topic=topic) from None
    if kind is not MarketKind.OFFER:
        raise ContractError(f"the controller takes only offers, not {kind.value!r}", topic=topic)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}", topic=topic)
    try:
        offer = MarketOffer.model_validate_json(payload)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        raise ContractError(f"schema violation: {loc}: {err['msg']}", topic=topic) from None
    if offer.fsp != fsp:
        raise ContractError(f"payload fsp {offer.fsp!r} does not match the topic's {fsp!r}", topic=topic)
    return offer
