"""Disputes through the API (test_api.py's controller): open → accepted | rejected, with the numbers.

Hand numbers: a 10 kW order at 10 EUR/kWh for one hour at a1, metered at 20 kW on the
working days before and 12 kW during it, settles on NODES at 8 kW delivered: price 100,
penalty 20, net 80. The FSP's prognosis (given with its offer) said 22 kW: accepted with
that baseline, delivered 10 kW, nothing short → net 100, revision 1.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud_controller.service import CloudController
from protocols.clock import SimClock
from tests.unit.market import test_api
from tests.unit.market.test_api import DELIVERY, NOW, _fields, _meter, auth, isps, offer, request

client = test_api.client  # the fixtures: a real CloudController behind FastAPI's TestClient
clock = test_api.clock
END = DELIVERY + timedelta(hours=1)


def _settled(http: TestClient, ctl: CloudController, clock: SimClock) -> dict[str, Any]:
    """One order, settled on NODES to net 80; the FSP's prognosis of 22 kW is on file."""
    http.post("/market/requests", json=request(isps=isps(10.0)), headers=auth("dso"))
    prognosis = [{"start": i["start"], "kw": 22.0} for i in isps(22.0)]
    body = offer("a-10", "fsp-a", 10, prognosis=prognosis)
    assert http.post("/market/offers", json=body, headers=auth("fsp-a")).status_code == 201
    http.post("/market/clear", headers=auth("operator"))
    values: dict[datetime, float] = {}
    for day in range(1, 22):
        for k in range(4):
            values[DELIVERY - timedelta(days=day) + timedelta(minutes=15 * k + 5)] = 20.0
    for k in range(4):
        values[DELIVERY + timedelta(minutes=15 * k + 5)] = 12.0
    _meter(ctl, "a1", values)
    clock.advance((END - NOW).total_seconds())
    (s,) = http.post("/market/settle", headers=auth("operator")).json()["settled"]
    assert (s["baseline"], s["net_eur"], s["revision"]) == ("nodes_5wd", pytest.approx(80.0), 0)
    return dict(s)


def _dispute(http: TestClient, who: str = "fsp-a", order: str = "a-10:o1") -> Any:
    return http.post(
        f"/market/settlements/{order}/dispute", json={"reason": "our prognosis says 22 kW"}, headers=auth(who)
    )


def test_an_accepted_dispute_settles_again_against_the_stated_baseline(
    client: tuple[TestClient, CloudController], clock: SimClock
) -> None:
    http, ctl = client
    _settled(http, ctl, clock)
    assert _dispute(http, "fsp-b").status_code == 403  # not its settlement
    assert _dispute(http, order="nope").status_code == 404
    opened = _dispute(http)
    assert opened.status_code == 201 and opened.json()["status"] == "open"
    again = _dispute(http)
    assert again.status_code == 409 and "disputed already (open)" in again.json()["detail"][0]["reason"]
    resolve = "/market/disputes/a-10:o1/resolve"
    assert (
        http.post(resolve, json={"decision": "accept", "reason": "ok"}, headers=auth("fsp-a")).status_code
        == 403
    )
    no_base = _fields(
        http.post(resolve, json={"decision": "accept", "reason": "ok"}, headers=auth("operator"))
    )
    assert "states the baseline" in no_base["body"]
    unfrozen = http.post(
        resolve,
        json={"decision": "accept", "reason": "x", "baseline": "our_forecast"},
        headers=auth("operator"),
    )
    assert unfrozen.status_code == 422
    assert _fields(unfrozen)["baseline"] == "baseline our_forecast: none was frozen for offer 'a-10'"
    assert http.get("/market/disputes?status=open").json()[0]["order_id"] == "a-10:o1"  # still open
    done = http.post(
        resolve,
        json={"decision": "accept", "reason": "the prognosis was on file", "baseline": "fsp_prognosis"},
        headers=auth("operator"),
    ).json()
    s = done["settlement"]
    assert (s["baseline"], s["revision"]) == ("fsp_prognosis", 1)
    assert [i["delivered_kw"] for i in s["isps"]] == pytest.approx([10.0] * 4)
    assert (s["price_eur"], s["penalty_eur"], s["net_eur"]) == pytest.approx((100.0, 0.0, 100.0))
    d = done["dispute"]
    assert (d["status"], d["baseline"], d["net_before_eur"], d["net_after_eur"]) == (
        "accepted",
        "fsp_prognosis",
        pytest.approx(80.0),
        pytest.approx(100.0),
    )
    twice = http.post(resolve, json={"decision": "reject", "reason": "no"}, headers=auth("operator"))
    assert twice.status_code == 409 and "accepted already" in twice.json()["detail"][0]["reason"]
    (listed,) = http.get("/market/settlements", headers=auth("fsp-a")).json()
    assert (listed["dispute"], listed["revision"], listed["net_eur"]) == ("accepted", 1, pytest.approx(100.0))
    assert http.get("/market/disputes", headers=auth("fsp-b")).json() == []
    page = http.get("/ui/settlement", headers=auth("operator"))
    assert (
        page.status_code == 200 and 'class="status">accepted<' in page.text and "fsp_prognosis" in page.text
    )


def test_a_dispute_after_the_window_is_refused_naming_its_end(
    client: tuple[TestClient, CloudController], clock: SimClock
) -> None:
    http, ctl = client
    _settled(http, ctl, clock)
    clock.advance(5 * 86400.0 + 1.0)  # the default window: 5 days after the settlement
    late = _fields(_dispute(http))
    assert late["order_id"].startswith("the dispute window closed at 2030-01-20T18:00:00+00:00")
    assert http.get("/market/disputes").json() == []


def test_a_rejected_dispute_keeps_the_settlement(
    client: tuple[TestClient, CloudController], clock: SimClock
) -> None:
    http, ctl = client
    _settled(http, ctl, clock)
    clock.advance(5 * 86400.0)  # the window's last second: still in time
    assert _dispute(http).status_code == 201
    done = http.post(
        "/market/disputes/a-10:o1/resolve",
        json={"decision": "reject", "reason": "NODES was agreed"},
        headers=auth("operator"),
    ).json()
    assert done["settlement"] is None
    assert (done["dispute"]["status"], done["dispute"]["resolution"]) == ("rejected", "NODES was agreed")
    (listed,) = http.get("/market/settlements").json()
    assert (listed["dispute"], listed["revision"], listed["net_eur"]) == ("rejected", 0, pytest.approx(80.0))
