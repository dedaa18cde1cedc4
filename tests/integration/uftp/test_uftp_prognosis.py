"""GridFlex as UFTP DSO takes shapeshifter-uftp's AGR's D-Prognosis and Metering and settles on them.

The library's ShapeshifterAgrService (another process, loopback) answers GridFlex's
FlexRequest (20 kW at 17:00, 10 kW at 17:15 UTC: ISPs 73, 74 of 3 Dec in Amsterdam) with
a D-Prognosis of its portfolio for every ISP of the day (40 kW, but 50 kW in ISP 73) and
a FlexOffer naming it. GridFlex answers D-PrognosisResponse Accepted and books the offer
with the FSP's prognosis as its baseline (50 and 40 kW). After the accepted FlexOrder the
AGR sends a Metering message of its meter (32 and 30 kW in ISPs 73, 74), answered
MeteringResponse Accepted and kept as site s1's actual. Settled on those two: delivered
18 of 20 kW, then 10 of 10 — the same numbers as the NODES case in test_uftp_dso_role.py,
but from the AGR's own messages.

Back in the default run: its one CI HTTP 400 was the library's parser racing on two of
our messages at once (docs/market.md); our node now sends one at a time per peer.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI

from cloud_controller.market.book import Book, settlement_of
from cloud_controller.market.config import FspConfig, MarketConfig
from cloud_controller.market.store import MarketStore
from cloud_controller.market.uftp.config import UftpConfig, UftpPeer
from cloud_controller.market.uftp.dso import UftpDso
from cloud_controller.market.uftp.dso_prognosis import isps_of_day
from cloud_controller.market.uftp.envelope import SigningKey
from cloud_controller.market.uftp.node import UftpNode
from cloud_controller.market.uftp.router import uftp_router
from protocols.clock import SimClock
from protocols.market import MarketIsp, MarketRequest
from tests.integration.uftp.party import Party, serving, uftp_python, wait_for

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
T1, T2 = datetime(2026, 12, 3, 17, 0, tzinfo=UTC), datetime(2026, 12, 3, 17, 15, tzinfo=UTC)
EAN = "E871690900000000017"


async def test_the_library_agrs_d_prognosis_is_the_baseline_and_its_metering_the_actual(
    tmp_path: Path,
) -> None:
    uftp_python()
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    market = MarketConfig(
        fsps={"agr1": FspConfig()}, congestion_points={"station-7": ["s1"]}, auto_clear=False
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
                # every ISP of the day: 40 kW, 50 kW in ISP 73
                "prognosis": [[1, 72, 40000], [73, 1, 50000], [74, 23, 40000]],
                "metering": {"ean": EAN, "kw": {"73": 32.0, "74": 30.0}},
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
                    eans={EAN: "s1"},
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
            await dso.send_request(req)
            await wait_for(lambda: dso.log.offers_booked == 1 or dso.log.offers_rejected, what="the offer")
            assert dso.log.offers_rejected == []
            assert len(dso.prognoses.prognoses) == 1

            [(offer, _, _)] = book.store.offers()
            assert offer.baseline == "fsp_prognosis"
            assert offer.prognosis is not None
            assert [(p.start, p.kw) for p in offer.prognosis] == [(T1, 50.0), (T2, 40.0)]

            record = book.clear(NOW)
            assert record is not None
            [order] = record.orders
            assert order.baseline == "fsp_prognosis"
            [sent] = await dso.send_orders(record)
            await wait_for(lambda: sent.result is not None, what="the FlexOrderResponse")
            assert sent.result == "Accepted"
            await wait_for(lambda: len(dso.prognoses.metering) == 1, what="the Metering")
            actual = {t: dso.prognoses.actual_kw("s1", t) for t in (T1, T2)}
            assert actual == {T1: 32.0, T2: 30.0}

            baseline = {p.start: p.kw for p in offer.prognosis}
            settled = settlement_of(
                order, baseline, {t: v for t, v in actual.items() if v is not None}, NOW, "fsp_prognosis", 1.0
            )
            assert [(i.delivered_kw, round(i.deficiency_kw, 3)) for i in settled.isps] == [
                (18.0, 2.0),
                (10.0, 0.0),
            ]
            assert settled.net_eur == pytest.approx(10.0 - 0.5 * 15.0 / 11.25, abs=1e-3)  # 9.3333
            await node.idle()
            got = await party.finish()
        finally:
            party.kill()
            await node.aclose()
            book.store.close()

    # on a failure: the library's reason (its log) and the XML we signed (node.failures)
    assert got["errors"] == [], (got["library_log"], list(node.failures))
    by_type = {m["type"]: m for m in got["received"]}
    assert by_type["DPrognosisResponse"]["result"] == "Accepted"
    assert by_type["MeteringResponse"]["result"] == "Accepted"
    assert node.stats.refused == {} and node.stats.handler_errors == 0, list(node.failures)


def test_a_day_has_92_96_or_100_isps_across_dst() -> None:
    tz = "Europe/Amsterdam"
    assert (isps_of_day(date(2026, 3, 29), tz), isps_of_day(date(2026, 12, 3), tz)) == (92, 96)
    assert isps_of_day(date(2026, 10, 25), tz) == 100
