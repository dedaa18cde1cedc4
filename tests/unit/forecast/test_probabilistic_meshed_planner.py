"""The background path on a meshed region: a plan, then `planner.probabilistic_forecast(plan)`.

Before, the forecast failed on such a region at once (the AC batch refused the ring's sgen, the
fast method's tree model needs a radial net); now it runs every scenario through the AC batch.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from cloud_controller.forecast.probabilistic import ForecastOptions
from cloud_controller.grid.meshed.planning import meshed_region
from cloud_controller.live.planner import build_planner
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
from tests.unit.grid.meshed.nets import loop_two_feeds

NOW = datetime(2030, 1, 15, 17, tzinfo=UTC)
SITES = [
    SiteRef(f"h{i}", i, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0)))
    for i in range(6)
]


class _History:
    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        return []


def test_a_meshed_regions_plan_gets_its_probabilistic_forecast() -> None:
    region = meshed_region(loop_two_feeds(site_p_mw=0.005, limit_pct=0.15))
    planner = build_planner(region, SITES, period_s=900, horizon_steps=8, margin_s=60, station_limit_kw=None)
    snaps = {
        s.site: SiteSnapshot(site=s.site, mode="online", p_net_kw=9.0, points={"bat1/soc_pct": 50.0})
        for s in SITES
    }
    plan = planner.plan(NOW, snaps, _History())
    assert planner.planning.engine == "meshed"
    f = planner.probabilistic_forecast(plan, ForecastOptions(n_scenarios=50))
    assert f.method == "ac" and f.failed_steps == 0
    assert f.n_intervals == 8
    assert f.kinds.count("line") == len(region.net.line) and f.kinds.count("bus") == region.grid.n_bus
    assert np.all(np.isfinite(f.expected)) and np.all((f.p_exceed >= 0) & (f.p_exceed <= 1))
    # line L01 is rated at 0.15 % (5.2 kW): the sites' load crosses it with certainty somewhere
    l01 = f.elements.index("line:0")
    assert f.limit_hi[l01] == 0.15 and f.p_exceed[l01].max() > 0.5
    assert any(a.element == "line:0" for a in f.alerts)
