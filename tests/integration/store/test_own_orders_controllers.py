"""Two CloudControllers on one PostgreSQL: an order to our own aggregator is carried out once, by one of them.

fsp-a is our own aggregator (`own_program: peak`). A clears a 10 kW order on fsp-a's
offer and submits DR request `mkt-o-1:o1`; B, on the same DR and market tables, finds it
recorded and submits nothing, and shows the order as executed.
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
from cloud_controller.service import CloudController
from gridflex.ops.postgres import LoopbackPostgres
from protocols.clock import SimClock
from tests.integration.store.conftest import RECORD_TABLES, TABLES
from tests.integration.store.records_cases import DELIVERY, NOW, isps
from tests.integration.store.test_records_controllers import REGISTRY, _as, _config


def _own(folder: Path, dsn: str, password: str) -> CloudConfig:
    """The two-controller config with fsp-a as our own aggregator of programme `peak`."""
    base = _config(folder, dsn, password).model_dump(mode="json", exclude_unset=True)
    base["market"]["fsps"]["fsp-a"]["own_program"] = "peak"
    return CloudConfig.model_validate(base)


@pytest.fixture
def two(pg_server: LoopbackPostgres, pg_schema: str, tmp_path: Path) -> Iterator[list[CloudController]]:
    dsn = pg_server.dsn(pg_schema)
    with psycopg.connect(dsn, password=pg_server.password, autocommit=True) as db:
        db.execute("; ".join(f"DELETE FROM {t}" for t in (*TABLES, *RECORD_TABLES)))
    ctls = [
        CloudController(_own(tmp_path / name, dsn, pg_server.password), REGISTRY, clock=SimClock(NOW))
        for name in ("a", "b")
    ]
    try:
        yield ctls
    finally:
        for ctl in ctls:
            ctl.store.close()
            ctl.dr.close()
            ctl.market.close()


def _offer() -> dict[str, Any]:
    return {
        "offer_id": "o-1",
        "fsp": "fsp-a",
        "congestion_point": "feeder-1",
        "ts": NOW.isoformat(),
        "expires": (DELIVERY + timedelta(hours=2)).isoformat(),
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


def test_an_own_order_cleared_on_one_controller_is_not_executed_again_on_the_other(
    two: list[CloudController],
) -> None:
    ctl_a, ctl_b = two
    with TestClient(create_app(ctl_a)) as a, TestClient(create_app(ctl_b)) as b:
        need: dict[str, Any] = {"request_id": "need-1", "congestion_point": "feeder-1", "ts": NOW.isoformat()}
        need |= {
            "isps": [{"start": i.start.isoformat(), "kw": i.kw} for i in isps(15.0)],
            "value_eur_per_kwh": 100.0,
        }
        assert a.post("/market/requests", json=need, headers=_as("dso")).status_code == 201
        assert a.post("/market/offers", json=_offer(), headers=_as("fsp-a")).status_code == 201
        assert a.post("/market/clear", headers=_as("operator")).status_code == 200
        assert ctl_a.market.own.executed == 1
        assert b.portal.call(ctl_b.market.execute_own_orders) == []  # type: ignore[union-attr]
        assert ctl_b.market.own.executed == 0
        rows = b.get("/dr/requests", headers=_as("operator")).json()
        assert [(r["request"]["request_id"], r["status"]) for r in rows] == [("mkt-o-1:o1", "selected")]
        (order,) = b.get("/market/orders", headers=_as("operator")).json()
        assert order["execution"]["status"] == "executed"
        assert order["execution"]["dr_request_id"] == "mkt-o-1:o1"
