"""The service's hook on a meshed, two-feed region: the live planner's plan and forecast give a grid view.

Before, a meshed region (`DcGrid`) gave no view (`unavailable`) and the market cleared as
the core alone. The planner is the live one (`build_planner` on `loop_two_feeds`, as in
tests/unit/forecast/test_probabilistic_meshed_planner.py); the shell builds the view from
what the service hands it after the forecast.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from cloud_controller.forecast.background import LatestForecast
from cloud_controller.forecast.probabilistic import ForecastOptions
from cloud_controller.grid.meshed.planning import meshed_region
from cloud_controller.live.planner import build_planner
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
from cloud_controller.market.config import MarketConfig
from cloud_controller.market.ptdf import reduction_ptdf
from cloud_controller.market.shell import MarketShell
from protocols.clock import SimClock
from protocols.mqtt import MqttConfig, MqttSession
from tests.unit.grid.meshed.nets import loop_two_feeds

NOW = datetime(2030, 1, 15, 17, tzinfo=UTC)
SITES = [SiteRef(f"h{i}", i, (AssetRef("meter", "meter"),)) for i in range(6)]


class _History:
    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        return []


async def test_a_meshed_regions_forecast_gives_the_market_a_ptdf_view(tmp_path: Path) -> None:
    region = meshed_region(loop_two_feeds(site_p_mw=0.005, limit_pct=0.15))
    planner = build_planner(region, SITES, period_s=900, horizon_steps=8, margin_s=60, station_limit_kw=None)
    snaps = {s.site: SiteSnapshot(site=s.site, mode="online", p_net_kw=9.0, points={}) for s in SITES}
    plan = planner.plan(NOW, snaps, _History())
    latest = LatestForecast(
        planner.probabilistic_forecast(plan, ForecastOptions(n_scenarios=10)), NOW, 900.0, NOW
    )
    shell = MarketShell(
        MarketConfig(), tmp_path / "m.sqlite", clock=SimClock(NOW), session=MqttSession(MqttConfig(port=1))
    )
    try:
        assert await shell.on_forecast(latest, plan, planner) == []
        view = shell.view
        assert view is not None and view.ptdf is not None and view.power_flow is not None
        assert shell.status()["grid_view"] == {"intervals": 8, "from": NOW.isoformat()}
        assert view.sites == tuple(s.site for s in SITES)
        np.testing.assert_allclose(view.ptdf, reduction_ptdf(region.grid, region.site_bus))  # type: ignore[arg-type]
        # L01 (rated 0.15 %) is over in the first interval: the DSO's need is read from the view
        need = view.relief_needed_kw("l01", 0.1)
        assert len(need) == 8 and need[NOW] > 0.0, need  # one ISP per interval
    finally:
        shell.close()
