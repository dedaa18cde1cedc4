"""GridFlex as UFTP DSO against shapeshifter-uftp's own AGR service in another process, over loopback.

GridFlex's book holds the DSO's request at `station-7` (20 kW at 17:00, 10 kW at 17:15 UTC,
worth 5 EUR/kWh). Its FlexRequest goes to the library's ShapeshifterAgrService, which
answers with a FlexOffer of 1.5 × the need (30 and 15 kW) for 15 EUR in total, minimum
activation factor 0.5. GridFlex books it (1.3333 EUR/kWh over 11.25 kWh), clears (the
need is 2/3 of the option: factor 0.67, 10 EUR pay-as-bid), and sends the FlexOrder;
the library checks the ISPs are the offered ones and answers Accepted. The order settled
by the book's rule (18 of 20 kW, then 10 of 10) goes out as a FlexSettlement in watts, and
the library accepts it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI

from cloud_controller.market.book import Book, settlement_of
from cloud_controller.market.config import FspConfig, MarketConfig
from cloud_controller.market.store import MarketStore
from cloud_controller.market.uftp.config import UftpConfig, UftpPeer
from cloud_controller.market.uftp.dso import UftpDso
from cloud_controller.market.uftp.envelope import SigningKey
from cloud_controller.market.uftp.node import UftpNode
from cloud_controller.market.uftp.router import uftp_router
from protocols.clock import SimClock
from protocols.market import MarketIsp, MarketRequest
from tests.integration.uftp.party import Party, serving, uftp_python, wait_for

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
T1, T2 = datetime(2026, 12, 3, 17, 0, tzinfo=UTC), datetime(2026, 12, 3, 17, 15, tzinfo=UTC)


async def test_gridflex_dso_requests_books_the_library_agrs_offer_orders_and_settles_it(
    tmp_path: Path,
) -> None:
    uftp_python()
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    market = MarketConfig(
        fsps={"agr1": FspConfig()}, congestion_points={"station-7": ["s1", "s2"]}, auto_clear=False
    )
    book = Book(market, MarketStore(tmp_path / "market.sqlite"))
    app = FastAPI()
    async with serving(app) as url:
        party = Party(
            {
                "mode": "agr",
                "domain": "agr.test",
                "private_key": theirs.private_b64,
                "peer": {
                    "domain": "gridflex.test",
                    "public_key": ours.public_b64,
                    "endpoint": f"{url}/uftp/dso",
                },
                "price_eur": 15.0,
                "min_activation_factor": 0.5,
                "offer_fraction": 1.5,
            }
        )
        cfg = UftpConfig(
            enabled=True,
            roles=["DSO"],
            peers=[
                UftpPeer(
                    domain="agr.test",
                    role="AGR",
                    endpoint=party.endpoint,
                    public_key=theirs.public_b64,
                    fsp="agr1",
                    sites=["s1"],
                )
            ],
        )
        node = UftpNode(cfg, ours, clock=SimClock(NOW))
        dso = UftpDso(node, book)
        app.include_router(uftp_router(node))
        await party.start()
        try:
            req = MarketRequest(
                request_id="req-1",
                congestion_point="station-7",
                ts=NOW,
                isps=[MarketIsp(start=T1, kw=20.0), MarketIsp(start=T2, kw=10.0)],
                value_eur_per_kwh=5.0,
            )
            book.post_request(req, NOW)
            [request_msg_id] = await dso.send_request(req)
            await wait_for(lambda: dso.log.offers_booked == 1 or dso.log.offers_rejected, what="the offer")
            assert dso.log.offers_rejected == []
            assert dso.requests[request_msg_id].result == "Accepted"

            [(offer, status, _)] = book.store.offers()
            assert status == "open"
            assert (offer.fsp, offer.congestion_point, offer.request_id, offer.sites) == (
                "agr1",
                "station-7",
                "req-1",
                ["s1"],
            )
            [opt] = offer.options
            assert [(i.start, i.kw) for i in opt.isps] == [(T1, 30.0), (T2, 15.0)]
            assert opt.price_eur_per_kwh == pytest.approx(15.0 / 11.25)
            assert opt.min_activation_factor == 0.5

            record = book.clear(NOW)
            assert record is not None
            [order] = record.orders
            assert order.factor == pytest.approx(2 / 3, abs=1e-4)
            assert [(i.start, round(i.kw, 3)) for i in order.isps] == [(T1, 20.0), (T2, 10.0)]
            assert order.price_eur == pytest.approx(10.0, abs=1e-3)

            [sent] = await dso.send_orders(record)
            await wait_for(lambda: sent.result is not None, what="the FlexOrderResponse")
            assert (sent.result, sent.reason) == ("Accepted", None)

            # settled by the book's own rule: 18 of 20 kW delivered in the first ISP, 10 of 10 in the second
            settled = settlement_of(order, {T1: 50.0, T2: 40.0}, {T1: 32.0, T2: 30.0}, NOW, "nodes_5wd", 1.0)
            assert settled.price_eur == pytest.approx(10.0, abs=1e-3)
            assert settled.deficiency_kwh == pytest.approx(0.5)
            await dso.send_settlements([settled])
            await wait_for(lambda: dso.log.settlement_answers, what="the FlexSettlementResponse")
            assert dso.log.settlement_answers == [
                {"order_id": order.order_id, "disposition": "Accepted", "reason": None}
            ]
            await node.idle()
            got = await party.finish()
        finally:
            party.kill()
            await node.aclose()
            book.store.close()

    assert got["errors"] == []
    by_type = {m["type"]: m for m in got["received"]}  # the library's threads: any order
    assert len(got["received"]) == 4
    assert sorted(by_type) == ["FlexOfferResponse", "FlexOrder", "FlexRequest", "FlexSettlement"]
    flex_request, offer_response, flex_order = (
        by_type[k] for k in ("FlexRequest", "FlexOfferResponse", "FlexOrder")
    )
    # ISPs 73 and 74 of 3 Dec in Amsterdam are 17:00 and 17:15 UTC
    assert [(i["start"], i["min_power"], i["max_power"], i["disposition"]) for i in flex_request["isps"]] == [
        (73, -20000, 0, "Requested"),
        (74, -10000, 0, "Requested"),
    ]
    assert flex_request["congestion_point"] == "ea1.2026-12.gridflex.test:station-7"
    assert flex_request["expiration_date_time"] == "2026-12-03T15:00:00+00:00"  # the gate: 2 h before
    assert offer_response["result"] == "Accepted"
    assert [(i["power"], i["start"]) for i in flex_order["isps"]] == [(-30000, 73), (-15000, 74)]
    assert (flex_order["activation_factor"], flex_order["price"], flex_order["currency"]) == (
        "0.67",
        "10.0000",
        "EUR",
    )
    assert node.stats.refused == {} and node.stats.handler_errors == 0
    [fs] = by_type["FlexSettlement"]["flex_order_settlements"]
    assert (fs["order_reference"], fs["congestion_point"], fs["period"]) == (
        order.order_id,
        "ea1.2026-12.gridflex.test:station-7",
        "2026-12-03",
    )
    assert [
        (
            i["start"],
            i["baseline_power"],
            i["ordered_flex_power"],
            i["actual_power"],
            i["delivered_flex_power"],
            i["power_deficiency"],
        )
        for i in fs["isps"]
    ] == [(73, 50000, -20000, 32000, -18000, -2000), (74, 40000, -10000, 30000, -10000, 0)]
    # price 10 EUR; penalty (our policy, factor 1): 0.5 kWh short x 1.3333 EUR/kWh = 0.6667; net 9.3333
    assert (fs["price"], fs["penalty"], fs["net_settlement"]) == ("10.0000", "0.6667", "9.3333")
