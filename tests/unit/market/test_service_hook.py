"""The service's hook: after each background forecast the market gets its grid view and the DSO asks.

A controller with a planner on grid_case's three-feeder net (the station over its rating
at 17:00-19:00, a1 exporting 85 kW on its ~98 kW cable) plans once; its background
forecast runs; the market posts the DSO's request from it (intraday gate: 15 min), for
the ISPs whose gate is still open. Two offers come in and the market clears on the same
view: a1's cheap offer would overload a1's cable and is not ordered, b1's is, and the AC
check passes.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.forecast.background import LatestForecast
from cloud_controller.forecast.probabilistic import ProbabilisticCongestion
from cloud_controller.forecast.result import ForecastOptions, ProbabilisticForecast
from cloud_controller.grid import Region
from cloud_controller.live.types import AssetRef, History, Plan, SiteRef, SiteSnapshot
from cloud_controller.market.config import MarketConfig
from cloud_controller.market.forecast_hook import is_tree
from cloud_controller.market.shell import MarketShell
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from protocols.assets import METER
from protocols.clock import SimClock
from protocols.market import MarketIsp, MarketOffer, MarketOption
from protocols.messages import Command
from protocols.mqtt import MqttConfig, MqttSession

NOW = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
T = 8
SITES = tuple(SiteRef(s, i, (AssetRef(METER, "meter"),)) for i, s in enumerate(("a1", "b1", "c1")))


class NetPlanner:
    """Plans carry the three houses' medians; the forecast is the real model's on the real net."""

    def __init__(self, region: Region) -> None:
        self.region = region
        self.sites = list(SITES)
        self.model = ProbabilisticCongestion(region, [0, 1, 2])

    def plan(self, now: datetime, sites: Mapping[str, SiteSnapshot], history: History) -> Plan:
        p50 = np.tile([-85.0, 250.0, 250.0], (T, 1))
        return Plan(
            now,
            900.0,
            [],
            [],
            [],
            math.inf,
            [],
            {},
            0.0,
            [],
            site_forecast_kw=p50,
            site_sigma_kw=np.full((T, 3), 3.0),
        )

    def correct(self, now: datetime, sites: Mapping[str, SiteSnapshot]) -> list[Command]:
        return []

    def probabilistic_forecast(
        self, plan: Plan, options: ForecastOptions | None = None
    ) -> ProbabilisticForecast:
        return self.model.forecast(plan.site_forecast_kw, plan.site_sigma_kw, options)


def _offer(offer_id: str, fsp: str, site: str, isps: list[datetime], kw: float, price: float) -> MarketOffer:
    return MarketOffer(
        offer_id=offer_id,
        fsp=fsp,
        congestion_point="station",
        ts=NOW,
        sites=[site],
        expires=NOW + timedelta(hours=4),
        options=[
            MarketOption(
                option_id="o",
                isps=[MarketIsp(start=t, kw=kw) for t in isps],
                price_eur_per_kwh=price,
                min_activation_factor=1.0,
            )
        ],
    )


async def test_the_forecast_becomes_the_dsos_request_and_the_grid_of_the_clearing(
    tmp_path: Path, region: Region
) -> None:
    cfg = CloudConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "s.sqlite")},
            "control": {"congestion_scenarios": 50},
            "market": {
                "fsps": {"fsp-a": {}, "fsp-b": {}},
                "congestion_points": {"station": ["a1", "b1", "c1"]},
                "gate_closure_s": 900,
                "auto_clear": False,
                "auto_request": {"enabled": True, "risk": 0.1, "value_eur_per_kwh": 100.0},
            },
        }
    )
    ctl = CloudController(cfg, Registry(sites=SITES), clock=SimClock(NOW), planner=NetPlanner(region))
    try:
        await ctl.dispatch_once()
        assert ctl._forecast_task is not None
        await asyncio.wait_for(ctl._forecast_task, 120)
        market = ctl.market
        assert market.view is not None and market.stats.auto_posted == 1 and market.stats.auto_errors == 0
        ((req, status),) = market.store.requests()
        isps = [i.start for i in req.isps]
        # gate 15 min: 17:00 and 17:15 have closed (17:15 - 15 min = now), 17:30 .. 18:45 are asked for
        assert status == "open" and isps == [NOW + timedelta(minutes=15 * k) for k in range(2, T)]
        assert all(10.0 < i.kw < 40.0 for i in req.isps) and req.value_eur_per_kwh == 100.0
        market.book.post_offer(_offer("cheap", "fsp-a", "a1", isps, 40.0, 1.0), "fsp-a", NOW)
        market.book.post_offer(_offer("dear", "fsp-b", "b1", isps, 60.0, 2.0), "fsp-b", NOW)
        record = await market.clear_now()
        assert record is not None and [o.offer_id for o in record.orders] == ["dear"]
        assert record.summary["status"] == "cleared" and record.summary["violations"] == []
        assert record.summary["grid"] == {"rows": 3, "risk": 0.1}
        assert record.summary["cost_eur"] == pytest.approx(60.0 * 1.5 * 2.0)  # 60 kW x 6 ISPs x 2 EUR/kWh
    finally:
        ctl.market.close()
        ctl.store.close()


async def test_a_failed_step_after_the_forecast_is_counted_and_the_loop_goes_on(
    tmp_path: Path, region: Region
) -> None:
    """A planner whose sites do not fit its region: the view fails, counted with its reason, nothing raised."""
    planner = NetPlanner(region)
    plan = planner.plan(NOW, {}, None)  # type: ignore[arg-type]
    latest = LatestForecast(
        planner.probabilistic_forecast(plan, ForecastOptions(n_scenarios=10)), NOW, 900.0, NOW
    )
    planner.sites = [SiteRef("a1", 99, ())]  # household 99 is not in the three-house region
    shell = MarketShell(
        MarketConfig(), tmp_path / "m.sqlite", clock=SimClock(NOW), session=MqttSession(MqttConfig(port=1))
    )
    try:
        assert await shell.on_forecast(latest, plan, planner) == []
        assert shell.stats.auto_errors == 1 and shell.view is None
        assert "IndexError" in shell.status()["auto_errors"][0]["reason"]
    finally:
        shell.close()


async def test_a_region_that_is_not_a_radial_tree_gives_no_grid_view_and_says_why(
    tmp_path: Path, region: Region
) -> None:
    planner = NetPlanner(region)
    plan = planner.plan(NOW, {}, None)  # type: ignore[arg-type]
    latest = LatestForecast(
        planner.probabilistic_forecast(plan, ForecastOptions(n_scenarios=10)), NOW, 900.0, NOW
    )
    planner.region = replace(region, grid=object())  # type: ignore[arg-type]  # as a meshed region's DC grid
    shell = MarketShell(
        MarketConfig(), tmp_path / "m.sqlite", clock=SimClock(NOW), session=MqttSession(MqttConfig(port=1))
    )
    try:
        assert shell.status()["grid_view"] == {"unavailable": "no forecast yet"}
        assert await shell.on_forecast(latest, plan, planner) == []
        assert shell.view is None and shell.stats.auto_errors == 0
        assert shell.status()["grid_view"] == {
            "unavailable": "the region's grid (object) is not a radial tree: no grid rows"
        }
    finally:
        shell.close()


def test_a_grid_with_a_loop_is_not_a_tree(region: Region) -> None:
    """As a meshed region's DcGrid (a RadialGrid by type): one more branch closes a loop."""
    g = region.grid
    assert is_tree(g)
    looped = replace(
        g,
        parent=np.append(g.parent, g.child[-1]),
        child=np.append(g.child, g.child[-2]),
        rating_kw=np.append(g.rating_kw, 100.0),
        r_pu_per_kw=np.append(g.r_pu_per_kw, 0.0),
        branch_names=(*g.branch_names, "line:99"),
    )
    assert not is_tree(looped)
