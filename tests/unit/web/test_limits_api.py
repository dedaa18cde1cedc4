"""`GET /grid/limits` (viewer) and `PUT /grid/limits` (operator only) over the app, envelopes kept across a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.grid import Region
from cloud_controller.grid.limits_check import LimitViolation
from cloud_controller.live.planner import MpcPlanner, build_planner
from cloud_controller.live.types import AssetRef, Plan, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from protocols.assets import BATTERY, METER
from protocols.clock import SimClock
from protocols.errors import ConfigError
from tests.unit.grid.test_limits import cached_region

NOW = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
OPERATOR = "operator-token-0123456789"
VIEWER = "viewer-token-0123456789ab"
SITES = (SiteRef("b1", 0, (AssetRef(METER, "meter"), AssetRef(BATTERY, "battery", 5.0, 10.0))),)
ENVELOPES = {
    "envelopes": [
        {
            "element": "T_idx_77",
            "from": "2026-12-02T17:00:00Z",
            "until": "2026-12-02T18:00:00Z",
            "max_kw": 120,
        },
        {
            "element": "line:32",
            "from": "2026-12-02T15:00:00Z",
            "until": "2026-12-02T16:30:00Z",
            "max_loading_pct": 50,
        },
        {"element": "HV/MV", "from": "2026-12-02T14:00:00Z", "until": "2026-12-02T15:00:00Z", "max_kw": 1},
    ]
}


@pytest.fixture(scope="module")
def region() -> Region:
    return cached_region()


def _controller(tmp: Path, region: Region) -> CloudController:
    (tmp / "op").write_text(OPERATOR)
    (tmp / "vi").write_text(VIEWER)
    cfg = CloudConfig.model_validate(
        {
            "store": {"path": str(tmp / "s.sqlite")},
            "control": {"station_limit_kw": 30, "horizon_steps": 4},
            "api": {"operator_token_file": str(tmp / "op"), "viewer_token_file": str(tmp / "vi")},
            "grid": {"limits": {"T_idx_80": {"max_kw": 500}}},
        }
    )
    planner = build_planner(
        region,
        SITES,
        period_s=900,
        horizon_steps=4,
        margin_s=60,
        station_limit_kw=30,
        grid_limits=cfg.grid,
    )
    return CloudController(cfg, Registry(sites=SITES), clock=SimClock(NOW), planner=planner)


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, region: Region
) -> Iterator[tuple[TestClient, CloudController]]:
    """One app for the module (its start costs more than the tests); each test starts without envelopes."""
    ctl = _controller(tmp_path_factory.mktemp("limits-api"), region)
    with TestClient(create_app(ctl)) as c:
        yield c, ctl
    ctl.store.close()


@pytest.fixture
def client(app: tuple[TestClient, CloudController]) -> tuple[TestClient, CloudController]:
    _, ctl = app
    ctl.store.replace_envelopes([])
    planner = ctl.planner()
    assert isinstance(planner, MpcPlanner)
    planner.limits_book.set_operator([])
    ctl.last_plan = None
    return app


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_viewer_reads_limits_and_is_refused_the_put(client: tuple[TestClient, CloudController]) -> None:
    c, _ = client
    assert c.get("/grid/limits").status_code == 401
    got = c.get("/grid/limits", headers=_auth(VIEWER))
    assert got.status_code == 200
    view = got.json()
    by_name = {b["name"]: b for b in view["branches"]}
    assert (view["hvmv"], view["station_limit_kw"]) == ("HV/MV", 30.0)
    assert (by_name["T_idx_80"]["rating_kw"], by_name["T_idx_80"]["source"]) == (500.0, "override")
    assert by_name["T_idx_118"]["rating_kw"] == 630.0
    assert len(view["buses"]) == 631 and view["envelopes"] == [] and view["violations"] == []
    assert c.put("/grid/limits", json=ENVELOPES, headers=_auth(VIEWER)).status_code == 403
    assert c.put("/grid/limits", json=ENVELOPES).status_code == 401


def test_the_last_plans_violations_are_shown_by_element(client: tuple[TestClient, CloudController]) -> None:
    c, ctl = client
    v = LimitViolation("T_idx_77", "trafo_loading", NOW, 131.25, 120.0, "kW")
    ctl.last_plan = Plan(NOW, 900.0, [], [], [], 30.0, [], {}, 1.0, [], violations=[v])
    got = c.get("/grid/limits", headers=_auth(VIEWER)).json()["violations"]
    assert got == [
        {
            "element": "T_idx_77",
            "kind": "trafo_loading",
            "start": "2026-12-02T16:00:00Z",
            "value": 131.25,
            "limit": 120.0,
            "unit": "kW",
        }
    ]


@pytest.mark.slow
def test_the_service_builds_its_planner_with_the_configs_limits(tmp_path: Path) -> None:
    """The wiring in service.py: `grid:` of cloud.yaml reaches the planner (an unknown name stops it)."""
    cfg = CloudConfig.model_validate(
        {"store": {"path": str(tmp_path / "s.sqlite")}, "grid": {"limits": {"T_idx_80": {"max_kw": 500}}}}
    )
    ctl = CloudController(cfg, Registry(sites=SITES), clock=SimClock(NOW))
    planner = ctl.planner()
    assert isinstance(planner, MpcPlanner)
    assert planner.limits_book.base.branches["T_idx_80"].rating_kw == 500.0
    ctl.store.close()
    bad = cfg.model_copy(
        update={"grid": CloudConfig.model_validate({"grid": {"limits": {"T_idx_8": {"max_kw": 1}}}}).grid}
    )
    ctl = CloudController(bad, Registry(sites=SITES), clock=SimClock(NOW))
    with pytest.raises(
        ConfigError, match=r"grid.limits.T_idx_8: unknown grid element 'T_idx_8' \(did you mean"
    ):
        ctl.planner()
    ctl.store.close()


def test_operator_puts_envelopes_that_survive_a_restart_and_expire(
    client: tuple[TestClient, CloudController], region: Region
) -> None:
    c, ctl = client
    put = c.put("/grid/limits", json=ENVELOPES, headers=_auth(OPERATOR))
    assert put.status_code == 200, put.text
    envs = put.json()["envelopes"]  # the HV/MV one ended at 15:00: dropped
    assert [(e["element"], e["limit_kw"], e["active"]) for e in envs] == [
        ("T_idx_77", 120.0, False),
        ("L_w318873043", 49.19, True),
    ]
    line = next(b for b in put.json()["branches"] if b["name"] == "L_w318873043")
    assert line["limit_now_kw"] == 49.19
    # a restarted controller on the same store plans within them again
    again = _controller(ctl.config.store.path.parent, region)
    planner = again.planner()
    assert isinstance(planner, MpcPlanner)
    planner.refresh_envelopes(again.store, NOW)  # what every plan does first
    assert [e.element for e in planner.limits_book.current(NOW).envelopes] == ["T_idx_77", "L_w318873043"]
    later = datetime(2026, 12, 2, 16, 30, tzinfo=UTC)
    planner.refresh_envelopes(again.store, later)
    assert [e.element for e in planner.limits_book.current(later).envelopes] == ["T_idx_77"]
    again.store.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"envelopes": [{**ENVELOPES["envelopes"][0], "element": "T_idx_7"}]}, "did you mean 'T_idx_77'"),
        ({"envelopes": [{**ENVELOPES["envelopes"][0], "from": "2026-12-02T19:00:00Z"}]}, "not after from"),
        ({"envelope": []}, '{"envelopes": [...]}'),
    ],
    ids=["unknown-element", "until-before-from", "wrong-shape"],
)
def test_a_bad_put_is_refused_and_changes_nothing(
    client: tuple[TestClient, CloudController], body: dict[str, object], message: str
) -> None:
    c, _ = client
    got = c.put("/grid/limits", json=body, headers=_auth(OPERATOR))
    assert got.status_code == 422 and message in str(got.json()["detail"])
    assert c.get("/grid/limits", headers=_auth(VIEWER)).json()["envelopes"] == []
