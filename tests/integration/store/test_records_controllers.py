"""Two CloudControllers (own working folders, no shared file) on one PostgreSQL, each behind its own API.

What one controller records through `/dr/requests` and `/market/...`, the other sees and
refuses to record again: the same DR request id is a 409 on the second controller, an
offer posted on B is cleared by A, and a second clearing on B finds nothing open.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.live.types import AssetRef, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from gridflex.ops.postgres import LoopbackPostgres
from protocols.assets import METER
from protocols.clock import SimClock
from tests.integration.store.conftest import RECORD_TABLES, TABLES
from tests.integration.store.records_cases import DELIVERY, NOW, isps

TOKENS = {"operator": "operator-0123456789abcdef", "dso": "dso-token-0123456789abcdef"}
FSP_TOKEN = "fsp-a-token-0123456789abc"
CONTRACTS = """
contracts:
  - {site: a1, program: peak, directions: [reduce], p_max_kw: 20, events_per_day: 2,
     max_duration: PT2H, min_notice: PT30M}
"""
REGISTRY = Registry(sites=(SiteRef("a1", 0, (AssetRef(METER, "meter"),)),))


def _config(folder: Path, dsn: str, password: str) -> CloudConfig:
    folder.mkdir()
    for who, token in {**TOKENS, "fsp-a": FSP_TOKEN, "pg.password": password}.items():
        (folder / who).write_text(token, encoding="utf-8")
    (folder / "contracts.yaml").write_text(CONTRACTS, encoding="utf-8")
    return CloudConfig.model_validate(
        {
            "store": {
                "kind": "postgres",
                "dsn": dsn,
                "password_file": str(folder / "pg.password"),
                "path": str(folder / "cloud.sqlite"),
            },
            "api": {"operator_token_file": str(folder / "operator")},
            "dr": {"contracts": str(folder / "contracts.yaml")},
            "market": {
                "dso_token_file": str(folder / "dso"),
                "fsps": {"fsp-a": {"token_file": str(folder / "fsp-a")}},
                "congestion_points": {"feeder-1": ["a1"]},
                "auto_clear": False,
            },
        }
    )


@pytest.fixture
def two(
    pg_server: LoopbackPostgres, pg_schema: str, tmp_path: Path
) -> Iterator[tuple[TestClient, TestClient]]:
    """Controllers A and B on the session's PostgreSQL (its tables emptied), each with its API."""
    dsn = pg_server.dsn(pg_schema)
    with psycopg.connect(dsn, password=pg_server.password, autocommit=True) as db:
        db.execute("; ".join(f"DELETE FROM {t}" for t in (*TABLES, *RECORD_TABLES)))
    ctls = [
        CloudController(_config(tmp_path / name, dsn, pg_server.password), REGISTRY, clock=SimClock(NOW))
        for name in ("a", "b")
    ]
    try:
        with TestClient(create_app(ctls[0])) as a, TestClient(create_app(ctls[1])) as b:
            yield a, b
    finally:
        for ctl in ctls:
            ctl.store.close()
            ctl.dr.close()
            ctl.market.close()
    assert not list(tmp_path.rglob("*.sqlite*"))  # nothing went to a local file


def _as(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {FSP_TOKEN if who == 'fsp-a' else TOKENS[who]}"}


def _dr_request(request_id: str) -> dict[str, Any]:
    return {
        "program": "peak",
        "ts": NOW.isoformat(),
        "request_id": request_id,
        "start": DELIVERY.isoformat(),
        "end": (DELIVERY + timedelta(minutes=30)).isoformat(),
        "direction": "reduce",
        "p_kw": 10.0,
    }


def test_a_dr_request_recorded_by_one_controller_is_a_409_on_the_other(
    two: tuple[TestClient, TestClient],
) -> None:
    a, b = two
    first = a.post("/dr/requests", json=_dr_request("r1"), headers=_as("operator"))
    assert first.status_code == 201 and first.json()["status"] == "selected"
    again = b.post("/dr/requests", json=_dr_request("r1"), headers=_as("operator"))
    assert again.status_code == 409 and "'r1' exists already (selected)" in again.json()["detail"]
    assert [r["request"]["request_id"] for r in b.get("/dr/requests", headers=_as("operator")).json()] == [
        "r1"
    ]
    assert b.post("/dr/requests", json=_dr_request("r2"), headers=_as("operator")).status_code == 201
    third = a.post("/dr/requests", json=_dr_request("r3"), headers=_as("operator"))
    assert third.status_code == 422  # 2 events a day: A counts the one B recorded


def test_an_offer_posted_on_one_controller_is_cleared_once_by_the_other(
    two: tuple[TestClient, TestClient],
) -> None:
    a, b = two
    need: dict[str, Any] = {"request_id": "need-1", "congestion_point": "feeder-1", "ts": NOW.isoformat()}
    need |= {
        "isps": [{"start": i.start.isoformat(), "kw": i.kw} for i in isps(15.0)],
        "value_eur_per_kwh": 100.0,
    }
    assert a.post("/market/requests", json=need, headers=_as("dso")).status_code == 201
    offer = {
        "offer_id": "o-1",
        "fsp": "fsp-a",
        "congestion_point": "feeder-1",
        "ts": NOW.isoformat(),
        "expires": (DELIVERY + timedelta(hours=2)).isoformat(),
        "request_id": "need-1",  # A's request, seen by B
        "sites": ["a1"],
        "options": [
            {
                "option_id": "o1",
                "isps": [{"start": i.start.isoformat(), "kw": i.kw} for i in isps(10.0)],
                "price_eur_per_kwh": 10.0,
                "min_activation_factor": 0.0,
            }
        ],
    }
    assert b.post("/market/offers", json=offer, headers=_as("fsp-a")).status_code == 201
    assert a.post("/market/offers", json=offer, headers=_as("fsp-a")).status_code == 409
    cleared = a.post("/market/clear", headers=_as("operator"))
    assert cleared.status_code == 200, cleared.text
    assert [o["offer_id"] for o in cleared.json()["orders"]] == ["o-1"]
    again = b.post("/market/clear", headers=_as("operator"))
    assert again.status_code == 409 and "no open request" in again.text  # A cleared it
    assert len(b.get("/market/clearings", headers=_as("operator")).json()) == 1
    assert [o["order_id"] for o in b.get("/market/orders", headers=_as("operator")).json()] == ["o-1:o1"]
