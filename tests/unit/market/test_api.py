"""`/market/...` on a real CloudController (FastAPI's TestClient): roles, validation, clearing, store, settlement.

Hand-solvable numbers: three divisible offers of 10 kW at 10, 20 and 30 €/kWh against 15 kW
needed for one hour clear as 10 kW at 10 + 5 kW at 20 = 200 € (the issue's vector, through
the API). A site metered at 20 kW on the five working days before and at 12 kW during a
10 kW order at 10 €/kWh for one hour delivered 8 kW: price 100 €, 2 kWh short x 10 €/kWh x
penalty factor 1.0 = 20 €, net 80 €.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.live.types import AssetRef, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from protocols.assets import METER, Points
from protocols.clock import SimClock
from protocols.errors import ConfigError
from protocols.messages import Sample

TOKENS = {
    "operator": "operator-0123456789abcdef",
    "dso": "dso-token-0123456789abcdef",
    "fsp-a": "fsp-a-token-0123456789abc",
    "fsp-b": "fsp-b-token-0123456789abc",
}
NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)  # a Tuesday
DELIVERY = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)


#: the sites behind the congestion points, registered
REGISTRY = Registry(
    sites=tuple(SiteRef(s, i, (AssetRef(METER, "meter"),)) for i, s in enumerate(("a1", "a2", "b1", "c1")))
)


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


def _config(tmp: Path) -> CloudConfig:
    for who, token in TOKENS.items():
        (tmp / who).write_text(token, encoding="utf-8")
    return CloudConfig.model_validate(
        {
            "store": {"path": str(tmp / "s.sqlite")},
            "api": {"operator_token_file": str(tmp / "operator")},
            "market": {
                "dso_token_file": str(tmp / "dso"),
                "fsps": {
                    "fsp-a": {"token_file": str(tmp / "fsp-a")},
                    "fsp-b": {"token_file": str(tmp / "fsp-b")},
                },
                "congestion_points": {"feeder-1": ["a1", "a2", "b1"], "feeder-2": ["c1"]},
                "auto_clear": False,
            },
        }
    )


@pytest.fixture
def clock() -> SimClock:
    return SimClock(NOW)


@pytest.fixture
def client(tmp_path: Path, clock: SimClock) -> Iterator[tuple[TestClient, CloudController]]:
    ctl = CloudController(_config(tmp_path), REGISTRY, clock=clock)
    with TestClient(create_app(ctl)) as c:
        yield c, ctl
    ctl.store.close()
    ctl.dr.close()
    ctl.market.close()


def isps(kw: float, start: datetime = DELIVERY, n: int = 4) -> list[dict[str, Any]]:
    return [{"start": (start + timedelta(minutes=15 * k)).isoformat(), "kw": kw} for k in range(n)]


def request(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": "r1",
        "congestion_point": "feeder-1",
        "ts": NOW.isoformat(),
        "isps": isps(15.0),
        "value_eur_per_kwh": 100.0,
    }
    return body | kw


def offer(
    offer_id: str, fsp: str, price: float, *, kw: float = 10.0, min_factor: float = 0.0, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "offer_id": offer_id,
        "fsp": fsp,
        "congestion_point": "feeder-1",
        "ts": NOW.isoformat(),
        "expires": (DELIVERY + timedelta(hours=2)).isoformat(),
        "request_id": "r1",
        "sites": ["a1"] if fsp == "fsp-a" else ["b1"],
        "options": [
            {
                "option_id": "o1",
                "isps": isps(kw),
                "price_eur_per_kwh": price,
                "min_activation_factor": min_factor,
            }
        ],
    }
    return body | extra


def test_roles_decide_who_posts_what(client: tuple[TestClient, CloudController]) -> None:
    http, _ = client
    assert http.post("/market/requests", json=request()).status_code == 401
    assert http.post("/market/requests", json=request(), headers=auth("fsp-a")).status_code == 403
    assert http.post("/market/requests", json=request(), headers=auth("operator")).status_code == 403
    posted = http.post("/market/requests", json=request(), headers=auth("dso"))
    assert posted.status_code == 201 and posted.json()["status"] == "open"
    assert http.post("/market/offers", json=offer("x", "fsp-a", 10), headers=auth("dso")).status_code == 403
    as_other = http.post("/market/offers", json=offer("x", "fsp-a", 10), headers=auth("fsp-b"))
    assert as_other.status_code == 403 and as_other.json()["detail"][0]["field"] == "fsp"
    assert (
        http.post("/market/offers", json=offer("a-1", "fsp-a", 10), headers=auth("fsp-a")).status_code == 201
    )
    assert (
        http.post("/market/offers", json=offer("b-1", "fsp-b", 20), headers=auth("fsp-b")).status_code == 201
    )
    mine = http.get("/market/offers", headers=auth("fsp-a")).json()
    assert [o["offer"]["offer_id"] for o in mine] == ["a-1"]
    assert http.get("/market/offers?fsp=fsp-b", headers=auth("fsp-a")).status_code == 403
    assert http.get("/market/orders?fsp=fsp-b", headers=auth("fsp-a")).status_code == 403
    assert http.get("/market/settlements?fsp=fsp-b", headers=auth("fsp-a")).status_code == 403
    assert len(http.get("/market/offers", headers=auth("dso")).json()) == 2
    assert http.post("/market/clear", headers=auth("dso")).status_code == 403
    assert http.post("/market/clear", headers=auth("fsp-a")).status_code == 403
    assert http.delete("/market/offers/a-1", headers=auth("fsp-b")).status_code == 403


def _fields(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {e["field"]: e["reason"] for e in response.json()["detail"]}


def test_bad_offers_are_refused_naming_field_and_reason(client: tuple[TestClient, CloudController]) -> None:
    http, _ = client
    http.post("/market/requests", json=request(), headers=auth("dso"))
    a = auth("fsp-a")
    off_grid = offer("x", "fsp-a", 10)
    off_grid["options"][0]["isps"][0]["start"] = (DELIVERY + timedelta(minutes=7)).isoformat()
    assert (
        "ISP grid" in _fields(http.post("/market/offers", json=off_grid, headers=a))["options.0.isps.0.start"]
    )
    nan = http.post(
        "/market/offers",
        content=json.dumps(offer("x", "fsp-a", 10)).replace(
            '"price_eur_per_kwh": 10', '"price_eur_per_kwh": NaN'
        ),
        headers=a | {"content-type": "application/json"},
    )
    assert "options.0.price_eur_per_kwh" in _fields(nan)
    factor = _fields(http.post("/market/offers", json=offer("x", "fsp-a", 10, min_factor=1.5), headers=a))
    assert "less than or equal to 1" in factor["options.0.min_activation_factor"]
    backwards = offer("x", "fsp-a", 10, expires=(NOW - timedelta(hours=1)).isoformat())
    assert (
        "expires must be after ts" in _fields(http.post("/market/offers", json=backwards, headers=a))["body"]
    )
    expired = offer(
        "x",
        "fsp-a",
        10,
        ts=(NOW - timedelta(hours=3)).isoformat(),
        expires=(NOW - timedelta(hours=1)).isoformat(),
    )
    assert "expired at" in _fields(http.post("/market/offers", json=expired, headers=a))["expires"]
    outside = _fields(http.post("/market/offers", json=offer("x", "fsp-a", 10, sites=["c1"]), headers=a))
    assert "not behind 'feeder-1': c1" in outside["sites"]
    unknown = _fields(
        http.post("/market/offers", json=offer("x", "fsp-a", 10, congestion_point="nowhere"), headers=a)
    )
    assert "unknown congestion point" in unknown["congestion_point"]
    assert (
        "unknown congestion point"
        in _fields(
            http.post(
                "/market/requests",
                json=request(request_id="r9", congestion_point="nowhere"),
                headers=auth("dso"),
            )
        )["congestion_point"]
    )


def test_an_offer_one_second_after_gate_closure_is_refused_naming_it(
    client: tuple[TestClient, CloudController], clock: SimClock
) -> None:
    http, _ = client
    http.post("/market/requests", json=request(), headers=auth("dso"))
    gate = DELIVERY - timedelta(hours=2)
    clock.advance((gate - NOW).total_seconds())  # exactly at the gate: still in time
    assert (
        http.post("/market/offers", json=offer("on-time", "fsp-a", 10), headers=auth("fsp-a")).status_code
        == 201
    )
    clock.advance(1.0)
    late = _fields(http.post("/market/offers", json=offer("late", "fsp-a", 10), headers=auth("fsp-a")))
    assert late["options"].startswith(
        "gate_closure: submitted 1 s after gate closure at 2030-01-15T15:00:00+00:00"
    )


def test_clearing_buys_cheapest_first_and_orders_per_fsp(client: tuple[TestClient, CloudController]) -> None:
    http, _ = client
    http.post("/market/requests", json=request(), headers=auth("dso"))
    for oid, fsp, price in (("a-10", "fsp-a", 10), ("b-20", "fsp-b", 20), ("a-30", "fsp-a", 30)):
        assert http.post("/market/offers", json=offer(oid, fsp, price), headers=auth(fsp)).status_code == 201
    cleared = http.post("/market/clear", headers=auth("operator"))
    assert cleared.status_code == 200, cleared.text
    body = cleared.json()
    assert body["status"] == "cleared" and body["cost_eur"] == pytest.approx(200.0, abs=1e-6)
    kw = {o["offer_id"]: o["isps"][0]["kw"] for o in body["orders"]}
    assert kw == pytest.approx({"a-10": 10.0, "b-20": 5.0}, abs=1e-6)
    a_orders = http.get("/market/orders", headers=auth("fsp-a")).json()
    assert [o["offer_id"] for o in a_orders] == ["a-10"]
    status = {
        o["offer"]["offer_id"]: o["status"] for o in http.get("/market/offers", headers=auth("dso")).json()
    }
    assert status == {"a-10": "ordered", "b-20": "ordered", "a-30": "not_ordered"}
    assert http.get("/market/requests/r1").json()["status"] == "cleared"
    assert http.post("/market/clear", headers=auth("operator")).status_code == 409  # nothing open any more
    revision = http.post("/market/requests", json=request(revision=1), headers=auth("dso"))
    assert revision.status_code == 409 and "cleared already" in revision.json()["detail"][0]["reason"]


def test_revoked_offer_is_not_ordered_and_orange_reports_the_shortfall(
    client: tuple[TestClient, CloudController],
) -> None:
    http, _ = client
    http.post("/market/requests", json=request(isps=isps(50.0)), headers=auth("dso"))
    http.post("/market/offers", json=offer("a-10", "fsp-a", 10, kw=30.0), headers=auth("fsp-a"))
    http.post("/market/offers", json=offer("b-5", "fsp-b", 5, kw=30.0), headers=auth("fsp-b"))
    revoked = http.delete("/market/offers/b-5", headers=auth("fsp-b"))
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    again = http.delete("/market/offers/b-5", headers=auth("fsp-b"))
    assert again.status_code == 409 and "revoked" in again.json()["detail"][0]["reason"]
    body = http.post("/market/clear", headers=auth("operator")).json()
    assert body["status"] == "partial"
    assert [o["offer_id"] for o in body["orders"]] == ["a-10"]
    assert [s["kw"] for s in body["shortfall"]] == pytest.approx([20.0] * 4)
    assert http.get("/market/requests/r1").json()["status"] == "partial"


def test_market_survives_a_restart(tmp_path: Path, clock: SimClock) -> None:
    ctl = CloudController(_config(tmp_path), REGISTRY, clock=clock)
    with TestClient(create_app(ctl)) as http:
        http.post("/market/requests", json=request(), headers=auth("dso"))
        http.post("/market/offers", json=offer("a-10", "fsp-a", 10), headers=auth("fsp-a"))
        http.post("/market/offers", json=offer("b-20", "fsp-b", 20), headers=auth("fsp-b"))
        before = {
            p: http.get(p, headers=auth("operator")).json() for p in ("/market/requests", "/market/offers")
        }
        http.post("/market/clear", headers=auth("operator"))
        orders = http.get("/market/orders", headers=auth("operator")).json()
    for closable in (ctl.store, ctl.dr, ctl.market):
        closable.close()
    again = CloudController(_config(tmp_path), REGISTRY, clock=clock)
    with TestClient(create_app(again)) as http:
        assert http.get("/market/orders", headers=auth("operator")).json() == orders
        assert len(orders) == 2
        reqs = http.get("/market/requests").json()
        assert [r["request"] for r in reqs] == [r["request"] for r in before["/market/requests"]]
        assert reqs[0]["status"] == "cleared"
        offers = http.get("/market/offers", headers=auth("operator")).json()
        assert [o["offer"] for o in offers] == [o["offer"] for o in before["/market/offers"]]
        assert len(http.get("/market/clearings").json()) == 1
    for closable in (again.store, again.dr, again.market):
        closable.close()


def _meter(ctl: CloudController, site: str, values: dict[datetime, float]) -> None:
    samples = [
        Sample(seq=k, asset=Points.METER_P_KW.asset, point=Points.METER_P_KW.point, value=v, unit="kW", ts=t)
        for k, (t, v) in enumerate(sorted(values.items()))
    ]
    ctl.store.write_samples(site, samples)


def test_settlement_from_the_stored_meter_power(
    client: tuple[TestClient, CloudController], clock: SimClock
) -> None:
    http, ctl = client
    http.post("/market/requests", json=request(isps=isps(10.0)), headers=auth("dso"))
    http.post("/market/offers", json=offer("a-10", "fsp-a", 10), headers=auth("fsp-a"))
    assert len(http.post("/market/clear", headers=auth("operator")).json()["orders"]) == 1
    values: dict[datetime, float] = {}
    for day in range(1, 22):  # 20 kW on the weeks before (weekends included: skipped by the baseline)
        for k in range(4):
            values[DELIVERY - timedelta(days=day) + timedelta(minutes=15 * k + 5)] = 20.0
    for k in range(4):
        values[DELIVERY + timedelta(minutes=15 * k + 5)] = 12.0
    _meter(ctl, "a1", values)
    early = http.post("/market/settle", headers=auth("operator")).json()
    assert early == {"settled": [], "failed": []}  # the order's ISPs are not over yet
    clock.advance((DELIVERY + timedelta(hours=1) - NOW).total_seconds())
    done = http.post("/market/settle", headers=auth("operator")).json()
    assert done["failed"] == []
    (s,) = done["settled"]
    assert [i["delivered_kw"] for i in s["isps"]] == pytest.approx([8.0] * 4)
    assert [i["deficiency_kw"] for i in s["isps"]] == pytest.approx([2.0] * 4)
    assert (s["price_eur"], s["penalty_eur"], s["net_eur"]) == pytest.approx((100.0, 20.0, 80.0))
    assert http.get("/market/settlements", headers=auth("fsp-b")).json() == []
    assert len(http.get("/market/settlements", headers=auth("fsp-a")).json()) == 1


def test_an_order_without_meter_data_stays_unsettled_with_the_reason(
    client: tuple[TestClient, CloudController], clock: SimClock
) -> None:
    http, _ = client
    http.post("/market/requests", json=request(isps=isps(10.0)), headers=auth("dso"))
    http.post("/market/offers", json=offer("a-10", "fsp-a", 10), headers=auth("fsp-a"))
    http.post("/market/clear", headers=auth("operator"))
    clock.advance((DELIVERY + timedelta(hours=1) - NOW).total_seconds())
    done = http.post("/market/settle", headers=auth("operator")).json()
    assert done["settled"] == []
    assert done["failed"] == [
        {"order_id": "a-10:o1", "reason": "no metered power at 2030-01-15T17:00:00+00:00 for site(s) a1"}
    ]


def test_congestion_points_name_only_registered_sites(tmp_path: Path, clock: SimClock) -> None:
    cfg = _config(tmp_path)
    with pytest.raises(ConfigError, match=r"market.congestion_points.feeder-2: not registered: c1"):
        CloudController(cfg, Registry(sites=REGISTRY.sites[:3]), clock=clock)


def test_a_revision_replaces_the_open_request_and_a_second_request_at_its_point_is_refused(
    client: tuple[TestClient, CloudController],
) -> None:
    http, _ = client
    dso = auth("dso")
    assert http.post("/market/requests", json=request(), headers=dso).status_code == 201
    stale = http.post("/market/requests", json=request(), headers=dso)
    assert stale.status_code == 409 and stale.json()["detail"][0]["field"] == "revision"
    other = http.post("/market/requests", json=request(request_id="r2"), headers=dso)
    assert other.status_code == 409 and "revise it instead" in other.json()["detail"][0]["reason"]
    assert (
        http.post("/market/requests", json=request(revision=1, isps=isps(8.0)), headers=dso).status_code
        == 201
    )
    (stored,) = http.get("/market/requests").json()
    assert stored["request"]["revision"] == 1 and stored["request"]["isps"][0]["kw"] == 8.0


def test_two_actors_sharing_a_token_stop_the_start(tmp_path: Path, clock: SimClock) -> None:
    cfg = _config(tmp_path)
    (tmp_path / "fsp-b").write_text(TOKENS["fsp-a"], encoding="utf-8")
    ctl = CloudController(cfg, REGISTRY, clock=clock)
    try:
        with pytest.raises(ConfigError, match="share a token"):
            create_app(ctl)
    finally:
        for closable in (ctl.store, ctl.dr, ctl.market):
            closable.close()
