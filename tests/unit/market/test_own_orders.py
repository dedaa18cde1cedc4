"""Orders to GridFlex's own aggregator carried out inside a real CloudController (FastAPI's TestClient).

fsp-a is our own aggregator (`own_program: market`), fsp-b another FSP. 15 kW needed for
one hour; fsp-a offers 10 kW at 10 €/kWh, fsp-b 10 kW at 20 → orders of 10 kW (fsp-a) and
5 kW (fsp-b). The controller turns fsp-a's order, and only it, into the DR request
`mkt-a-10:o1` of programme `market`: 10 kW in each of the 4 ISPs on site a1, its contract
the order id. Once: a second pass, a second controller on the same files and a restart
submit nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.market.own_orders import dr_request_id
from cloud_controller.service import CloudController
from protocols.clock import SimClock
from tests.unit.market.test_api import DELIVERY, NOW, REGISTRY, TOKENS, auth, offer, request

CONTRACTS = """
contracts:
  - {site: a1, program: market, directions: [reduce], p_max_kw: 20, events_per_day: 4,
     max_duration: PT4H, price_eur_per_kwh: 0.10}
"""


def _config(tmp: Path) -> CloudConfig:
    for who, token in TOKENS.items():
        (tmp / who).write_text(token, encoding="utf-8")
    (tmp / "contracts.yaml").write_text(CONTRACTS, encoding="utf-8")
    return CloudConfig.model_validate(
        {
            "store": {"path": str(tmp / "s.sqlite")},
            "api": {"operator_token_file": str(tmp / "operator")},
            "dr": {"contracts": str(tmp / "contracts.yaml")},
            "market": {
                "dso_token_file": str(tmp / "dso"),
                "fsps": {
                    "fsp-a": {"token_file": str(tmp / "fsp-a"), "own_program": "market"},
                    "fsp-b": {"token_file": str(tmp / "fsp-b")},
                },
                "congestion_points": {"feeder-1": ["a1", "a2", "b1"], "feeder-2": ["c1"]},
                "auto_clear": False,
            },
        }
    )


def _close(ctl: CloudController) -> None:
    for closable in (ctl.store, ctl.dr, ctl.market):
        closable.close()


@pytest.fixture
def clock() -> SimClock:
    return SimClock(NOW)


@pytest.fixture
def client(tmp_path: Path, clock: SimClock) -> Iterator[tuple[TestClient, CloudController]]:
    ctl = CloudController(_config(tmp_path), REGISTRY, clock=clock)
    with TestClient(create_app(ctl)) as c:
        yield c, ctl
    _close(ctl)


def _clear(http: TestClient, *offers: dict[str, Any]) -> dict[str, Any]:
    assert http.post("/market/requests", json=request(), headers=auth("dso")).status_code == 201
    for body in offers:
        assert http.post("/market/offers", json=body, headers=auth(body["fsp"])).status_code == 201
    cleared = http.post("/market/clear", headers=auth("operator"))
    assert cleared.status_code == 200, cleared.text
    return dict(cleared.json())


def _market_dr(http: TestClient) -> list[dict[str, Any]]:
    """The DR requests made for market orders: id and status."""
    rows = http.get("/dr/requests", headers=auth("operator")).json()
    return [
        {"request_id": r["request"]["request_id"], "status": r["status"]}
        for r in rows
        if r["request"]["request_id"].startswith("mkt-")
    ]


def test_an_own_order_becomes_one_dr_request_linked_to_it(client: tuple[TestClient, CloudController]) -> None:
    http, ctl = client
    body = _clear(http, offer("a-10", "fsp-a", 10), offer("b-20", "fsp-b", 20))
    assert {o["order_id"]: o["isps"][0]["kw"] for o in body["orders"]} == pytest.approx(
        {"a-10:o1": 10.0, "b-20:o1": 5.0}
    )
    (dr,) = _market_dr(http)  # fsp-b's order is fsp-b's to dispatch: no DR request for it
    assert dr["request_id"] == "mkt-a-10:o1" and dr["status"] == "selected"
    req = ctl.dr.requests.get("mkt-a-10:o1")
    assert req is not None
    r = req.request
    assert (r.program, r.direction, r.sites, r.contract) == ("market", "reduce", ["a1"], "a-10:o1")
    assert (r.start, r.end, r.p_kw) == (DELIVERY, DELIVERY + timedelta(hours=1), 10.0)
    assert [i.p_kw for i in r.intervals] == [10.0] * 4
    executions = {o["order_id"]: o["execution"] for o in http.get("/market/orders").json()}
    assert executions == {
        "a-10:o1": {
            "status": "executed",
            "dr_request_id": "mkt-a-10:o1",
            "dr_status": "selected",
            "reason": None,
        },
        "b-20:o1": None,
    }
    status = http.get("/market/status").json()
    assert (status["stats"]["own_executed"], status["stats"]["own_failed"]) == (1, 0)
    assert status["own_fsps"] == {"fsp-a": "market"}
    # seen again (another clearing pass, the API's or the loop's): nothing more is submitted
    assert http.portal.call(ctl.market.execute_own_orders) == []  # type: ignore[union-attr]
    assert len(_market_dr(http)) == 1 and ctl.market.own.executed == 1


def test_an_own_order_cleared_before_a_restart_is_executed_once_after_it(
    tmp_path: Path, clock: SimClock
) -> None:
    ctl = CloudController(_config(tmp_path), REGISTRY, clock=clock)
    ctl.market.own.path = None  # the controller stops between the clearing and the execution
    with TestClient(create_app(ctl)) as http:
        _clear(http, offer("a-10", "fsp-a", 10))
        assert _market_dr(http) == []
        assert http.get("/market/orders").json()[0]["execution"]["status"] == "pending"
    _close(ctl)
    for executed in (["a-10:o1"], []):  # restarted twice: the second start finds the DR request recorded
        again = CloudController(_config(tmp_path), REGISTRY, clock=clock)
        with TestClient(create_app(again)) as http:
            # as run() does at start
            assert http.portal.call(again.market.execute_own_orders) == executed  # type: ignore[union-attr]
            (dr,) = _market_dr(http)
            assert dr["request_id"] == "mkt-a-10:o1" and dr["status"] == "selected"
            assert http.get("/market/orders").json()[0]["execution"]["status"] == "executed"
        _close(again)


def test_a_second_controller_on_the_same_store_does_not_execute_it_again(
    tmp_path: Path, clock: SimClock
) -> None:
    first = CloudController(_config(tmp_path), REGISTRY, clock=clock)
    second = CloudController(_config(tmp_path), REGISTRY, clock=clock)
    with TestClient(create_app(first)) as http, TestClient(create_app(second)) as http2:
        _clear(http, offer("a-10", "fsp-a", 10))
        assert http2.portal.call(second.market.execute_own_orders) == []  # type: ignore[union-attr]
        assert len(_market_dr(http2)) == 1 and second.market.own.executed == 0
        assert http2.get("/market/orders").json()[0]["execution"]["dr_status"] == "selected"
    _close(first)
    _close(second)


def test_a_failed_execution_is_an_event_a_counter_and_the_orders_state(
    client: tuple[TestClient, CloudController],
) -> None:
    http, ctl = client
    _clear(http, offer("a-10", "fsp-a", 10, sites=["a2"]))  # a2 has no contract under `market`
    (execution,) = [o["execution"] for o in http.get("/market/orders").json()]
    assert execution["status"] == "failed" and execution["dr_status"] == "refused"
    assert execution["reason"] == "DR refused: no 'market' contract covers a2"
    assert http.get("/market/status").json()["stats"]["own_failed"] == 1
    (event,) = ctl.store.read_events(kind="market_order_failed")
    assert event.severity == "error" and event.details["order_id"] == "a-10:o1"
    assert event.message == "market order a-10:o1 not executed: DR refused: no 'market' contract covers a2"
    # not retried: the DR store holds the refusal
    assert http.portal.call(ctl.market.execute_own_orders) == []  # type: ignore[union-attr]
    assert ctl.market.own.failed == 1


def test_the_dr_request_id_stays_within_64_characters_and_apart() -> None:
    a, b = "x" * 60 + ":o1", "x" * 60 + ":o2"
    assert dr_request_id("a-10:o1") == "mkt-a-10:o1"
    assert len(dr_request_id(a)) == 64 and dr_request_id(a) != dr_request_id(b)


def test_an_own_order_whose_delivery_ended_before_a_restart_fails_with_the_reason(
    tmp_path: Path, clock: SimClock
) -> None:
    ctl = CloudController(_config(tmp_path), REGISTRY, clock=clock)
    ctl.market.own.path = None  # down from the clearing until after the delivery
    with TestClient(create_app(ctl)) as http:
        _clear(http, offer("a-10", "fsp-a", 10))
    _close(ctl)
    clock.advance((DELIVERY + timedelta(hours=1) - NOW).total_seconds())
    again = CloudController(_config(tmp_path), REGISTRY, clock=clock)
    with TestClient(create_app(again)) as http:
        assert http.portal.call(again.market.execute_own_orders) == []  # type: ignore[union-attr]
        (execution,) = [o["execution"] for o in http.get("/market/orders").json()]
        assert execution["status"] == "failed" and execution["dr_status"] is None
        assert (
            execution["reason"] == "delivery ended at 2030-01-15T18:00:00+00:00 before the order was executed"
        )
        assert _market_dr(http) == [] and again.market.own.failed == 1
    _close(again)


def test_an_own_order_on_an_offer_without_sites_is_not_sent_to_the_whole_programme(
    client: tuple[TestClient, CloudController],
) -> None:
    http, ctl = client
    _clear(http, offer("a-10", "fsp-a", 10, sites=[]))
    (execution,) = [o["execution"] for o in http.get("/market/orders").json()]
    assert (
        execution["status"] == "failed" and execution["reason"] == "offer 'a-10' names no sites to dispatch"
    )
    assert _market_dr(http) == [] and ctl.market.own.failed == 1


def test_with_a_dispatch_an_own_order_goes_to_it_once_and_no_dr_request_is_made(
    client: tuple[TestClient, CloudController],
) -> None:
    http, ctl = client
    handed: list[tuple[str, list[str]]] = []

    async def dispatch(order: Any, sites: Any) -> str:
        handed.append((order.order_id, list(sites)))
        return "2 device limits"

    ctl.market.own.dispatch = dispatch
    _clear(http, offer("a-10", "fsp-a", 10), offer("b-20", "fsp-b", 20))
    http.post("/market/clear", headers=auth("operator"))  # a second pass hands nothing more
    assert handed == [("a-10:o1", ["a1"])]  # fsp-b's order is not ours
    assert _market_dr(http) == []
    executions = {o["order_id"]: o["execution"] for o in http.get("/market/orders").json()}
    assert executions["a-10:o1"] == {
        "status": "executed",
        "dr_request_id": None,
        "dr_status": None,
        "reason": None,
    }
    assert ctl.market.own.dispatched == {"a-10:o1": "2 device limits"}
    assert http.get("/market/status").json()["stats"]["own_executed"] == 1
