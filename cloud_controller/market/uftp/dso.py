"""GridFlex as UFTP **DSO**: the book's requests go to the AGR peers, their offers into the book, orders out.

- `send_request(req)`: one FlexRequest per AGR peer and local day (`Period`), each ISP of
  the need `Requested` with MinPower = −need W, MaxPower = 0 (any reduction up to the
  need is welcome: the clearing divides), expiring at the book's gate closure.
- A FlexOffer becomes a book offer of the peer's FSP (`peer.fsp`, its `sites`): per ISP kW
  of reduction, the option's total `Price` turned into EUR/kWh over its energy, its
  MinActivationFactor. The book's checks apply as for any FSP (gate closure, expiry,
  congestion point); a refusal goes back as a Rejected FlexOfferResponse with the reason.
- `send_orders(record)`: each order of a clearing on a UFTP offer becomes a FlexOrder:
  the offer's ISPs unchanged (UFTP requires them copied), `ActivationFactor` the
  clearing's factor (2 decimals), `Price` the order's EUR. The AGR's FlexOrderResponse
  is kept in `orders`.
- `send_settlements(settlements)`: the book's settlements of UFTP orders as one
  FlexSettlement per AGR peer; its answer (accepted / disputed per order) is kept.
- D-Prognosis and Metering from AGRs (`dso_prognosis.py`): answered (D-PrognosisResponse,
  MeteringResponse) and kept; an offer naming an accepted D-Prognosis is settled against it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel, ConfigDict, ValidationError

from cloud_controller.market.book import Book, ClearingRecord, Refused
from cloud_controller.market.uftp.config import UftpPeer
from cloud_controller.market.uftp.dso_prognosis import DsoPrognoses
from cloud_controller.market.uftp.isp import by_period, expand, isp_start, kw_of_reduction, reduction_w
from cloud_controller.market.uftp.messages import (
    ContractSettlement,
    ContractSettlementIsp,
    ContractSettlementPeriod,
    FlexOffer,
    FlexOfferResponse,
    FlexOfferRevocation,
    FlexOfferRevocationResponse,
    FlexOrder,
    FlexOrderIsp,
    FlexOrderResponse,
    FlexOrderSettlement,
    FlexOrderSettlementIsp,
    FlexRequest,
    FlexRequestIsp,
    FlexRequestResponse,
    FlexSettlement,
    FlexSettlementResponse,
    PayloadMessage,
)
from cloud_controller.market.uftp.node import UftpNode, UftpSendError
from cloud_controller.market.uftp.prognosis_messages import (
    DPrognosis,
    Metering,
)
from cloud_controller.market.uftp.store import Ledger, UftpStore
from protocols.market import MarketIsp, MarketOffer, MarketOption, MarketRequest, MarketSettlement

__all__ = ["SentOrder", "SentRequest", "UftpDso", "cp_of", "entity_of"]

ISP_H = 0.25
CENT4 = Decimal("0.0001")


def entity_of(cp: str, prefix: str) -> str:
    """Our congestion point as a UFTP entity address."""
    return f"{prefix}:{cp}"


def cp_of(entity: str, prefix: str) -> str | None:
    """Our congestion point of an entity address; None when it is not one of ours."""
    head, sep, cp = entity.rpartition(":")
    return cp if sep and head == prefix else None


def _utc(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SentRequest(_Record):
    """A FlexRequest we sent: the book request it carries, to whom, and the AGR's receipt."""

    request_id: str
    peer: str
    period: str
    result: str | None = None
    reason: str | None = None


class SentOrder(_Record):
    """A FlexOrder we sent: the book's order, to whom, and the AGR's answer."""

    order_id: str
    peer: str
    message: FlexOrder
    result: str | None = None
    reason: str | None = None


class OfferToUs(_Record):
    """An AGR's FlexOffer we booked (`peer`: its domain), to order from later."""

    message: FlexOffer
    peer: str


@dataclass
class DsoLog:
    """What the DSO side saw, for `GET /uftp/status` and the tests."""

    offers_booked: int = 0
    offers_rejected: list[dict[str, str]] = field(default_factory=list)
    settlement_answers: list[dict[str, str | None]] = field(default_factory=list)


class UftpDso:
    """GridFlex's DSO role over `node`, trading through `book`."""

    def __init__(self, node: UftpNode, book: Book, *, store: UftpStore | None = None) -> None:
        self.node = node
        self.book = book
        self.config = node.config
        #: FlexRequest MessageID -> what it carried (kept in `store` across restarts)
        self.requests = Ledger(SentRequest, "dso_request", store)
        #: FlexOrder MessageID -> the order and the AGR's answer
        self.orders = Ledger(SentOrder, "dso_order", store)
        #: book offer id -> the FlexOffer behind it
        self.offers = Ledger(OfferToUs, "dso_offer", store)
        self.log = DsoLog()
        #: the AGRs' D-Prognoses (the offers' baselines) and Metering
        self.prognoses = DsoPrognoses(self.config.entity_prefix, store)
        node.handlers["DSO"] = self.on_message

    # -- out -----------------------------------------------------------------------------

    async def send_request(self, req: MarketRequest) -> list[str]:
        """The request to every AGR peer, one FlexRequest per local day; their MessageIDs."""
        kw = {i.start: i.kw for i in req.isps}
        gate = self.book.gate_of(req)
        sent: list[str] = []
        for peer in self.node.peers("AGR"):
            for day, numbered in by_period(kw, self.config.time_zone).items():
                msg = FlexRequest(
                    **self.node.header(peer),
                    time_zone=self.config.time_zone,
                    period=day.isoformat(),
                    congestion_point=entity_of(req.congestion_point, self.config.entity_prefix),
                    revision=req.revision,
                    expiration_date_time=gate.isoformat(),
                    isps=[
                        FlexRequestIsp(
                            disposition="Requested", min_power_w=reduction_w(kw[t]), max_power_w=0, start=n
                        )
                        for n, t in numbered
                    ],
                )
                self.requests.put(
                    msg.message_id,
                    SentRequest(request_id=req.request_id, peer=peer.domain, period=msg.period),
                )
                await self.node.send(peer, msg)
                sent.append(msg.message_id)
        return sent

    async def send_orders(self, record: ClearingRecord) -> list[SentOrder]:
        """Each order of `record` on a UFTP offer as a FlexOrder to its AGR."""
        out: list[SentOrder] = []
        for order in record.orders:
            offered = self.offers.get(order.offer_id)
            if offered is None:
                continue  # an MQTT/API FSP's order: the market shell publishes it
            peer = self.config.peer(offered.peer, "AGR")
            if peer is None:
                raise UftpSendError(f"order {order.order_id}: AGR {offered.peer} is no longer configured")
            offer = offered.message
            option = next(o for o in offer.offer_options if o.option_reference == order.option_id)
            factor = Decimal(str(order.factor)).quantize(Decimal("0.01"), ROUND_HALF_UP)
            msg = FlexOrder(
                **self.node.header(peer, offer.conversation_id),
                time_zone=offer.time_zone,
                period=offer.period,
                congestion_point=offer.congestion_point,
                flex_offer_message_id=offer.message_id,
                price=Decimal(str(order.price_eur)).quantize(CENT4, ROUND_HALF_UP),
                currency=offer.currency,
                order_reference=order.order_id,
                option_reference=option.option_reference,
                activation_factor=max(factor, Decimal("0.01")),
                isps=[
                    FlexOrderIsp(power_w=i.power_w, start=i.start, duration=i.duration) for i in option.isps
                ],
            )
            sent = SentOrder(order_id=order.order_id, peer=peer.domain, message=msg)
            self.orders.put(msg.message_id, sent)
            await self.node.send(peer, msg)
            out.append(sent)
        return out

    async def send_settlements(self, settlements: Sequence[MarketSettlement]) -> list[str]:
        """The settlements of UFTP orders, one FlexSettlement per AGR peer; their MessageIDs."""
        by_peer: dict[str, list[FlexOrderSettlement]] = {}
        days: dict[str, list[date]] = {}
        peers: dict[str, UftpPeer] = {}
        for s in settlements:
            order = next((o for o in self.orders.values() if o.order_id == s.order_id), None)
            if order is None:
                continue
            peer = self.config.peer(order.peer, "AGR")
            if peer is None:
                continue
            peers[peer.domain] = peer
            period = date.fromisoformat(order.message.period)
            numbers = {t: n for n, t in by_period([i.start for i in s.isps], self.config.time_zone)[period]}
            by_peer.setdefault(peer.domain, []).append(
                FlexOrderSettlement(
                    order_reference=order.order_id,
                    period=order.message.period,
                    congestion_point=order.message.congestion_point,
                    price=Decimal(str(s.price_eur)).quantize(CENT4, ROUND_HALF_UP),
                    penalty=Decimal(str(s.penalty_eur)).quantize(CENT4, ROUND_HALF_UP),
                    net_settlement=Decimal(str(s.net_eur)).quantize(CENT4, ROUND_HALF_UP),
                    isps=[
                        FlexOrderSettlementIsp(
                            start=numbers[i.start],
                            baseline_power_w=round(i.baseline_kw * 1000),
                            ordered_flex_power_w=reduction_w(i.ordered_kw),
                            actual_power_w=round(i.actual_kw * 1000),
                            delivered_flex_power_w=reduction_w(i.delivered_kw),
                            power_deficiency_w=reduction_w(i.deficiency_kw),
                        )
                        for i in s.isps
                    ],
                )
            )
            days.setdefault(peer.domain, []).append(period)
        ids: list[str] = []
        for domain, items in by_peer.items():
            first, last = min(days[domain]), max(days[domain])
            msg = FlexSettlement(
                **self.node.header(peers[domain]),
                period_start=first.isoformat(),
                period_end=last.isoformat(),
                flex_order_settlements=items,
                # no bilateral contracts here; the library's schema insists on one element
                contract_settlements=[
                    ContractSettlement(
                        periods=[
                            ContractSettlementPeriod(
                                period=first.isoformat(),
                                isps=[ContractSettlementIsp(start=1, reserved_power_w=0)],
                            )
                        ]
                    )
                ],
            )
            await self.node.send(peers[domain], msg)
            ids.append(msg.message_id)
        return ids

    # -- in ------------------------------------------------------------------------------

    async def on_message(self, msg: PayloadMessage, peer: UftpPeer) -> None:
        """An AGR's message (the node checked its signature, sender and type)."""
        if isinstance(msg, FlexOffer):
            await self._offer(msg, peer)
        elif isinstance(msg, DPrognosis | Metering):
            answer = self.prognoses.answer(msg, peer, self.node.header(peer, msg.conversation_id))
            await self.node.send(peer, answer)
        elif isinstance(msg, FlexOfferRevocation):
            await self._revocation(msg, peer)
        elif isinstance(msg, FlexRequestResponse):
            sent = self.requests.get(msg.flex_request_message_id)
            if sent is not None:
                sent.result, sent.reason = msg.result, msg.rejection_reason
                self.requests.put(msg.flex_request_message_id, sent)
        elif isinstance(msg, FlexOrderResponse):
            order = self.orders.get(msg.flex_order_message_id)
            if order is None:
                raise KeyError(f"FlexOrderResponse for unknown FlexOrder {msg.flex_order_message_id}")
            order.result, order.reason = msg.result, msg.rejection_reason
            self.orders.put(msg.flex_order_message_id, order)
        elif isinstance(msg, FlexSettlementResponse):
            self.log.settlement_answers += [
                {"order_id": s.order_reference, "disposition": s.disposition, "reason": s.dispute_reason}
                for s in msg.flex_order_settlement_statuses
            ]

    def _market_offer(self, msg: FlexOffer, peer: UftpPeer) -> MarketOffer:
        """The FlexOffer as a book offer; Refused (field, reason) when it cannot be one."""
        cp = cp_of(msg.congestion_point, self.config.entity_prefix)
        if cp is None:
            raise Refused(422, "CongestionPoint", f"{msg.congestion_point!r} is not one of ours")
        request_id = None
        if msg.flex_request_message_id is not None:
            sent = self.requests.get(msg.flex_request_message_id)
            if sent is None:
                raise Refused(422, "FlexRequestMessageID", f"no FlexRequest {msg.flex_request_message_id}")
            request_id = sent.request_id
        day = date.fromisoformat(msg.period)
        options = []
        for opt in msg.offer_options:
            try:
                w = expand((i.start, i.duration, i.power_w) for i in opt.isps)
                kw = {isp_start(day, n, msg.time_zone): kw_of_reduction(p) for n, p in w.items()}
            except ValueError as exc:
                raise Refused(422, f"OfferOption {opt.option_reference}", str(exc)) from None
            energy_kwh = sum(kw.values()) * ISP_H
            if energy_kwh <= 0:
                raise Refused(422, f"OfferOption {opt.option_reference}", "offers no reduction")
            options.append(
                MarketOption(
                    option_id=opt.option_reference,
                    isps=[MarketIsp(start=t, kw=v) for t, v in sorted(kw.items())],
                    price_eur_per_kwh=float(opt.price) / energy_kwh,
                    min_activation_factor=float(opt.min_activation_factor),
                )
            )
        assert peer.fsp is not None  # config: an AGR peer has its FSP id
        starts = sorted({i.start for o in options for i in o.isps})
        prognosis = self.prognoses.offer_prognosis(msg, peer, starts)
        return MarketOffer(
            baseline="fsp_prognosis" if prognosis is not None else "nodes_5wd",
            prognosis=prognosis,
            offer_id=f"uftp-{msg.message_id}",
            fsp=peer.fsp,
            congestion_point=cp,
            ts=self.node.clock.now(),
            expires=_utc(msg.expiration_date_time),
            options=options,
            request_id=request_id,
            sites=list(peer.sites),
        )

    async def _revocation(self, msg: FlexOfferRevocation, peer: UftpPeer) -> None:
        """The AGR voids its offer: revoked in the book if still open, else Rejected with the book's reason."""
        offer_id = f"uftp-{msg.flex_offer_message_id}"
        offered = self.offers.get(offer_id)
        reason = None
        if offered is None or offered.peer != peer.domain:
            reason = f"FlexOfferMessageID {msg.flex_offer_message_id}: no offer of {peer.domain} booked"
        else:
            try:
                await asyncio.to_thread(self.book.revoke_offer, offer_id, peer.fsp)
            except Refused as exc:
                reason = f"{exc.field}: {exc.reason}"
        await self.node.send(
            peer,
            FlexOfferRevocationResponse(
                **self.node.header(peer, msg.conversation_id),
                result="Rejected" if reason else "Accepted",
                rejection_reason=reason,
                flex_offer_revocation_message_id=msg.message_id,
            ),
        )

    async def _offer(self, msg: FlexOffer, peer: UftpPeer) -> None:
        reason = None
        try:
            offer = self._market_offer(msg, peer)
            await asyncio.to_thread(self.book.post_offer, offer, offer.fsp, self.node.clock.now())
        except Refused as exc:
            reason = f"{exc.field}: {exc.reason}"
        except ValidationError as exc:  # the book's model refuses what the UFTP schema allowed
            err = exc.errors(include_url=False, include_input=False)[0]
            reason = f"{'.'.join(str(p) for p in err['loc']) or 'offer'}: {err['msg']}"
        if reason is None:
            self.offers.put(offer.offer_id, OfferToUs(message=msg, peer=peer.domain))
            self.log.offers_booked += 1
        else:
            self.log.offers_rejected.append({"message_id": msg.message_id, "reason": reason})
        await self.node.send(
            peer,
            FlexOfferResponse(
                **self.node.header(peer, msg.conversation_id),
                result="Rejected" if reason else "Accepted",
                rejection_reason=reason,
                flex_offer_message_id=msg.message_id,
            ),
        )
