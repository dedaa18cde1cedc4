"""`POST /market/settlements`: every order of a period settled from the store, on a real CloudController.

One 10 kW order at 10 €/kWh for 17:00-18:00 on site a1, metered at 20 kW on the working
days before and 12 kW during: 8 kW delivered per ISP, price 100 €, 2 kWh short x 10 €/kWh
= 20 € penalty, net 80 €. A late sample of 4 kW at 17:10 brings the first ISP's mean to
(12 + 4) / 2 = 8 kW: 12 kW delivered there (ordered 10: none short), 8 in the others,
(12 + 8 + 8 + 8) kW x 0.25 h = 9 kWh delivered, 3 x 2 kW x 0.25 h = 1.5 kWh short x 10 €/kWh
= 15 € penalty, net 85 €, revision 1. With a second order (fsp-b, 5 kW at 20 €/kWh on b1,
metered 18 kW during: 2 kW delivered, 3 kWh short) the endpoint reads both sites in one
array read: net 80 € and 100 − 60 = 40 €.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud_controller.service import CloudController
from protocols.assets import Points
from protocols.clock import SimClock
from protocols.messages import Sample
from tests.unit.market.test_api import DELIVERY, NOW, _meter, auth, client, clock, isps, offer, request

__all__ = ["client", "clock"]  # the fixtures, shared with test_api.py

DAY = {"day": "2030-01-15"}
METER_P = Points.METER_P_KW


def _settle(http: TestClient, body: dict[str, Any], who: str = "operator") -> dict[str, Any]:
    r = http.post("/market/settlements", json=body, headers=auth(who))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _one_order(http: TestClient, ctl: CloudController) -> None:
    http.post("/market/requests", json=request(isps=isps(10.0)), headers=auth("dso"))
    http.post("/market/offers", json=offer("a-10", "fsp-a", 10), headers=auth("fsp-a"))
    assert len(http.post("/market/clear", headers=auth("operator")).json()["orders"]) == 1
    values = {
        DELIVERY - timedelta(days=day) + timedelta(minutes=15 * k + 5): 20.0
        for day in range(1, 22)
        for k in range(4)
    }
    values |= {DELIVERY + timedelta(minutes=15 * k + 5): 12.0 for k in range(4)}
    _meter(ctl, "a1", values)


def test_a_day_is_settled_once_and_again_only_when_its_data_changed(
    client: tuple[TestClient, CloudController], clock: SimClock
) -> None:
    http, ctl = client
    _one_order(http, ctl)
    early = _settle(http, DAY)
    assert early["counts"] == {
        "settled": 0,
        "new": 0,
        "revised": 0,
        "unchanged": 0,
        "failed": 0,
        "not_due": 1,
    }
    assert early["not_due"] == ["a-10:o1"] and early["totals"]["net_eur"] == 0.0
    clock.advance((DELIVERY + timedelta(hours=1) - NOW).total_seconds())
    first = _settle(http, DAY)
    assert first["period"] == {"start": "2030-01-15T00:00:00+00:00", "end": "2030-01-16T00:00:00+00:00"}
    assert first["counts"] == {
        "settled": 1,
        "new": 1,
        "revised": 0,
        "unchanged": 0,
        "failed": 0,
        "not_due": 0,
    }
    assert first["totals"] == pytest.approx(
        {
            "price_eur": 100.0,
            "penalty_eur": 20.0,
            "net_eur": 80.0,
            "delivered_kwh": 8.0,
            "deficiency_kwh": 2.0,
        }
    )
    (s,) = first["settlements"]
    assert s["revision"] == 0 and s["baseline"] == "nodes_5wd"
    assert [i["delivered_kw"] for i in s["isps"]] == pytest.approx([8.0] * 4)
    clock.advance(60)
    second = _settle(http, DAY)  # the same settlement, not a new one
    assert second["counts"]["unchanged"] == 1, second["counts"]
    assert second["counts"]["new"] == second["counts"]["revised"] == 0
    assert second["settlements"] == first["settlements"]
    assert http.get("/market/settlements").json()[0]["ts"] == s["ts"]
    late = Sample(seq=10_000, asset=METER_P.asset, point=METER_P.point, value=4.0, unit="kW", ts=DELIVERY)
    ctl.store.write_samples("a1", [late.model_copy(update={"ts": DELIVERY + timedelta(minutes=10)})])
    third = _settle(http, DAY)
    assert third["counts"]["revised"] == 1
    (r,) = third["settlements"]
    assert r["revision"] == 1
    assert [i["delivered_kw"] for i in r["isps"]] == pytest.approx([12.0, 8.0, 8.0, 8.0])
    assert (r["delivered_kwh"], r["deficiency_kwh"]) == pytest.approx((9.0, 1.5))
    assert (r["price_eur"], r["penalty_eur"], r["net_eur"]) == pytest.approx((100.0, 15.0, 85.0))
    assert [x["revision"] for x in http.get("/market/settlements").json()] == [1]


def test_an_isp_range_takes_the_orders_starting_in_it(
    client: tuple[TestClient, CloudController], clock: SimClock
) -> None:
    http, ctl = client
    _one_order(http, ctl)
    clock.advance((DELIVERY + timedelta(hours=1) - NOW).total_seconds())
    t = DELIVERY.isoformat()
    inside = _settle(http, {"start": t, "end": (DELIVERY + timedelta(minutes=15)).isoformat()})
    assert inside["counts"]["new"] == 1 and inside["totals"]["net_eur"] == pytest.approx(80.0)
    after = _settle(
        http,
        {
            "start": (DELIVERY + timedelta(minutes=15)).isoformat(),
            "end": (DELIVERY + timedelta(hours=2)).isoformat(),
        },
    )
    assert after["counts"]["settled"] == 0 and after["settlements"] == []
    # the per-order settle finds it done: one settlement of the order in all
    assert http.post("/market/settle", headers=auth("operator")).json() == {"settled": [], "failed": []}


def test_the_period_is_checked_and_only_the_operator_settles(
    client: tuple[TestClient, CloudController],
) -> None:
    http, _ = client
    t = DELIVERY.isoformat()
    for body, reason in (
        ({"day": "2030-01-15", "start": t, "end": t}, "either day or start and end"),
        ({"start": t}, "both start and end"),
        ({"start": (DELIVERY + timedelta(minutes=5)).isoformat(), "end": t}, "15-min ISP grid"),
        ({"start": t, "end": t}, "end must be after start"),
        ({"start": t, "end": (DELIVERY + timedelta(days=94)).isoformat()}, "at most 93 days"),
    ):
        r = http.post("/market/settlements", json=body, headers=auth("operator"))
        assert r.status_code == 422 and reason in r.json()["detail"][0]["reason"], (body, r.text)
    assert http.post("/market/settlements", json=DAY, headers=auth("fsp-a")).status_code == 403
    assert http.post("/market/settlements", json=DAY).status_code == 401


def test_the_endpoints_read_every_due_orders_sites_in_one_array_read(
    client: tuple[TestClient, CloudController], clock: SimClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    http, ctl = client
    http.post("/market/requests", json=request(isps=isps(15.0)), headers=auth("dso"))
    http.post("/market/offers", json=offer("a-10", "fsp-a", 10), headers=auth("fsp-a"))
    http.post("/market/offers", json=offer("b-20", "fsp-b", 20), headers=auth("fsp-b"))
    assert len(http.post("/market/clear", headers=auth("operator")).json()["orders"]) == 2
    for site, during in (("a1", 12.0), ("b1", 18.0)):
        values = {
            DELIVERY - timedelta(days=day) + timedelta(minutes=15 * k + 5): 20.0
            for day in range(1, 22)
            for k in range(4)
        }
        _meter(ctl, site, values | {DELIVERY + timedelta(minutes=15 * k + 5): during for k in range(4)})
    clock.advance((DELIVERY + timedelta(hours=1) - NOW).total_seconds())
    reads: list[list[str]] = []
    read = ctl.store.read_bucket_means

    def counted(sites: Any, *args: Any, **kw: Any) -> Any:
        reads.append(list(sites))
        return read(sites, *args, **kw)

    monkeypatch.setattr(ctl.store, "read_bucket_means", counted)
    done = _settle(http, DAY)
    assert reads == [["a1", "b1"]]  # one read for both orders' sites
    by_order = {s["order_id"]: s for s in done["settlements"]}
    # a1: 8 kW delivered of 10 (2 kWh short at 10 EUR); b1: 2 kW of 5 (3 kWh short at 20 EUR)
    assert by_order["a-10:o1"]["net_eur"] == pytest.approx(100.0 - 20.0)
    assert by_order["b-20:o1"]["net_eur"] == pytest.approx(5 * 20.0 - 3 * 20.0)
