"""The market and settlement pages in a real headless Chromium against a real controller and Mosquitto.

The book holds one request (15 kW for an hour at feeder-1), three offers of 10 kW at 10, 20
and 30 €/kWh and their clearing (10 + 5 kW: 15.00 kW cleared per ISP); site b0000 was metered
at 20 kW on the weeks before and 12 kW during the order, so its 10 kW order settles as
8 kW delivered, 2 kWh short: 100 € − 20 € = 80.00 € net. Both pages load without a console
error and without a request to another host, and show those numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from cloud_controller.market.config import MarketConfig
from cloud_controller.market.metering import store_metering
from cloud_controller.service import CloudController
from gridflex.ops.broker import MosquittoBroker
from protocols.assets import Points
from protocols.clock import RealClock
from protocols.market import MarketIsp, MarketOffer, MarketOption, MarketRequest
from protocols.messages import Sample
from tests.integration.web import harness

pytestmark = pytest.mark.integration


def _fill_market(ctl: CloudController) -> None:
    now = datetime.now(UTC)
    delivery = datetime.fromtimestamp(now.timestamp() - now.timestamp() % 900, UTC) + timedelta(hours=3)
    isps = [delivery + timedelta(minutes=15 * k) for k in range(4)]
    book = ctl.market.book
    book.post_request(
        MarketRequest(
            request_id="r1",
            congestion_point="feeder-1",
            ts=now,
            isps=[MarketIsp(start=t, kw=15.0) for t in isps],
            value_eur_per_kwh=100.0,
        ),
        now,
    )
    for oid, fsp, price in (("a-10", "fsp-a", 10.0), ("b-20", "fsp-b", 20.0), ("a-30", "fsp-a", 30.0)):
        option = MarketOption(
            option_id="o1",
            isps=[MarketIsp(start=t, kw=10.0) for t in isps],
            price_eur_per_kwh=price,
            min_activation_factor=0.0,
        )
        offer = MarketOffer(
            offer_id=oid,
            fsp=fsp,
            congestion_point="feeder-1",
            ts=now,
            expires=delivery + timedelta(hours=2),
            options=[option],
            sites=["b0000"] if fsp == "fsp-a" else ["b0001"],
        )
        book.post_offer(offer, fsp, now)
    assert book.clear(now) is not None
    values = {t - timedelta(days=d) + timedelta(minutes=5): 20.0 for t in isps for d in range(1, 22)}
    values |= {t + timedelta(minutes=5): 12.0 for t in isps}
    for site in ("b0000", "b0001"):
        ctl.store.write_samples(
            site,
            [
                Sample(
                    seq=k,
                    asset=Points.METER_P_KW.asset,
                    point=Points.METER_P_KW.point,
                    value=v,
                    unit="kW",
                    ts=t,
                )
                for k, (t, v) in enumerate(sorted(values.items()))
            ],
        )
    done, failed = book.settle_due(delivery + timedelta(hours=1), store_metering(ctl.store))
    assert failed == [] and len(done) == 2


def test_market_and_settlement_pages(mosquitto: MosquittoBroker, tmp_path: Path, browser: Browser) -> None:
    cfg = harness.config(mosquitto.port, tmp_path)
    market = MarketConfig(
        fsps={"fsp-a": {}, "fsp-b": {}}, congestion_points={"feeder-1": ["b0000", "b0001"]}, auto_clear=False
    )
    ctl = CloudController(
        cfg.model_copy(update={"market": market}),
        harness.registry(2),
        clock=RealClock(),
        planner=harness.StandInPlanner(),
    )
    running = harness.RunningController(ctl).start()
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        _fill_market(ctl)
        page = ctx.new_page()
        requests: list[str] = []
        errors: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        page.goto(running.url + "/ui/market")
        page.wait_for_selector("#market-requests")
        assert page.locator("nav a.active").inner_text() == "Market"
        assert page.locator("#market-requests tr[data-request=r1] .status").inner_text() == "cleared"
        status = {
            oid: page.locator(f"#market-offers tr[data-offer={oid}] .status").inner_text()
            for oid in ("a-10", "b-20", "a-30")
        }
        assert status == {"a-10": "ordered", "b-20": "ordered", "a-30": "not_ordered"}
        assert page.locator("#market-cleared .kw").all_inner_texts() == ["15.00"] * 4
        assert page.locator("#market-orders tbody tr").count() == 2

        page.goto(running.url + "/ui/settlement")
        page.wait_for_selector("#settlement-fsps")
        assert page.locator("#settlement-fsps tr[data-fsp=fsp-a] .net").inner_text() == "80.00"
        assert page.locator("#settlement-isps tbody tr").count() == 8  # 2 orders x 4 ISPs
        base = running.url
        assert [u for u in requests if not u.startswith(base + "/")] == []
        assert errors == []
    finally:
        ctx.close()
        running.stop()
