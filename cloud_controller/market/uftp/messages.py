"""The UFTP (USEF Shapeshifter 3.1.0) messages GridFlex speaks, as strict pydantic models.

Field order and aliases are the XML's: the codec (`codec.py`) writes attributes in field
order under their alias, list fields as child elements, so an encoded message is byte for
byte what shapeshifter-uftp 2.4.0 renders for the same content (the interop test checks
it). UFTP's units, not ours: power in whole **watts** per ISP, negative = less consumption
(the sign the DSO's downward need and the AGR's reduction share); `Price` is the **total**
EUR of an option or order (not per kWh); ISPs are numbered from 1 within `Period`, a local
day in `TimeZone` (`isp.py` turns them into UTC instants). The Flex* conversation
(request, offer, its revocation, order, settlement and their responses) is here;
D-Prognosis and Metering are in `prognosis_messages.py`; portfolio messages and
reservation updates are not modelled.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, ClassVar, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MESSAGE_TYPES",
    "ContractSettlement",
    "ContractSettlementIsp",
    "ContractSettlementPeriod",
    "FlexOffer",
    "FlexOfferOption",
    "FlexOfferOptionIsp",
    "FlexOfferResponse",
    "FlexOfferRevocation",
    "FlexOfferRevocationResponse",
    "FlexOrder",
    "FlexOrderIsp",
    "FlexOrderResponse",
    "FlexOrderSettlement",
    "FlexOrderSettlementIsp",
    "FlexOrderSettlementStatus",
    "FlexRequest",
    "FlexRequestIsp",
    "FlexRequestResponse",
    "FlexSettlement",
    "FlexSettlementResponse",
    "PayloadMessage",
    "Role",
]

Role = Literal["DSO", "AGR"]
UUID = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
DOMAIN = r"^([a-z0-9]+(-[a-z0-9]+)*\.)+[a-z]{2,}$"
TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{0,9})?([+-]\d{2}:\d{2}|Z)$"
DATE = r"^\d{4}-\d{2}-\d{2}$"
#: an EA1 entity address or an EAN (the schema's pattern)
ENTITY = r"^(ea1\.[0-9]{4}-[0-9]{2}\..{1,244}:.{1,244}|ean\.[0-9]{12,34})$"

Uuid = Annotated[str, Field(pattern=UUID)]
Domain = Annotated[str, Field(pattern=DOMAIN, max_length=253)]
Timestamp = Annotated[str, Field(pattern=TIMESTAMP)]


def _real_date(v: str) -> str:
    date.fromisoformat(v)  # ValueError on 2026-02-30
    return v


def _known_zone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r}") from None
    return v


Date = Annotated[str, Field(pattern=DATE), AfterValidator(_real_date)]
Entity = Annotated[str, Field(pattern=ENTITY)]
Ref = Annotated[str, Field(min_length=1, max_length=256)]
Watts = Annotated[int, Field(ge=-(10**12), le=10**12)]
IspNo = Annotated[int, Field(ge=1, le=100)]  # 100: the ISPs of a 25-h DST day
Count = Annotated[int, Field(ge=1, le=100)]
Money = Annotated[Decimal, Field(max_digits=18, decimal_places=4, allow_inf_nan=False)]
Factor = Annotated[Decimal, Field(ge=Decimal("0.01"), le=Decimal("1.00"), decimal_places=2)]
Accepted = Literal["Accepted", "Rejected"]
MAX_ITEMS = 10_000


class _Xml(BaseModel):
    """Strict, frozen; fields by their XML name (alias) or their Python name."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)
    #: the element's tag (messages and their children)
    TAG: ClassVar[str]
    #: decimal places the codec writes per Decimal field (the schema's fraction digits)
    DIGITS: ClassVar[dict[str, int]] = {}


class PayloadMessage(_Xml):
    """The attributes every UFTP message carries (the codec's client side fills them on send)."""

    version: str = Field(default="3.1.0", alias="Version", pattern=r"^\d+\.\d+\.\d+$")
    sender_domain: Domain = Field(alias="SenderDomain")
    recipient_domain: Domain | None = Field(default=None, alias="RecipientDomain")
    time_stamp: Timestamp = Field(alias="TimeStamp")
    message_id: Uuid = Field(alias="MessageID")
    conversation_id: Uuid = Field(alias="ConversationID")


class _Response(PayloadMessage):
    result: Accepted = Field(default="Accepted", alias="Result")
    rejection_reason: str | None = Field(default=None, alias="RejectionReason", max_length=2000)


class _Flex(PayloadMessage):
    isp_duration: Literal["PT15M"] = Field(default="PT15M", alias="ISP-Duration")
    time_zone: Annotated[str, AfterValidator(_known_zone)] = Field(
        default="Europe/Amsterdam",
        alias="TimeZone",
        pattern=r"^(Africa|America|Australia|Europe|Pacific)/[a-zA-Z0-9_/]{3,}$",
    )
    period: Date = Field(alias="Period")
    congestion_point: Entity = Field(alias="CongestionPoint")


# -- FlexRequest --------------------------------------------------------------------------


class FlexRequestIsp(_Xml):
    """ISPs `start`..`start+duration-1`: the power range the DSO asks (Requested) or allows (Available)."""

    TAG = "ISP"
    disposition: Literal["Available", "Requested"] | None = Field(default=None, alias="Disposition")
    min_power_w: Watts = Field(alias="MinPower")
    max_power_w: Watts = Field(alias="MaxPower")
    start: IspNo = Field(alias="Start")
    duration: Count = Field(default=1, alias="Duration")


class FlexRequest(_Flex):
    """The DSO's need at a congestion point on one day (one revision of it)."""

    TAG = "FlexRequest"
    revision: int = Field(alias="Revision", ge=0, le=10**9)
    expiration_date_time: Timestamp = Field(alias="ExpirationDateTime")
    contract_id: str | None = Field(default=None, alias="ContractID")
    service_type: str | None = Field(default=None, alias="ServiceType")
    isps: list[FlexRequestIsp] = Field(alias="ISP", min_length=1, max_length=MAX_ITEMS)


class FlexRequestResponse(_Response):
    """The AGR's receipt of a FlexRequest (accepted, or rejected with the reason)."""

    TAG = "FlexRequestResponse"
    flex_request_message_id: Uuid = Field(alias="FlexRequestMessageID")


# -- FlexOffer ----------------------------------------------------------------------------


class FlexOfferOptionIsp(_Xml):
    """W offered in ISPs `start`..`start+duration-1` (negative: less consumption)."""

    TAG = "ISP"
    power_w: Watts = Field(alias="Power")
    start: IspNo = Field(alias="Start")
    duration: Count = Field(default=1, alias="Duration")


class FlexOfferOption(_Xml):
    """One option: W per ISP, its total price, and the least factor it may be ordered at."""

    TAG = "OfferOption"
    DIGITS = {"price": 4, "min_activation_factor": 2}
    option_reference: Ref = Field(alias="OptionReference")
    price: Money = Field(alias="Price", ge=0)
    min_activation_factor: Factor = Field(default=Decimal("1.00"), alias="MinActivationFactor")
    isps: list[FlexOfferOptionIsp] = Field(alias="ISP", min_length=1, max_length=MAX_ITEMS)


class FlexOffer(_Flex):
    """The AGR's offer: solicited (`flex_request_message_id`) unless `unsolicited`."""

    TAG = "FlexOffer"
    expiration_date_time: Timestamp = Field(alias="ExpirationDateTime")
    unsolicited: bool | None = Field(default=None, alias="Unsolicited")
    flex_request_message_id: Uuid | None = Field(default=None, alias="FlexRequestMessageID")
    contract_id: str | None = Field(default=None, alias="ContractID")
    d_prognosis_message_id: Uuid | None = Field(default=None, alias="D-PrognosisMessageID")
    baseline_reference: str | None = Field(default=None, alias="BaselineReference")
    currency: str = Field(default="EUR", alias="Currency", pattern=r"^[A-Z]{3}$")
    offer_options: list[FlexOfferOption] = Field(alias="OfferOption", min_length=1, max_length=64)

    @model_validator(mode="after")
    def _solicited(self) -> Self:
        if not self.unsolicited and self.flex_request_message_id is None:
            raise ValueError("FlexRequestMessageID is required unless Unsolicited is true")
        return self


class FlexOfferResponse(_Response):
    """The DSO's receipt of a FlexOffer."""

    TAG = "FlexOfferResponse"
    flex_offer_message_id: Uuid = Field(alias="FlexOfferMessageID")


class FlexOfferRevocation(PayloadMessage):
    """The AGR voids an offer it made (before it is ordered)."""

    TAG = "FlexOfferRevocation"
    flex_offer_message_id: Uuid = Field(alias="FlexOfferMessageID")


class FlexOfferRevocationResponse(_Response):
    """The DSO's answer to a revocation (rejected, with the reason, when the offer is not open)."""

    TAG = "FlexOfferRevocationResponse"
    flex_offer_revocation_message_id: Uuid = Field(alias="FlexOfferRevocationMessageID")


# -- FlexOrder ----------------------------------------------------------------------------


class FlexOrderIsp(_Xml):
    """W ordered in ISPs `start`..`start+duration-1`, as offered (the factor scales it)."""

    TAG = "ISP"
    power_w: Watts = Field(alias="Power")
    start: IspNo = Field(alias="Start")
    duration: Count = Field(default=1, alias="Duration")


class FlexOrder(_Flex):
    """The DSO's order of one option: the offer's ISPs unchanged, the price, the activation factor."""

    TAG = "FlexOrder"
    DIGITS = {"price": 4, "activation_factor": 2}
    unsolicited: bool | None = Field(default=None, alias="Unsolicited")
    service_type: str | None = Field(default=None, alias="ServiceType")
    flex_offer_message_id: Uuid | None = Field(default=None, alias="FlexOfferMessageID")
    contract_id: str | None = Field(default=None, alias="ContractID")
    d_prognosis_message_id: Uuid | None = Field(default=None, alias="D-PrognosisMessageID")
    baseline_reference: str | None = Field(default=None, alias="BaselineReference")
    price: Money = Field(alias="Price", ge=0)
    currency: str = Field(default="EUR", alias="Currency", pattern=r"^[A-Z]{3}$")
    order_reference: Ref = Field(alias="OrderReference")
    option_reference: Ref | None = Field(default=None, alias="OptionReference")
    activation_factor: Factor = Field(default=Decimal("1.00"), alias="ActivationFactor")
    isps: list[FlexOrderIsp] = Field(alias="ISP", min_length=1, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _solicited(self) -> Self:
        if not self.unsolicited and self.flex_offer_message_id is None:
            raise ValueError("FlexOfferMessageID is required unless Unsolicited is true")
        return self


class FlexOrderResponse(_Response):
    """The AGR's answer to an order: accepted (it will deliver) or rejected with the reason."""

    TAG = "FlexOrderResponse"
    flex_order_message_id: Uuid = Field(alias="FlexOrderMessageID")


# -- FlexSettlement -----------------------------------------------------------------------


class FlexOrderSettlementIsp(_Xml):
    """One ISP of an order's settlement, W (negative = less consumption, like the order)."""

    TAG = "ISP"
    start: IspNo = Field(alias="Start")
    duration: Count = Field(default=1, alias="Duration")
    baseline_power_w: Watts = Field(alias="BaselinePower")
    ordered_flex_power_w: Watts = Field(alias="OrderedFlexPower")
    actual_power_w: Watts = Field(alias="ActualPower")
    delivered_flex_power_w: Watts = Field(alias="DeliveredFlexPower")
    power_deficiency_w: Watts = Field(default=0, alias="PowerDeficiency")


class FlexOrderSettlement(_Xml):
    """An order's settlement for one period: per ISP, then price, penalty and net = price − penalty."""

    TAG = "FlexOrderSettlement"
    DIGITS = {"price": 4, "penalty": 4, "net_settlement": 4}
    order_reference: Ref | None = Field(default=None, alias="OrderReference")
    period: Date = Field(alias="Period")
    contract_id: str | None = Field(default=None, alias="ContractID")
    d_prognosis_message_id: Uuid | None = Field(default=None, alias="D-PrognosisMessageID")
    baseline_reference: str | None = Field(default=None, alias="BaselineReference")
    congestion_point: Entity = Field(alias="CongestionPoint")
    price: Money = Field(alias="Price")
    penalty: Money = Field(default=Decimal("0"), alias="Penalty")
    net_settlement: Money = Field(alias="NetSettlement")
    isps: list[FlexOrderSettlementIsp] = Field(alias="ISP", min_length=1, max_length=MAX_ITEMS)


class ContractSettlementIsp(_Xml):
    """Reserved power of a bilateral contract in some ISPs."""

    TAG = "ISP"
    start: IspNo = Field(alias="Start")
    duration: Count = Field(default=1, alias="Duration")
    reserved_power_w: Watts = Field(alias="ReservedPower")
    requested_power_w: Watts | None = Field(default=None, alias="RequestedPower")
    available_power_w: Watts | None = Field(default=None, alias="AvailablePower")
    offered_power_w: Watts | None = Field(default=None, alias="OfferedPower")
    ordered_power_w: Watts | None = Field(default=None, alias="OrderedPower")


class ContractSettlementPeriod(_Xml):
    """One day of a contract settlement."""

    TAG = "Period"
    period: Date = Field(alias="Period")
    isps: list[ContractSettlementIsp] = Field(alias="ISP", min_length=1, max_length=MAX_ITEMS)


class ContractSettlement(_Xml):
    """Bilateral-contract settlement; GridFlex has no contracts, but the library's schema wants one."""

    TAG = "ContractSettlement"
    contract_id: str | None = Field(default=None, alias="ContractID")
    periods: list[ContractSettlementPeriod] = Field(alias="Period", min_length=1, max_length=MAX_ITEMS)


class FlexSettlement(_Response):
    """The DSO's settlement of its orders over [period_start, period_end] (a response type in the schema)."""

    TAG = "FlexSettlement"
    period_start: Date = Field(alias="PeriodStart")
    period_end: Date = Field(alias="PeriodEnd")
    currency: str = Field(default="EUR", alias="Currency", pattern=r"^[A-Z]{3}$")
    flex_order_settlements: list[FlexOrderSettlement] = Field(
        alias="FlexOrderSettlement", min_length=1, max_length=MAX_ITEMS
    )
    contract_settlements: list[ContractSettlement] = Field(
        alias="ContractSettlement", min_length=1, max_length=MAX_ITEMS
    )


class FlexOrderSettlementStatus(_Xml):
    """The AGR's verdict on one order's settlement."""

    TAG = "FlexOrderSettlementStatus"
    order_reference: Ref | None = Field(default=None, alias="OrderReference")
    disposition: Literal["Accepted", "Disputed"] = Field(alias="Disposition")
    dispute_reason: str | None = Field(default=None, alias="DisputeReason", max_length=2000)


class FlexSettlementResponse(_Response):
    """The AGR's answer: each order's settlement accepted or disputed (with the reason)."""

    TAG = "FlexSettlementResponse"
    flex_settlement_message_id: Uuid = Field(alias="FlexSettlementMessageID")
    flex_order_settlement_statuses: list[FlexOrderSettlementStatus] = Field(
        alias="FlexOrderSettlementStatus", min_length=1, max_length=MAX_ITEMS
    )


#: tag -> model, the messages the codec decodes
MESSAGE_TYPES: dict[str, type[PayloadMessage]] = {
    m.TAG: m
    for m in (
        FlexRequest,
        FlexRequestResponse,
        FlexOffer,
        FlexOfferResponse,
        FlexOfferRevocation,
        FlexOfferRevocationResponse,
        FlexOrder,
        FlexOrderResponse,
        FlexSettlement,
        FlexSettlementResponse,
    )
}
