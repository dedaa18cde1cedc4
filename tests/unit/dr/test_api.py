"""`/dr/requests` on a real CloudController (FastAPI's TestClient): check → selection → DR store.

Hand-solvable cases: three flat loads priced 0.10/0.20/0.30 €/kWh under `min_cost` take
the cheapest first (60 kW = 20 + 30 + 10); a battery of 10 kWh at 80 % SOC (from the
site's snapshot), 5 % floor and η = 0.95 gives 10 × 0.75 × 0.95 = 7.125 kWh in one hour,
so 10 kW for one hour is `partial` with 2.875 kW unmet.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig, load_cloud_config
from cloud_controller.dr.contracts_file import load_contracts
from cloud_controller.live.types import SiteSnapshot
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from protocols.clock import SimClock
from protocols.errors import ConfigError

OPERATOR = "operator-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {OPERATOR}"}
NOW = datetime(2030, 1, 15, 16, 0, tzinfo=UTC)
CONTRACTS = """
contracts:
  - {site: a, program: peak, directions: [reduce], p_max_kw: 20, events_per_day: 1,
     max_duration: PT2H, min_notice: PT30M, price_eur_per_kwh: 0.10}
  - {site: b, program: peak, directions: [reduce], p_max_kw: 30, events_per_day: 1,
     max_duration: PT2H, min_notice: PT30M, price_eur_per_kwh: 0.20}
  - {site: c, program: peak, directions: [reduce, increase], p_max_kw: 50, events_per_day: 1,
     max_duration: PT2H, min_notice: PT30M, price_eur_per_kwh: 0.30}
  - site: s
    program: storage
    directions: [reduce]
    p_max_kw: 20
    events_per_day: 3
    max_duration: PT4H
    soc_floor_pct: 5
    battery: {asset: battery, capacity_kwh: 10}
"""


def _controller(tmp: Path) -> CloudController:
    (tmp / "contracts.yaml").write_text(CONTRACTS, encoding="utf-8")
    (tmp / "op").write_text(OPERATOR, encoding="utf-8")
    cfg = CloudConfig.model_validate(
        {
            "store": {"path": str(tmp / "s.sqlite")},
            "api": {"operator_token_file": str(tmp / "op")},
            "dr": {"contracts": str(tmp / "contracts.yaml")},
        }
    )
    return CloudController(cfg, Registry(sites=()), clock=SimClock(NOW))


def _request(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "program": "peak",
        "ts": "2030-01-15T16:00:00Z",
        "request_id": "r1",
        "start": "2030-01-15T17:00:00Z",
        "end": "2030-01-15T18:00:00Z",
        "direction": "reduce",
        "p_kw": 60.0,
        "objective": "min_cost",
    }
    base.update(kw)
    return base


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, CloudController]]:
    ctl = _controller(tmp_path)
    with TestClient(create_app(ctl), headers=AUTH) as c:
        yield c, ctl
    ctl.store.close()
    ctl.dr.close()


def _kw(selection: dict[str, Any]) -> dict[str, list[float]]:
    return {s["site"]: [round(v, 3) for v in s["kw"]] for s in selection["sources"]}


def test_refused_request_names_its_rules(client: tuple[TestClient, CloudController]) -> None:
    http, _ = client
    short = http.post("/dr/requests", json=_request(start="2030-01-15T16:10:00Z", end="2030-01-15T17:00:00Z"))
    assert short.status_code == 422
    refusals = short.json()["detail"]["refusals"]
    assert {(r["site"], r["rule"]) for r in refusals} == {("a", "notice"), ("b", "notice"), ("c", "notice")}
    assert "notice" in short.json()["detail"]["reason"]
    other = http.post("/dr/requests", json=_request(program="nobody"))
    assert other.status_code == 422 and other.json()["detail"]["refusals"][0]["rule"] == "program"
    listed = {r["request"]["program"]: r for r in http.get("/dr/requests").json()}
    assert listed["nobody"]["status"] == "refused"  # kept, with its refusals (same id: the later one)
    assert [r["rule"] for r in listed["nobody"]["refusals"]] == ["program"]
    fixed = http.post("/dr/requests", json=_request())  # a refused id may be posted again
    assert fixed.status_code == 201 and fixed.json()["status"] == "selected"
    assert http.get("/dr/requests/r1/selection").json()["status"] == "full"


def test_selected_cheapest_first_then_persisted_and_cancelled(
    client: tuple[TestClient, CloudController], tmp_path: Path
) -> None:
    http, _ = client
    posted = http.post("/dr/requests", json=_request())
    assert posted.status_code == 201, posted.text
    body = posted.json()
    assert body["status"] == "selected" and body["unmet_kw"] == [0.0] * 4
    assert body["published"] is False  # no broker in this test: said, not hidden
    assert _kw(body["selection"]) == {"a": [-20.0] * 4, "b": [-30.0] * 4, "c": [-10.0] * 4}
    assert body["selection"]["objective_value"] == pytest.approx((20 * 0.1 + 30 * 0.2 + 10 * 0.3) * 1.0)
    # every site used up its one event that day: a second request is refused by `count`
    again = http.post("/dr/requests", json=_request(request_id="r2"))
    assert again.status_code == 422
    assert {r["rule"] for r in again.json()["detail"]["refusals"]} == {"count"}
    assert http.post("/dr/requests", json=_request()).status_code == 409
    cancelled = http.post("/dr/requests/r1/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert http.post("/dr/requests/nope/cancel").status_code == 404
    # a new controller on the same files lists the request, its state and its selection
    ctl2 = _controller(tmp_path)
    try:
        with TestClient(create_app(ctl2), headers=AUTH) as http2:
            listed = http2.get("/dr/requests").json()
            assert [(r["request"]["request_id"], r["status"]) for r in listed] == [
                ("r1", "cancelled"),
                ("r2", "refused"),
            ]
            assert http2.get("/dr/requests/r1").json()["status"] == "cancelled"
            assert _kw(http2.get("/dr/requests/r1/selection").json())["b"] == [-30.0] * 4
            assert http2.get("/dr/requests/r2").json()["refusals"][0]["rule"] == "count"
            assert http2.get("/dr/requests/r3").status_code == 404
    finally:
        ctl2.store.close()
        ctl2.dr.close()


def test_battery_from_snapshot_soc_is_partial_with_unmet_kw(
    client: tuple[TestClient, CloudController],
) -> None:
    http, ctl = client
    ctl.snapshots["s"] = SiteSnapshot(site="s", mode="online", points={"battery/soc_pct": 80.0})
    req = _request(program="storage", objective="flexibility", p_kw=10.0, intervals=[{"p_kw": 10.0}])
    posted = http.post("/dr/requests", json=req)
    assert posted.status_code == 201, posted.text
    body = posted.json()
    assert body["status"] == "partial"
    assert body["unmet_kw"] == [pytest.approx(10.0 - 10 * 0.75 * 0.95, abs=1e-4)]
    assert _kw(body["selection"]) == {"s": [pytest.approx(-7.125, abs=1e-3)]}
    assert http.get("/dr/requests/r1").json()["status"] == "partial"


def test_contracts_file_errors_name_file_key_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text(CONTRACTS.replace("p_max_kw: 30", "p_max_kw: -30"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_contracts(bad)
    assert err.value.file == str(bad) and err.value.key == "contracts[1].p_max_kw"
    bad.write_text(CONTRACTS.replace("capacity_kwh: 10", "capacity_kwh: 0"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_contracts(bad)
    assert err.value.key == "contracts[3].battery.capacity_kwh" and "greater than 0" in err.value.reason


def test_cloud_yaml_dr_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "cloud.yaml").write_text("dr: {contracts: c.yaml, step_minutes: 30}\n", encoding="utf-8")
    cfg = load_cloud_config(tmp_path / "cloud.yaml")
    assert cfg.dr.contracts == tmp_path / "c.yaml" and cfg.dr.step_minutes == 30 and cfg.dr.store_path is None
