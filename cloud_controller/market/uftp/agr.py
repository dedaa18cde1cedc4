"""GridFlex as UFTP **AGR**: a DSO's FlexRequest answered from DR, its FlexOrder executed, its settlement checked.

- FlexRequest → a DR request of the peer's programme (`peer.program`) over the requested
  ISPs (kW = the need: the larger magnitude of MinPower/MaxPower on the reduction side),
  run as a **dry run** (`preview`: the DR selection, nothing recorded); what it can
  deliver per ISP becomes one FlexOffer option at `offer_price_eur_per_kwh` (total
  `Price` = that × the option's kWh) and `offer_min_activation_factor`. Nothing to offer
  (no contract accepts, or 0 kW) → a Rejected FlexRequestResponse with the reason.
- FlexOrder → checked against our offer (the ISPs unchanged, factor ≥ our minimum, price
  ≥ the offer's × factor), then **executed** through the controller's command path
  (`execute`: DrService.submit and what follows it) with kW = offered × factor; the
  FlexOrderResponse is Accepted only when the DR request was accepted.
- FlexSettlement → each order's settlement Accepted, or Disputed with the reason: an
  order we do not know, a net that is not price − penalty, ordered power that is not
  what we executed.
- With `prognoses` (`agr_prognosis.py`) and some of our sites behind the request's
  congestion point (`peer.congestion_points`): a D-Prognosis of that point's day goes
  out before the FlexOffer, which names it (`D-PrognosisMessageID`); the DSO's
  D-PrognosisResponse and MeteringResponse are kept there; each executed order schedules
  the Metering of its day one ISP after its last ISP ends, and its ordered W join our
  prognosis of that point and day, re-sent after the FlexOrderResponse when it changed
  (`resender`, `agr_resend.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from cloud_controller.dr.requests_store import DrRecord
from cloud_controller.market.uftp.agr_prognosis import AgrPrognoses
from cloud_controller.market.uftp.agr_resend import PrognosisResender
from cloud_controller.market.uftp.config import UftpPeer
from cloud_controller.market.uftp.isp import ISP, expand, isp_start, kw_of_reduction, reduction_w
from cloud_controller.market.uftp.messages import (
    FlexOffer,
    FlexOfferOption,
    FlexOfferOptionIsp,
    FlexOfferResponse,
    FlexOfferRevocation,
    FlexOfferRevocationResponse,
    FlexOrder,
    FlexOrderResponse,
    FlexOrderSettlement,
    FlexOrderSettlementStatus,
    FlexRequest,
    FlexRequestResponse,
    FlexSettlement,
    FlexSettlementResponse,
    PayloadMessage,
)
from cloud_controller.market.uftp.node import UftpNode, UftpSendError
from cloud_controller.market.uftp.prognosis_messages import DPrognosis, DPrognosisResponse, MeteringResponse
from cloud_controller.market.uftp.store import Ledger, UftpStore
from protocols.errors import GridflexError
from protocols.messages import DRInterval, DRRequest

__all__ = ["Execute", "OfferMade", "OrderExecuted", "Preview", "UftpAgr"]

#: the DR selection's dry run: the request -> the selection JSON (`delivered_kw` per interval)
Preview = Callable[[DRRequest], Awaitable[dict[str, Any]]]
#: the command path: the request submitted, selected and sent to the sites
Execute = Callable[[DRRequest], Awaitable[DrRecord]]
CENT4 = Decimal("0.0001")
ISP_H = ISP.total_seconds() / 3600.0


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OfferMade(_Record):
    """One FlexOffer we sent and what it promised."""

    message: FlexOffer
    program: str
    kw: dict[int, float]  # ISP number -> kW of reduction at factor 1
    price_eur: Decimal
    result: str | None = None  # the DSO's FlexOfferResponse
    #: our FlexOfferRevocation's MessageID and the DSO's answer to it
    revocation_id: str | None = None
    revocation_result: str | None = None
    revocation_reason: str | None = None


class OrderExecuted(_Record):
    """A FlexOrder we accepted and the DR request that carries it out."""

    order_reference: str
    dr_request_id: str
    status: str
    ordered_w: dict[int, int]  # ISP number -> W (negative: reduction), as executed


@dataclass
class AgrLog:
    """What the AGR side answered, with reasons (for `GET /uftp/status` and the tests)."""

    requests_rejected: list[dict[str, str]] = field(default_factory=list)
    orders_rejected: list[dict[str, str]] = field(default_factory=list)
    settlements: list[dict[str, str | None]] = field(default_factory=list)


def _utc(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


class UftpAgr:
    """GridFlex's AGR role over `node`, its flexibility from DR (`preview`, `execute`)."""

    def __init__(
        self,
        node: UftpNode,
        *,
        preview: Preview,
        execute: Execute,
        store: UftpStore | None = None,
        prognoses: AgrPrognoses | None = None,
        resender: PrognosisResender | None = None,
    ) -> None:
        self.node = node
        self.config = node.config
        self.preview = preview
        self.execute = execute
        #: our D-Prognoses and Metering towards the DSO peers (None: we send neither)
        self.prognoses = prognoses
        #: re-sends a D-Prognosis an executed order changed (None: only with the next offer)
        self.resender = resender
        #: FlexOffer MessageID -> what it promised (kept in `store` across restarts)
        self.offers = Ledger(OfferMade, "agr_offer", store)
        #: OrderReference -> the DR request executing it
        self.orders = Ledger(OrderExecuted, "agr_order", store)
        self.log = AgrLog()
        node.handlers["AGR"] = self.on_message

    async def on_message(self, msg: PayloadMessage, peer: UftpPeer) -> None:
        """A DSO's message (the node checked its signature, sender and type)."""
        if isinstance(msg, FlexRequest):
            await self._request(msg, peer)
        elif isinstance(msg, FlexOrder):
            await self._order(msg, peer)
        elif isinstance(msg, FlexSettlement):
            await self._settlement(msg, peer)
        elif isinstance(msg, FlexOfferRevocationResponse):
            for key in list(self.offers):
                revoked = self.offers[key]
                if revoked.revocation_id == msg.flex_offer_revocation_message_id:
                    revoked.revocation_result, revoked.revocation_reason = msg.result, msg.rejection_reason
                    self.offers.put(key, revoked)
        elif isinstance(msg, DPrognosisResponse | MeteringResponse):
            if self.prognoses is not None:
                self.prognoses.on_response(msg)
        elif isinstance(msg, FlexOfferResponse):
            made = self.offers.get(msg.flex_offer_message_id)
            if made is not None:
                made.result = msg.result
                self.offers.put(msg.flex_offer_message_id, made)

    # -- request -> offer ----------------------------------------------------------------

    def _dr_request(
        self, request_id: str, program: str, day: date, tz: str, kw: dict[int, float]
    ) -> DRRequest:
        """A DR request over ISPs min(kw)..max(kw) (0 kW where none is asked)."""
        first, last = min(kw), max(kw)
        return DRRequest(
            program=program,
            ts=self.node.clock.now(),
            request_id=request_id,
            start=isp_start(day, first, tz),
            end=isp_start(day, last, tz) + ISP,
            direction="reduce",
            p_kw=max(*kw.values(), 1e-3),
            intervals=[DRInterval(p_kw=kw.get(n, 0.0)) for n in range(first, last + 1)],
            service_type="uftp",
        )

    async def _request(self, msg: FlexRequest, peer: UftpPeer) -> None:
        assert peer.program is not None  # config: a DSO peer names its programme
        reason = None
        offer = None
        prognosis: DPrognosis | None = None
        try:
            need = expand(
                (i.start, i.duration, min(i.min_power_w, i.max_power_w))
                for i in msg.isps
                if i.disposition != "Available"
            )
            kw = {n: kw_of_reduction(w) for n, w in need.items()}
            if _utc(msg.expiration_date_time) <= self.node.clock.now():
                raise ValueError(f"ExpirationDateTime {msg.expiration_date_time} has passed")
            if not any(kw.values()):
                raise ValueError("no ISP requests a reduction")
            day = date.fromisoformat(msg.period)
            dry = self._dr_request(f"uftp-{msg.message_id}", peer.program, day, msg.time_zone, kw)
            selection = await self.preview(dry)
            delivered = [float(v) for v in selection.get("delivered_kw", [])]
            first = min(kw)
            can = {n: round(abs(delivered[n - first]), 3) for n in kw if n - first < len(delivered)}
            if not any(can.values()):
                raise ValueError(f"DR programme {peer.program!r} can deliver nothing in these ISPs")
            if self.prognoses is not None:
                prognosis = await self.prognoses.build_prognosis(
                    peer, msg.congestion_point, day, msg.time_zone, msg.conversation_id
                )
            offer = self._offer(msg, peer, can, prognosis.message_id if prognosis else None)
        except (ValueError, GridflexError) as exc:
            reason = str(exc).splitlines()[0]
            self.log.requests_rejected.append({"message_id": msg.message_id, "reason": reason})
        await self.node.send(
            peer,
            FlexRequestResponse(
                **self.node.header(peer, msg.conversation_id),
                result="Rejected" if reason else "Accepted",
                rejection_reason=reason,
                flex_request_message_id=msg.message_id,
            ),
        )
        if prognosis is not None and offer is not None:
            await self.node.send(peer, prognosis)
        if offer is not None:
            await self.node.send(peer, offer)

    def _offer(
        self, req: FlexRequest, peer: UftpPeer, kw: dict[int, float], prognosis_id: str | None = None
    ) -> FlexOffer:
        assert peer.program is not None
        energy_kwh = sum(kw.values()) * ISP_H
        price = Decimal(str(energy_kwh * self.config.offer_price_eur_per_kwh)).quantize(CENT4, ROUND_HALF_UP)
        expires = min(
            _utc(req.expiration_date_time),
            self.node.clock.now() + timedelta(seconds=self.config.offer_validity_s),
        )
        msg = FlexOffer(
            **self.node.header(peer, req.conversation_id),
            time_zone=req.time_zone,
            period=req.period,
            congestion_point=req.congestion_point,
            expiration_date_time=expires.isoformat(),
            flex_request_message_id=req.message_id,
            d_prognosis_message_id=prognosis_id,
            offer_options=[
                FlexOfferOption(
                    option_reference="dr-1",
                    price=price,
                    min_activation_factor=Decimal(str(self.config.offer_min_activation_factor)).quantize(
                        Decimal("0.01")
                    ),
                    isps=[FlexOfferOptionIsp(power_w=reduction_w(v), start=n) for n, v in sorted(kw.items())],
                )
            ],
        )
        self.offers.put(msg.message_id, OfferMade(message=msg, program=peer.program, kw=kw, price_eur=price))
        return msg

    async def revoke(self, offer_message_id: str, peer: UftpPeer) -> str:
        """Void an offer we made (FlexOfferRevocation); its MessageID. KeyError if not ours."""
        made = self.offers[offer_message_id]
        msg = FlexOfferRevocation(
            **self.node.header(peer, made.message.conversation_id), flex_offer_message_id=offer_message_id
        )
        made.revocation_id = msg.message_id
        self.offers.put(offer_message_id, made)
        await self.node.send(peer, msg)
        return msg.message_id

    # -- order -> DR ---------------------------------------------------------------------

    def _check_order(self, msg: FlexOrder) -> OfferMade:
        made = self.offers.get(msg.flex_offer_message_id or "")
        if made is None:
            raise ValueError(f"FlexOfferMessageID {msg.flex_offer_message_id}: not an offer of ours")
        if msg.congestion_point != made.message.congestion_point or msg.period != made.message.period:
            raise ValueError("CongestionPoint/Period differ from the offer's")
        option = made.message.offer_options[0]
        if msg.option_reference not in (None, option.option_reference):
            raise ValueError(f"OptionReference {msg.option_reference!r} is not in the offer")
        ordered = expand((i.start, i.duration, i.power_w) for i in msg.isps)
        offered = expand((i.start, i.duration, i.power_w) for i in option.isps)
        if ordered != offered:
            raise ValueError("ISPs differ from the offer's (UFTP: copied unchanged)")
        if msg.activation_factor < option.min_activation_factor:
            raise ValueError(
                f"ActivationFactor {msg.activation_factor} is below MinActivationFactor {option.min_activation_factor}"
            )
        if msg.price < (option.price * msg.activation_factor).quantize(CENT4) - CENT4:
            raise ValueError(
                f"Price {msg.price} is below the offer's {option.price} x {msg.activation_factor}"
            )
        if msg.order_reference in self.orders:
            raise ValueError(f"OrderReference {msg.order_reference!r} was ordered already")
        return made

    async def _order(self, msg: FlexOrder, peer: UftpPeer) -> None:
        reason = None
        try:
            made = self._check_order(msg)
            factor = float(msg.activation_factor)
            kw = {n: v * factor for n, v in made.kw.items()}
            dr = self._dr_request(
                f"uftp-{msg.message_id}", made.program, date.fromisoformat(msg.period), msg.time_zone, kw
            )
            record = await self.execute(dr)
            if record.status not in ("selected", "partial", "active"):
                raise ValueError(f"DR request {dr.request_id} is {record.status}")
            if self.prognoses is not None:
                day = date.fromisoformat(msg.period)
                self.prognoses.record_order(
                    peer,
                    msg.congestion_point,
                    day,
                    msg.order_reference,
                    {n: reduction_w(v) for n, v in kw.items()},
                )
                self.prognoses.schedule_metering(
                    peer, day, isp_start(day, max(kw), msg.time_zone) + 2 * ISP, msg.time_zone
                )
            self.orders.put(
                msg.order_reference,
                OrderExecuted(
                    order_reference=msg.order_reference,
                    dr_request_id=dr.request_id,
                    status=record.status,
                    ordered_w={n: reduction_w(v) for n, v in kw.items()},
                ),
            )
        except (ValueError, GridflexError) as exc:
            reason = str(exc).splitlines()[0]
            self.log.orders_rejected.append({"message_id": msg.message_id, "reason": reason})
        await self.node.send(
            peer,
            FlexOrderResponse(
                **self.node.header(peer, msg.conversation_id),
                result="Rejected" if reason else "Accepted",
                rejection_reason=reason,
                flex_order_message_id=msg.message_id,
            ),
        )
        if reason is None and self.resender is not None:  # what we expect there changed by the order
            try:
                await self.resender.resend_changed(peer.domain, msg.congestion_point)
            except UftpSendError as exc:
                self.node.failures.append({"message": "D-Prognosis", "message_id": "", "reason": str(exc)})

    # -- settlement ----------------------------------------------------------------------

    def _dispute(self, s: FlexOrderSettlement) -> str | None:
        """Why we dispute an order's settlement, None when we accept it."""
        order = self.orders.get(s.order_reference or "")
        if order is None:
            return f"OrderReference {s.order_reference!r}: no order of ours"
        if s.net_settlement != s.price - s.penalty:
            return f"NetSettlement {s.net_settlement} is not Price {s.price} - Penalty {s.penalty}"
        ordered = expand((i.start, i.duration, i.ordered_flex_power_w) for i in s.isps)
        off = {
            n: (w, order.ordered_w.get(n))
            for n, w in ordered.items()
            if abs(w - order.ordered_w.get(n, 0)) > 1
        }
        if off:
            return f"OrderedFlexPower (settled, executed) W per ISP: {off}"
        return None

    async def _settlement(self, msg: FlexSettlement, peer: UftpPeer) -> None:
        statuses = []
        for s in msg.flex_order_settlements:
            why = self._dispute(s)
            self.log.settlements.append({"order_reference": s.order_reference, "dispute": why})
            statuses.append(
                FlexOrderSettlementStatus(
                    order_reference=s.order_reference,
                    disposition="Disputed" if why else "Accepted",
                    dispute_reason=why,
                )
            )
        await self.node.send(
            peer,
            FlexSettlementResponse(
                **self.node.header(peer, msg.conversation_id),
                flex_settlement_message_id=msg.message_id,
                flex_order_settlement_statuses=statuses,
            ),
        )
