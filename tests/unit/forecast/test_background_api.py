"""The forecast after every plan, in a worker thread, and `GET /forecast/congestion` serving it."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.forecast.background import BackgroundForecast
from cloud_controller.forecast.probabilistic import ProbabilisticCongestion
from cloud_controller.forecast.result import ForecastOptions, ProbabilisticForecast
from cloud_controller.live.types import AssetRef, History, Plan, SiteRef, SiteSnapshot
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from cloud_controller.web.forecast_api import forecast_metrics
from protocols.assets import METER
from protocols.clock import SimClock
from protocols.messages import Command

from .conftest import evening

NOW = datetime(2030, 1, 15, 17, 5, tzinfo=UTC)
REGISTRY = Registry(sites=(SiteRef("b1", 0, (AssetRef(METER, "meter"),)),))


class FeederPlanner:
    """A planner whose plans carry the feeder's evening forecast; its forecast is the real model's."""

    def __init__(self, model: ProbabilisticCongestion) -> None:
        self.model = model
        self.region = model.region
        self.calls = 0

    def plan(self, now: datetime, sites: Mapping[str, SiteSnapshot], history: History) -> Plan:
        p50, sigma = evening(6)
        return Plan(
            now, 900.0, [], [], [], math.inf, [], {}, 0.0, [], site_forecast_kw=p50, site_sigma_kw=sigma
        )

    def correct(self, now: datetime, sites: Mapping[str, SiteSnapshot]) -> list[Command]:
        return []

    def probabilistic_forecast(
        self, plan: Plan, options: ForecastOptions | None = None
    ) -> ProbabilisticForecast:
        self.calls += 1
        return self.model.forecast(plan.site_forecast_kw, plan.site_sigma_kw, options)


def _controller(tmp: Path, model: ProbabilisticCongestion, scenarios: int = 30) -> CloudController:
    cfg = CloudConfig.model_validate(
        {"store": {"path": str(tmp / "s.sqlite")}, "control": {"congestion_scenarios": scenarios}}
    )
    return CloudController(cfg, REGISTRY, clock=SimClock(NOW), planner=FeederPlanner(model))


async def _plan_and_wait(ctl: CloudController) -> None:
    await ctl.dispatch_once()
    if ctl._forecast_task is not None:
        await asyncio.wait_for(ctl._forecast_task, 60)


def test_forecast_after_a_plan_is_served_per_element_with_alerts_and_cdf(
    tmp_path: Path, model: ProbabilisticCongestion
) -> None:
    ctl = _controller(tmp_path, model)
    with TestClient(create_app(ctl)) as http:
        before = http.get("/forecast/congestion").json()
        assert before["status"] == "pending" and before["elements"] == [] and before["intervals"] == []
        asyncio.run(_plan_and_wait(ctl))
        body = http.get("/forecast/congestion").json()
        assert body["status"] == "ready" and body["method"] == "fast" and body["scenarios"] == 30
        assert body["intervals"][0] == "2030-01-15T17:00:00+00:00" and len(body["intervals"]) == 6
        assert body["computed_at"] == "2030-01-15T17:05:00+00:00" and body["v_band_pu"] == [0.95, 1.05]
        kinds = {e["kind"] for e in body["elements"]}
        assert kinds == {"transformer", "line", "bus"} and len(body["elements"]) == 2 + 10 + 13
        head = next(e for e in body["elements"] if e["id"] == "line:5")  # feeder 1's first cable
        assert head["unit"] == "%" and head["limit"]["high"] == 100.0 and len(head["p90"]) == 6
        assert head["p10"][-1] <= head["p50"][-1] <= head["p90"][-1] and head["p_exceed"][-1] > 0.5
        alert = next(a for a in body["alerts"] if a["element"] == "line:5")
        assert alert["name"] == "f1-0" and alert["limit"] == "100 %" and alert["p_exceed"] >= 0.1
        assert alert["first"] in body["intervals"] and alert["expected"] > 90
        lines = http.get("/forecast/congestion?kind=line&top=2").json()["elements"]
        assert [e["kind"] for e in lines] == ["line", "line"] and lines[0]["max_p_exceed"] >= lines[1][
            "max_p_exceed"
        ]
        assert http.get("/forecast/congestion?kind=cable").status_code == 422
        cdf = http.get("/forecast/congestion/cdf?element=station").json()
        (station,) = cdf["elements"]
        assert cdf["levels"][0] == 0.0 and cdf["levels"][-1] == 1.0 and len(station["values"]) == 21
        assert station["values"] == sorted(station["values"]) and station["kind"] == "transformer"
        assert http.get("/forecast/congestion/cdf?element=nowhere").status_code == 404
        metrics = {m.name: m for m in forecast_metrics(ctl.congestion)}
        by_kind = {s.labels["kind"]: s.value for s in metrics["gridflex_congestion_alerts"].samples}
        assert by_kind["line"] >= 1 and metrics["gridflex_congestion_p_exceed_max"].samples[0].value > 0.5
    ctl.store.close()


def test_zero_scenarios_turns_the_background_forecast_off(
    tmp_path: Path, model: ProbabilisticCongestion
) -> None:
    ctl = _controller(tmp_path, model, scenarios=0)
    asyncio.run(_plan_and_wait(ctl))
    assert ctl._forecast_task is None and ctl.congestion.latest is None and ctl.last_plan is not None
    ctl.store.close()


def test_plans_arriving_while_one_is_forecast_wait_as_the_newest_only() -> None:
    holder = BackgroundForecast()
    assert holder.claim("plan 1")  # runs now
    assert not holder.claim("plan 2") and not holder.claim("plan 3")  # queued: only the newest stays
    assert holder.release() == "plan 3"  # the caller goes on with it, still claimed
    assert not holder.claim("plan 4")
    assert holder.release() == "plan 4" and holder.release() is None
    assert holder.claim("plan 5")


def test_a_failing_forecast_is_counted_and_the_last_result_stays(model: ProbabilisticCongestion) -> None:
    holder = BackgroundForecast()
    p50, sigma = evening(2)

    def good() -> ProbabilisticForecast:
        return model.forecast(p50, sigma, ForecastOptions(n_scenarios=5))

    def bad() -> Any:
        raise ValueError("forecast for 4 sites, the fleet has 10")

    kept = holder.run(good, plan_at=NOW, period_s=900.0, now=lambda: NOW)
    assert holder.run(bad, plan_at=NOW, period_s=900.0, now=lambda: NOW) is None
    assert holder.latest is kept and holder.errors == 1 and "fleet has 10" in str(holder.last_error)
    assert np.isfinite(kept.forecast.expected).all() if kept else False
