"""Baseline accuracy per FSP on days without an order (pure table, then `GET /market/baselines/accuracy`).

Through the API (test_api.py's controller, clock moved to Wed 16 Jan 2030): site a1 is
metered from 17:00 to 18:00 on every day of January at d kW on the d-th. On Tue 15 Jan
(the window of 1 day; fsp-a had no order: its offer was not ordered) a1 drew 15 kW. NODES:
the mean of Mon 14, Fri 11, Thu 10, Wed 9, Tue 8 = 10.4 kW → bias −4.6; high 4 of 5:
(14 + 11 + 10 + 9) / 4 = 11 → −4; fsp-a's prognosis for its offer said 22 → +7.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.market.baselines import accuracy_table
from cloud_controller.service import CloudController
from protocols.clock import SimClock
from tests.unit.market import test_api
from tests.unit.market.test_api import DELIVERY, NOW, _meter, auth, isps, offer, request

client = test_api.client  # the fixtures: a real CloudController behind FastAPI's TestClient
clock = test_api.clock
T = datetime(2030, 1, 8, 17, 0, tzinfo=UTC)


def test_the_table_gives_bias_mae_rmse_and_leaves_event_days_out() -> None:
    rows = [(T, 12.0, 10.0), (T + timedelta(minutes=15), 8.0, 10.0), (T + timedelta(hours=1), 14.0, 10.0)]
    event = (T + timedelta(days=1), 100.0, 0.0)  # an order that day: not compared
    got = accuracy_table({"nodes_5wd": [*rows, event], "fsp_prognosis": [event]}, {event[0].date()})
    nodes = got["nodes_5wd"]
    assert nodes["n"] == 3
    assert nodes["bias_kw"] == pytest.approx(4 / 3)  # (2 - 2 + 4) / 3
    assert nodes["mae_kw"] == pytest.approx(8 / 3)
    assert nodes["rmse_kw"] == pytest.approx((24 / 3) ** 0.5)
    assert got["fsp_prognosis"] == {"n": 0, "reason": "nothing to compare on a day without an order"}


def test_accuracy_per_fsp_and_method_on_a_day_without_an_order(
    client: tuple[TestClient, CloudController], clock: SimClock
) -> None:
    http, ctl = client
    http.post("/market/requests", json=request(isps=isps(10.0)), headers=auth("dso"))
    prognosis = [{"start": i["start"], "kw": 22.0} for i in isps(22.0)]
    http.post("/market/offers", json=offer("a-10", "fsp-a", 10, prognosis=prognosis), headers=auth("fsp-a"))
    http.post("/market/offers", json=offer("b-5", "fsp-b", 5), headers=auth("fsp-b"))
    orders = http.post("/market/clear", headers=auth("operator")).json()["orders"]
    assert [o["offer_id"] for o in orders] == ["b-5"]  # fsp-a: no order, so 15 Jan is no event day for it
    a1 = {
        datetime(2030, 1, d, 17, 5, tzinfo=UTC) + timedelta(minutes=15 * k): float(d)
        for d in range(1, 16)
        for k in range(4)
    }
    _meter(ctl, "a1", a1)
    clock.advance((datetime(2030, 1, 16, 9, 0, tzinfo=UTC) - NOW).total_seconds())
    body = http.get("/market/baselines/accuracy?days=1").json()
    assert (body["from"], body["to"]) == ("2030-01-15", "2030-01-15")
    a = body["fsps"]["fsp-a"]
    assert a["sites"] == ["a1"] and a["event_days"] == []
    m = a["methods"]
    assert (m["nodes_5wd"]["n"], m["nodes_5wd"]["bias_kw"], m["nodes_5wd"]["mae_kw"]) == (
        4,
        pytest.approx(-4.6),
        pytest.approx(4.6),
    )
    assert (m["high_4_of_5"]["n"], m["high_4_of_5"]["bias_kw"]) == (4, pytest.approx(-4.0))
    assert (m["fsp_prognosis"]["n"], m["fsp_prognosis"]["bias_kw"]) == (4, pytest.approx(7.0))
    assert m["our_forecast"]["n"] == 0  # no forecast was frozen (no grid view)
    b = body["fsps"]["fsp-b"]  # its order was on 15 Jan: an event day, nothing compared
    assert b["event_days"] == [DELIVERY.date().isoformat()]
    assert all(v["n"] == 0 for v in b["methods"].values())
    own = http.get("/market/baselines/accuracy?days=1", headers=auth("fsp-a")).json()
    assert list(own["fsps"]) == ["fsp-a"]
    assert http.get("/market/baselines/accuracy?fsp=fsp-b", headers=auth("fsp-a")).status_code == 403
    assert http.get("/market/baselines/accuracy?days=0").status_code == 422
    # a wider window: Mon 14 Jan is compared too (mean of Fri 11 .. Mon 7 = (11+10+9+8+7)/5 = 9 vs 14)
    two = http.get("/market/baselines/accuracy?days=2").json()["fsps"]["fsp-a"]["methods"]["nodes_5wd"]
    assert (two["n"], two["bias_kw"]) == (8, pytest.approx((-4.6 * 4 - 5.0 * 4) / 8))


def test_configured_holidays_are_no_baseline_days(tmp_path: Path) -> None:
    cfg = test_api._config(tmp_path)
    holiday = date(2030, 1, 11)  # Fri 11 Jan, a holiday by `market.holidays`
    cfg = cfg.model_copy(update={"market": cfg.market.model_copy(update={"holidays": [holiday]})})
    sim = SimClock(NOW)
    ctl = CloudController(cfg, test_api.REGISTRY, clock=sim)
    try:
        with TestClient(create_app(ctl)) as http:
            http.post("/market/requests", json=request(isps=isps(10.0)), headers=auth("dso"))
            http.post("/market/offers", json=offer("a-10", "fsp-a", 10), headers=auth("fsp-a"))
            _meter(ctl, "a1", {datetime(2030, 1, d, 17, 5, tzinfo=UTC): float(d) for d in range(1, 16)})
            sim.advance((datetime(2030, 1, 16, 9, 0, tzinfo=UTC) - NOW).total_seconds())
            m = http.get("/market/baselines/accuracy?days=1").json()["fsps"]["fsp-a"]["methods"]
            # Tue 15 Jan: Mon 14, Thu 10, Wed 9, Tue 8, Mon 7 → 9.6 kW against 15 (Fri 11 skipped)
            assert (m["nodes_5wd"]["n"], m["nodes_5wd"]["bias_kw"]) == (1, pytest.approx(9.6 - 15.0))
    finally:
        for closable in (ctl.store, ctl.dr, ctl.market):
            closable.close()
