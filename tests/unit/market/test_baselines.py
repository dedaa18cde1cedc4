"""The FSP's prognosis and our forecast as baselines: given, checked, frozen, used, stated.

Hand numbers. Through the API (test_api.py's controller): a 10 kW order at 10 EUR/kWh for
one hour at a1, whose FSP gave a prognosis of 30 kW per ISP, metered at 22 kW: delivered
8 kW, 2 kWh short → price 100, penalty 20, net 80, baseline `fsp_prognosis`, and no
metered history needed. On the grid case (grid_case.py): b1's median forecast is 500 kW;
its 40 kW offer at 2 EUR/kWh for one hour, settled against our forecast with b1 metered
at 470 kW, delivered 30 kW per ISP, 10 kWh short → price 80, penalty 20, net 60.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from cloud_controller.market.baselines import forecast_baseline_kw, prognosis_gap
from cloud_controller.market.book import Book
from cloud_controller.market.config import MarketConfig
from cloud_controller.market.metering import metered
from cloud_controller.market.settling import freeze_baselines
from cloud_controller.market.store import MarketStore
from cloud_controller.service import CloudController
from protocols.clock import SimClock
from protocols.market import MarketIsp, MarketOffer, MarketOption, MarketRequest
from tests.unit.market import grid_case, test_api
from tests.unit.market.test_api import (
    DELIVERY,
    NOW,
    _fields,
    _meter,
    auth,
    isps,
    offer,
    request,
)

client = test_api.client  # the fixtures: a real CloudController behind FastAPI's TestClient
clock = test_api.clock
T0 = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)


def test_a_prognosis_must_cover_exactly_the_offers_isps() -> None:
    isp = [T0 + timedelta(minutes=15 * k) for k in range(3)]
    assert prognosis_gap(isp, isp) is None
    assert (
        prognosis_gap(isp[:2], isp)
        == "no prognosis for the offer's ISP 2030-01-15T17:30:00+00:00 (1 missing)"
    )
    extra = [*isp, T0 + timedelta(hours=1)]
    assert prognosis_gap(extra, isp) == "ISP 2030-01-15T18:00:00+00:00 is not an ISP of the offer"


def test_our_forecast_baseline_is_the_isp_mean_of_the_sites_summed_forecast() -> None:
    starts = [T0 + timedelta(minutes=5 * k) for k in range(6)]  # 5-min intervals: 3 per ISP
    p50 = np.asarray([[10.0, 1.0], [20.0, 2.0], [30.0, 3.0], [40.0, 4.0], [50.0, 5.0], [60.0, 6.0]])
    cols = {"a": 0, "b": 1}
    second = T0 + timedelta(minutes=15)
    got = forecast_baseline_kw(starts, p50, cols, ["a", "b"], [T0, second])
    assert got == pytest.approx({T0: 22.0, second: 55.0})  # (11 + 22 + 33) / 3, (44 + 55 + 66) / 3
    assert forecast_baseline_kw(starts, p50, cols, ["b"], [second]) == pytest.approx({second: 5.0})
    with pytest.raises(ValueError, match="no site c"):
        forecast_baseline_kw(starts, p50, cols, ["a", "c"], [T0])
    with pytest.raises(ValueError, match="does not cover ISP 2030-01-15T17:30:00"):
        forecast_baseline_kw(starts, p50, cols, ["a"], [T0 + timedelta(minutes=30)])


def _prognosis(kw: float, n: int = 4, **extra: Any) -> dict[str, Any]:
    body = {
        "offer_id": "a-10",
        "fsp": "fsp-a",
        "ts": NOW.isoformat(),
        "isps": [{"start": i["start"], "kw": kw} for i in isps(kw, n=n)],
    }
    return body | extra


def test_the_fsps_prognosis_settles_its_order_and_the_settlement_says_so(
    client: tuple[TestClient, CloudController], clock: SimClock
) -> None:
    http, ctl = client
    http.post("/market/requests", json=request(isps=isps(10.0)), headers=auth("dso"))
    body = offer("a-10", "fsp-a", 10, baseline="fsp_prognosis")
    assert http.post("/market/offers", json=body, headers=auth("fsp-a")).status_code == 201
    # checked: every ISP of the offer, the FSP's own offer only
    short = _fields(http.post("/market/prognoses", json=_prognosis(30.0, n=3), headers=auth("fsp-a")))
    assert short["isps"] == "no prognosis for the offer's ISP 2030-01-15T17:45:00+00:00 (1 missing)"
    other = http.post("/market/prognoses", json=_prognosis(30.0, fsp="fsp-b"), headers=auth("fsp-b"))
    assert other.status_code == 403
    bad = http.post("/market/prognoses", json=_prognosis(float("nan")) | {"isps": []}, headers=auth("fsp-a"))
    assert bad.status_code == 422
    assert http.post("/market/prognoses", json=_prognosis(25.0), headers=auth("fsp-a")).status_code == 201
    assert http.post("/market/prognoses", json=_prognosis(30.0), headers=auth("fsp-a")).status_code == 201
    assert [i["kw"] for i in http.get("/market/prognoses", headers=auth("fsp-a")).json()[0]["isps"]] == [
        30.0
    ] * 4
    (order,) = http.post("/market/clear", headers=auth("operator")).json()["orders"]
    assert order["baseline"] == "fsp_prognosis"
    # ordered: the prognosis is closed now (no change after seeing the order)
    after = http.post("/market/prognoses", json=_prognosis(99.0), headers=auth("fsp-a"))
    assert after.status_code == 409 and "ordered" in after.json()["detail"][0]["reason"]
    _meter(ctl, "a1", {DELIVERY + timedelta(minutes=15 * k + 5): 22.0 for k in range(4)})  # no history at all
    clock.advance((DELIVERY + timedelta(hours=1) - NOW).total_seconds())
    done = http.post("/market/settle", headers=auth("operator")).json()
    assert done["failed"] == []
    (s,) = done["settled"]
    assert s["baseline"] == "fsp_prognosis"
    assert [i["baseline_kw"] for i in s["isps"]] == [30.0] * 4
    assert [i["delivered_kw"] for i in s["isps"]] == pytest.approx([8.0] * 4)
    assert (s["price_eur"], s["penalty_eur"], s["net_eur"]) == pytest.approx((100.0, 20.0, 80.0))


def test_a_prognosis_after_gate_closure_is_refused_and_its_offer_is_not_ordered(
    client: tuple[TestClient, CloudController], clock: SimClock
) -> None:
    http, _ = client
    http.post("/market/requests", json=request(isps=isps(10.0)), headers=auth("dso"))
    http.post(
        "/market/offers", json=offer("a-10", "fsp-a", 10, baseline="fsp_prognosis"), headers=auth("fsp-a")
    )
    http.post("/market/offers", json=offer("b-20", "fsp-b", 20), headers=auth("fsp-b"))
    clock.advance((DELIVERY - timedelta(hours=2) - NOW).total_seconds() + 1.0)
    late = _fields(http.post("/market/prognoses", json=_prognosis(30.0), headers=auth("fsp-a")))
    assert late["ts"].startswith(
        "gate_closure: submitted 1 s after gate closure at 2030-01-15T15:00:00+00:00"
    )
    body = http.post("/market/clear", headers=auth("operator")).json()
    assert [o["offer_id"] for o in body["orders"]] == ["b-20"]  # the dearer one, settled on NODES
    assert body["orders"][0]["baseline"] == "nodes_5wd"
    assert {
        "offer_id": "a-10",
        "reason": "baseline fsp_prognosis: FSP 'fsp-a' gave no prognosis by gate closure",
    } in body["refused"]
    status = {o["offer"]["offer_id"]: o["status"] for o in http.get("/market/offers").json()}
    assert status["a-10"] == "refused"


def test_a_prognosis_with_the_offer_is_checked_like_one_on_its_own(
    client: tuple[TestClient, CloudController],
) -> None:
    http, _ = client
    http.post("/market/requests", json=request(isps=isps(10.0)), headers=auth("dso"))
    partial = [{"start": i["start"], "kw": 30.0} for i in isps(30.0, n=2)]
    bad = _fields(
        http.post("/market/offers", json=offer("a-10", "fsp-a", 10, prognosis=partial), headers=auth("fsp-a"))
    )
    assert bad["prognosis"].startswith("no prognosis for the offer's ISP 2030-01-15T17:30:00+00:00")
    full = [{"start": i["start"], "kw": 30.0} for i in isps(30.0)]
    ok = http.post("/market/offers", json=offer("a-10", "fsp-a", 10, prognosis=full), headers=auth("fsp-a"))
    assert ok.status_code == 201
    assert http.get("/market/prognoses", headers=auth("fsp-a")).json()[0]["offer_id"] == "a-10"
    assert http.get("/market/prognoses", headers=auth("fsp-b")).json() == []


CONFIG = MarketConfig(fsps={"fsp-a": {}, "fsp-b": {}}, congestion_points={"station": ["a1", "b1"]})
GATE = datetime(2030, 1, 15, 15, 0, tzinfo=UTC)


def _b1_offer(baseline: str) -> MarketOffer:
    return MarketOffer(
        offer_id="b1-40",
        fsp="fsp-b",
        congestion_point="station",
        ts=grid_case.NOW,
        sites=["b1"],
        expires=grid_case.DELIVERY + timedelta(hours=2),
        baseline=baseline,  # type: ignore[arg-type]
        options=[
            MarketOption(
                option_id="o",
                isps=[MarketIsp(start=t, kw=40.0) for t in grid_case.STARTS],
                price_eur_per_kwh=2.0,
            )
        ],
    )


def _book_with_offer(tmp_path: Path, baseline: str) -> tuple[Book, MarketStore]:
    store = MarketStore(tmp_path / "m.sqlite")
    book = Book(CONFIG, store)
    isps_ = [MarketIsp(start=t, kw=40.0) for t in grid_case.STARTS]
    book.post_request(
        MarketRequest(
            request_id="r", congestion_point="station", ts=grid_case.NOW, isps=isps_, value_eur_per_kwh=100.0
        ),
        grid_case.NOW,
    )
    book.post_offer(_b1_offer(baseline), "fsp-b", grid_case.NOW)
    return book, store


def _metering(values: dict[str, dict[datetime, float]]) -> Any:
    def meter(sites: Sequence[str], isps_: Sequence[datetime], kind: str) -> Any:
        return metered({s: values[s] for s in sites}, isps_, kind)

    return meter


def test_our_forecast_is_frozen_at_clearing_and_settles_the_order(tmp_path: Path) -> None:
    book, store = _book_with_offer(tmp_path, "our_forecast")
    try:
        record = book.clear(GATE, view=grid_case.view())
        assert record is not None and [o.baseline for o in record.orders] == ["our_forecast"]
        assert record.orders[0].isps[0].kw == pytest.approx(40.0)
        frozen = store.frozen_forecast("b1-40")
        assert frozen is not None and frozen[0] == GATE.timestamp()
        assert list(frozen[1].values()) == [500.0] * 4  # b1's median, per ISP
        # a later forecast (b1 at 600 kW) does not move it: frozen once
        later = replace(grid_case.view(), p50_kw=np.tile([-80.0, 600.0], (grid_case.T, 1)))
        assert freeze_baselines(store, [_b1_offer("our_forecast")], later, GATE + timedelta(hours=1)) == {}
        assert list(store.frozen_forecast("b1-40")[1].values()) == [500.0] * 4  # type: ignore[index]
        meter = _metering({"b1": {t: 470.0 for t in grid_case.STARTS}})
        done, failed = book.settle_due(grid_case.DELIVERY + timedelta(hours=1), meter)
        assert failed == []
        (s,) = done
        assert s.baseline == "our_forecast" and [i.baseline_kw for i in s.isps] == [500.0] * 4
        assert [i.delivered_kw for i in s.isps] == pytest.approx([30.0] * 4)
        assert (s.price_eur, s.penalty_eur, s.net_eur) == pytest.approx((80.0, 20.0, 60.0))
    finally:
        store.close()


def test_an_offer_on_our_forecast_without_a_forecast_is_refused_at_clearing(tmp_path: Path) -> None:
    book, store = _book_with_offer(tmp_path, "our_forecast")
    try:
        record = book.clear(GATE, view=None)
        assert record is not None and record.orders == []
        assert record.summary["refused"] == [
            {"offer_id": "b1-40", "reason": "baseline our_forecast: no forecast yet"}
        ]
        assert store.offer("b1-40")[1] == "refused"  # type: ignore[index]
    finally:
        store.close()
