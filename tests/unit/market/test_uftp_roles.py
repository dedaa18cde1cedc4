"""GridFlex's DSO role against GridFlex's AGR role, in-process (each node's client reaches the other's app).

The refusals the library parties never provoke: an offer 1 s after the book's gate
closure is booked nowhere and answered Rejected with the gate-closure reason; an expired
FlexRequest gets no offer; an order
below the offer's MinActivationFactor, or with ISPs changed, is answered Rejected with
its reason and executes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cloud_controller.dr.requests_store import DrRecord
from cloud_controller.dr.service import DrService
from cloud_controller.market.book import Book
from cloud_controller.market.config import FspConfig, MarketConfig
from cloud_controller.market.store import MarketStore
from cloud_controller.market.uftp.agr import UftpAgr
from cloud_controller.market.uftp.config import UftpConfig, UftpPeer
from cloud_controller.market.uftp.dso import SentOrder, UftpDso
from cloud_controller.market.uftp.envelope import SigningKey
from cloud_controller.market.uftp.messages import (
    FlexOffer,
    FlexOfferOption,
    FlexOfferOptionIsp,
    FlexOrder,
    FlexOrderIsp,
    PayloadMessage,
)
from cloud_controller.market.uftp.node import UftpNode
from cloud_controller.market.uftp.router import uftp_router
from cloud_controller.market.uftp.store import UftpStore
from protocols.clock import SimClock
from protocols.market import MarketIsp, MarketRequest
from protocols.messages import DRRequest

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
CONTRACTS = """
contracts:
  - {site: s1, program: p, directions: [reduce], p_max_kw: 10, events_per_day: 3, max_duration: PT4H}
"""


@dataclass
class Pair:
    dso: UftpDso
    agr: UftpAgr
    book: Book
    dr: DrService
    clock: SimClock


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    clock = SimClock(NOW)
    (tmp_path / "c.yaml").write_text(CONTRACTS, encoding="utf-8")
    dr = DrService(tmp_path / "dr.sqlite", clock=clock, contracts_file=tmp_path / "c.yaml", step_minutes=15)
    book = Book(
        MarketConfig(fsps={"agr1": FspConfig()}, congestion_points={"cp1": ["s1"]}, auto_clear=False),
        MarketStore(tmp_path / "m.sqlite"),
    )
    dso_key, agr_key = SigningKey.generate(), SigningKey.generate()
    dso_app, agr_app = FastAPI(), FastAPI()
    to_agr = UftpPeer(
        domain="agr.test",
        role="AGR",
        endpoint="http://agr/uftp/agr",
        public_key=agr_key.public_b64,
        fsp="agr1",
        sites=["s1"],
    )
    to_dso = UftpPeer(
        domain="gridflex.test",
        role="DSO",
        endpoint="http://dso/uftp/dso",
        public_key=dso_key.public_b64,
        program="p",
    )
    dso_node = UftpNode(
        UftpConfig(enabled=True, roles=["DSO"], peers=[to_agr]),
        dso_key,
        clock=clock,
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=agr_app)),
    )
    agr_node = UftpNode(
        UftpConfig(enabled=True, roles=["AGR"], domain="agr.test", peers=[to_dso]),
        agr_key,
        clock=clock,
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=dso_app)),
    )
    dso_app.include_router(uftp_router(dso_node))
    agr_app.include_router(uftp_router(agr_node))

    async def preview(req: DRRequest) -> dict[str, Any]:
        return await asyncio.to_thread(dr.preview, req, {})

    async def execute(req: DRRequest) -> DrRecord:
        return await asyncio.to_thread(dr.submit, req, {})

    dso = UftpDso(dso_node, book)
    agr = UftpAgr(agr_node, preview=preview, execute=execute)
    yield Pair(dso, agr, book, dr, clock)
    await dso_node.aclose()
    await agr_node.aclose()
    book.store.close()
    dr.close()


async def _settle(p: Pair) -> None:
    for _ in range(5):  # a reply's handler may start another: wait until both sides are quiet
        await p.dso.node.idle()
        await p.agr.node.idle()
    assert p.dso.node.stats.handler_errors == 0 and p.agr.node.stats.handler_errors == 0
    assert p.dso.node.stats.refused == {} and p.agr.node.stats.refused == {}


def _request(start: datetime) -> MarketRequest:
    return MarketRequest(
        request_id="r1",
        congestion_point="cp1",
        ts=NOW,
        isps=[MarketIsp(start=start, kw=8.0), MarketIsp(start=start + timedelta(minutes=15), kw=8.0)],
        value_eur_per_kwh=5.0,
    )


async def test_an_offer_1_s_after_gate_closure_is_rejected_with_the_books_reason(pair: Pair) -> None:
    req = _request(NOW + timedelta(hours=3))  # the gate: 2 h before delivery, NOW + 1 h
    pair.book.post_request(req, NOW)
    seen: list[PayloadMessage] = []

    async def late_agr(msg: PayloadMessage, peer: UftpPeer) -> None:  # an AGR that answers late
        seen.append(msg)

    pair.agr.node.handlers["AGR"] = late_agr
    [request_id] = await pair.dso.send_request(req)
    await _settle(pair)
    pair.clock.advance(3601)
    agr = pair.agr.node
    to_dso = agr.config.peers[0]
    offer = FlexOffer(
        **agr.header(to_dso, seen[0].conversation_id),
        period="2026-12-03",
        congestion_point="ea1.2026-12.gridflex.test:cp1",
        expiration_date_time=(NOW + timedelta(days=1)).isoformat(),
        flex_request_message_id=request_id,
        offer_options=[
            FlexOfferOption(
                option_reference="o1",
                price=Decimal("1"),
                isps=[
                    FlexOfferOptionIsp(power_w=-8000, start=49),
                    FlexOfferOptionIsp(power_w=-8000, start=50),
                ],
            )
        ],
    )
    await agr.send(to_dso, offer)
    await _settle(pair)
    assert pair.dso.log.offers_booked == 0
    [rejected] = pair.dso.log.offers_rejected
    assert rejected["reason"] == (
        "options: gate_closure: submitted 1 s after gate closure at 2026-12-03T09:00:00+00:00 "
        "(120 min before delivery at 2026-12-03T11:00:00+00:00)"
    )
    assert [m.TAG for m in seen] == ["FlexRequest", "FlexOfferResponse"]
    assert getattr(seen[1], "result", None) == "Rejected"
    assert pair.book.store.offers() == []


async def test_an_expired_flex_request_gets_no_offer(pair: Pair) -> None:
    req = _request(NOW + timedelta(hours=1))  # its gate (the FlexRequest's expiry) passed an hour ago
    pair.book.post_request(req, NOW)
    await pair.dso.send_request(req)
    await _settle(pair)
    assert len(pair.agr.offers) == 0 and pair.dso.log.offers_booked == 0
    [rejected] = pair.agr.log.requests_rejected
    assert rejected["reason"] == "ExpirationDateTime 2026-12-03T07:00:00+00:00 has passed"
    assert [r.result for r in pair.dso.requests.values()] == ["Rejected"]


async def test_gridflex_to_gridflex_order_runs_and_a_changed_or_too_small_order_is_rejected(
    pair: Pair,
) -> None:
    req = _request(datetime(2026, 12, 3, 17, 0, tzinfo=UTC))
    pair.book.post_request(req, NOW)
    await pair.dso.send_request(req)
    await _settle(pair)
    assert pair.dso.log.offers_booked == 1
    [made] = pair.agr.offers.values()
    assert made.kw == {73: 8.0, 74: 8.0} and made.price_eur == Decimal("1.2000")  # 4 kWh x 0.3

    offer = made.message
    header = pair.dso.node.header(pair.dso.config.peers[0], offer.conversation_id)

    def order(ref: str, factor: str, powers: tuple[int, int]) -> FlexOrder:
        return FlexOrder(
            **(header | {"message_id": f"00000000-0000-4000-8000-00000000000{len(pair.dso.orders)}"}),
            period=offer.period,
            congestion_point=offer.congestion_point,
            flex_offer_message_id=offer.message_id,
            price=Decimal("1.2") * Decimal(factor),
            order_reference=ref,
            option_reference="dr-1",
            activation_factor=Decimal(factor),
            isps=[FlexOrderIsp(power_w=w, start=n) for n, w in zip((73, 74), powers, strict=True)],
        )

    for ref, factor, powers in (("small", "0.30", (-8000, -8000)), ("changed", "1.00", (-8000, -4000))):
        msg = order(ref, factor, powers)
        pair.dso.orders.put(msg.message_id, SentOrder(order_id=ref, peer="agr.test", message=msg))
        await pair.dso.node.send(pair.dso.config.peers[0], msg)
        await _settle(pair)
    reasons = {o.order_id: o.reason for o in pair.dso.orders.values()}
    assert reasons["small"] == "ActivationFactor 0.30 is below MinActivationFactor 0.50"
    assert reasons["changed"] == "ISPs differ from the offer's (UFTP: copied unchanged)"
    assert len(pair.agr.orders) == 0 and pair.dr.requests.all() == []  # nothing executed

    record = pair.book.clear(NOW)
    assert record is not None
    [sent] = await pair.dso.send_orders(record)
    await _settle(pair)
    assert (sent.result, sent.reason) == ("Accepted", None)
    [executed] = pair.agr.orders.values()
    assert executed.ordered_w == {73: -8000, 74: -8000}
    [dr_record] = pair.dr.requests.all()
    assert dr_record.status == "selected" and [iv.p_kw for iv in dr_record.request.intervals] == [8.0, 8.0]


async def test_after_a_restart_both_sides_still_know_their_offer_and_order(
    pair: Pair, tmp_path: Path
) -> None:
    def restart() -> tuple[UftpDso, UftpAgr, UftpStore, UftpStore]:
        d, a = UftpStore(tmp_path / "dso-uftp.sqlite"), UftpStore(tmp_path / "agr-uftp.sqlite")
        return (
            UftpDso(pair.dso.node, pair.book, store=d),
            UftpAgr(pair.agr.node, preview=pair.agr.preview, execute=pair.agr.execute, store=a),
            d,
            a,
        )

    dso, agr, d, a = restart()
    req = _request(datetime(2026, 12, 3, 17, 0, tzinfo=UTC))
    pair.book.post_request(req, NOW)
    await dso.send_request(req)
    await _settle(pair)
    assert len(dso.offers) == 1 and len(agr.offers) == 1
    d.close()
    a.close()

    dso, agr, d, a = restart()  # a new process: only the files remain
    assert [o.peer for o in dso.offers.values()] == ["agr.test"]
    record = pair.book.clear(NOW)
    assert record is not None
    [sent] = await dso.send_orders(record)
    await _settle(pair)
    assert (sent.result, len(agr.orders)) == ("Accepted", 1)
    d.close()
    a.close()

    dso, agr, d, a = restart()
    assert [(o.order_id, o.result) for o in dso.orders.values()] == [(record.orders[0].order_id, "Accepted")]
    assert [o.ordered_w for o in agr.orders.values()] == [{73: -8000, 74: -8000}]
    d.close()
    a.close()


async def test_the_agr_revokes_its_offer_once_the_book_marks_it_revoked_and_a_second_revocation_is_rejected(
    pair: Pair,
) -> None:
    req = _request(datetime(2026, 12, 3, 17, 0, tzinfo=UTC))
    pair.book.post_request(req, NOW)
    await pair.dso.send_request(req)
    await _settle(pair)
    [offer_msg_id] = list(pair.agr.offers)
    to_dso = pair.agr.node.config.peers[0]
    for _ in range(2):
        await pair.agr.revoke(offer_msg_id, to_dso)
        await _settle(pair)
    made = pair.agr.offers[offer_msg_id]
    assert made.revocation_result == "Rejected"  # the second one: the offer is revoked already
    assert (
        made.revocation_reason
        == f"offer_id: offer 'uftp-{offer_msg_id}' is revoked: only an open offer can be revoked"
    )
    [(offer, status, _)] = pair.book.store.offers()
    assert (offer.offer_id, status) == (f"uftp-{offer_msg_id}", "revoked")
    record = pair.book.clear(NOW)
    assert record is not None and record.orders == []  # nothing left to order
