"""`GET /forecast/quality` in-process (FastAPI's TestClient, as tests/unit/web): 404, the result, 503, a new file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.forecast.quality import StepScores
from cloud_controller.forecast.quality_backtest import FORECASTS, REFERENCES, BacktestConfig, BacktestResult
from cloud_controller.live.types import SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from cloud_controller.web.forecast_quality_api import quality_path
from protocols.clock import SimClock

NOW = datetime(2030, 1, 15, 18, 0, tzinfo=UTC)


def _result(mae_kw: float) -> dict[str, object]:
    """A real result's JSON (BacktestResult.to_json) from scores made by hand: every p50 off by mae_kw."""
    scores = {name: StepScores(96) for name in (*FORECASTS, *REFERENCES)}
    for s in scores.values():
        s.add([[1.0] * 96], [[0.0] * 96], [[1.0 + mae_kw] * 96], [[2.0] * 96])
    res = BacktestResult(BacktestConfig(sites=1, days=1), scores, ["2030-01-08"], {"households": 1}, 1, 0.1)
    return res.to_json()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    """One controller for the module (each test starts with no published file)."""
    store = tmp_path_factory.mktemp("quality-api") / "state" / "s.sqlite"
    cfg = CloudConfig.model_validate({"store": {"path": str(store)}})
    ctl = CloudController(cfg, Registry(sites=(SiteRef("b1", 0, ()),)), clock=SimClock(NOW))
    with TestClient(create_app(ctl)) as c:
        yield c, quality_path(cfg.store.path)
    ctl.store.close()


@pytest.fixture
def served(app: tuple[TestClient, Path]) -> tuple[TestClient, Path]:
    app[1].unlink(missing_ok=True)
    return app


def test_no_result_is_404_saying_where_and_how(served: tuple[TestClient, Path]) -> None:
    c, path = served
    r = c.get("/forecast/quality")
    assert r.status_code == 404
    assert r.json()["detail"] == (
        f"no forecast-quality result at {path}: run `gridflex forecast-quality --publish {path}`"
    )


def test_published_result_is_served_and_a_newer_one_replaces_it(served: tuple[TestClient, Path]) -> None:
    c, path = served
    assert path.parent.name == "state"  # beside the store file
    path.write_text(json.dumps(_result(0.5)), encoding="utf-8")
    r = c.get("/forecast/quality")
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "gridflex.forecast_quality" and body["config"]["sites"] == 1
    every = {b["bucket"]: b["metrics"]["baseline"] for b in body["buckets"]}
    assert every["all"]["mae_p50_kw"] == pytest.approx(0.5) and every["all"]["coverage_p10_p90"] == 1.0
    assert body["buckets"][0]["skill"]["baseline"]["persistence_day"]["mae_p50_kw"] == 0.0
    path.write_text(json.dumps(_result(0.25)), encoding="utf-8")
    os.utime(path, ns=(path.stat().st_mtime_ns + 1_000_000, path.stat().st_mtime_ns + 1_000_000))
    again = c.get("/forecast/quality").json()
    assert again["buckets"][-1]["metrics"]["baseline"]["mae_p50_kw"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not JSON (Expecting property name enclosed in double quotes at line 1)"),
        (
            '{"kind": "other"}',
            "not a forecast-quality result (its 'kind' is not 'gridflex.forecast_quality')",
        ),
        ('{"kind": "gridflex.forecast_quality"}', "key 'buckets': missing or not a list"),
    ],
    ids=["not-json", "another-kind", "no-buckets"],
)
def test_a_file_that_is_no_result_is_503_naming_file_and_reason(
    served: tuple[TestClient, Path], text: str, reason: str
) -> None:
    c, path = served
    path.write_text(text, encoding="utf-8")
    r = c.get("/forecast/quality")
    assert r.status_code == 503
    assert r.json()["detail"] == f"{path}: {reason}"


def test_it_is_a_read_the_viewer_token_opens_once_roles_are_on(tmp_path: Path) -> None:
    viewer, operator = "viewer-token-for-quality", "operator-token-for-quality"
    (tmp_path / "vi").write_text(viewer)
    (tmp_path / "op").write_text(operator)
    cfg = CloudConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "s.sqlite")},
            "api": {"viewer_token_file": str(tmp_path / "vi"), "operator_token_file": str(tmp_path / "op")},
        }
    )
    quality_path(cfg.store.path).write_text(json.dumps(_result(0.5)), encoding="utf-8")
    ctl = CloudController(cfg, Registry(sites=()), clock=SimClock(NOW))
    try:
        with TestClient(create_app(ctl)) as c:
            assert c.get("/forecast/quality").status_code == 401
            for token in (viewer, operator):
                r = c.get("/forecast/quality", headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200 and r.json()["kind"] == "gridflex.forecast_quality"
    finally:
        ctl.store.close()
