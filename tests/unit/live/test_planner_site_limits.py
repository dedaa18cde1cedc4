"""The live planner plans each site within its connection limit, and reports what its battery cannot cover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud_controller.grid import Region
from cloud_controller.live.planner import MpcPlanner, build_planner
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
from tests.unit.grid.test_limits import cached_region

NOW = datetime(2030, 1, 15, 17, tzinfo=UTC)
HORIZON = 16  # 17:00 - 21:00
IMPORT_MAX_KW = 5.0


class _DailyHistory:
    """Two days of a household whose load is `house_kw`, `peak_kw` in [peak_from, peak_to) hours."""

    def __init__(self, peak_kw: float, peak_from: int, peak_to: int, house_kw: float = 3.0) -> None:
        self.peak_kw, self.peak_from, self.peak_to, self.house_kw = peak_kw, peak_from, peak_to, house_kw

    def load_kw(self, t: datetime) -> float:
        return self.peak_kw if self.peak_from <= t.hour < self.peak_to else self.house_kw

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        if (asset, point) != ("meter", "p_kw"):
            return []
        n = int((end - start).total_seconds() // 900)
        times = [start + timedelta(seconds=900 * k) for k in range(n)]
        return [(t, self.load_kw(t)) for t in times]


SITE = SiteRef(
    "b0",
    0,
    (
        AssetRef("meter", "meter"),
        AssetRef("bat1", "battery", 5.0, 10.0),
        AssetRef("ev1", "ev", 11.0, p_guaranteed_min_kw=4.2),
    ),
    import_max_kw=IMPORT_MAX_KW,  # the registry's grid_connection
)
#: a second site without a limit, to show the limit is per site
FREE = SiteRef("b1", 1, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0)))


@pytest.fixture(scope="module")
def region() -> Region:
    return cached_region()


def _planner(region: Region, *, by_area: bool = False) -> MpcPlanner:
    return build_planner(
        region,
        [SITE, FREE],
        period_s=900,
        horizon_steps=HORIZON,
        margin_s=60,
        station_limit_kw=None,
        by_area=by_area,
    )


def _snaps(soc_pct: float) -> dict[str, SiteSnapshot]:
    return {
        s.site: SiteSnapshot(
            site=s.site, mode="online", p_net_kw=3.0, points={"bat1/soc_pct": soc_pct, "bat1/p_kw": 0.0}
        )
        for s in (SITE, FREE)
    }


@pytest.mark.parametrize("by_area", [False, True], ids=["whole-lp", "by-area"])
def test_a_peak_above_the_import_limit_its_battery_covers_is_planned_within_it(
    region: Region, by_area: bool
) -> None:
    # 8 kW from 19:00 to 20:00 on a 5 kW connection: 3 kWh (3.2 from the battery), of 5 kWh held
    planner = _planner(region, by_area=by_area)
    plan = planner.plan(NOW, _snaps(soc_pct=50.0), _DailyHistory(8.0, 19, 20))
    schedule = planner.last_schedule
    assert schedule is not None
    base = np.asarray(plan.site_forecast_kw)[:, 0]
    assert (base[8:12] == pytest.approx(8.0)) and (base[:8] == pytest.approx(3.0))
    assert (schedule.p_site_kw[:, 0] <= IMPORT_MAX_KW + 1e-6).all()  # every interval
    assert schedule.p_site_kw[8:12, 0] == pytest.approx(IMPORT_MAX_KW, abs=1e-6)  # peak shaved to 5 kW
    assert plan.site_limit_shortfalls == []
    # its battery discharges the 3 kW over the limit in the peak
    assert schedule.p_bat_kw[8:12, planner.bat_index[0]] == pytest.approx(-3.0, abs=1e-6)
    # the EV charger is never planned below its §14a minimum
    ev = [c for c in plan.commands if c.asset == "ev1"]
    assert ev and all(float(c.value) >= 4.2 for c in ev)


def test_a_peak_the_battery_cannot_cover_is_reported_with_the_battery_used_fully(region: Region) -> None:
    # empty battery (5 % = its reserve), 9 kW for 19:00-21:00: 8 kWh over the limit; two hours of
    # 2 kW headroom before it charge 3.8 kWh, which covers 3.6 kWh of it
    planner = _planner(region)
    plan = planner.plan(NOW, _snaps(soc_pct=5.0), _DailyHistory(9.0, 19, 21))
    schedule = planner.last_schedule
    assert schedule is not None
    p = schedule.p_site_kw[:, 0]
    assert (p <= IMPORT_MAX_KW + 1e-6)[:8].all()  # the pre-charge stays within the limit too
    k = planner.bat_index[0]
    assert schedule.e_bat_kwh[7, k] == pytest.approx(0.5 + 8 * 2.0 * 0.25 * 0.95, abs=1e-6)  # charged fully
    covered_kwh = float((9.0 - p[8:]).sum() * 0.25)
    assert covered_kwh == pytest.approx(8 * 2.0 * 0.25 * 0.95 * 0.95, abs=1e-3)
    (short,) = plan.site_limit_shortfalls
    assert (short.site, short.side, short.limit_kw) == ("b0", "import", IMPORT_MAX_KW)
    assert short.max_excess_kw == pytest.approx(4.0, abs=1e-3)
    assert short.first_start >= NOW + timedelta(hours=2)
    assert short.intervals == int((p > IMPORT_MAX_KW + 0.01).sum())
    assert short.source.startswith("registry grid_connection import_max_kw 5")


def test_the_agents_published_limit_and_a_sent_dso_cap_bind_the_plan(region: Region) -> None:
    free_only = build_planner(
        region, [FREE], period_s=900, horizon_steps=HORIZON, margin_s=60, station_limit_kw=None
    )
    snaps = _snaps(soc_pct=50.0)
    snaps["b1"].points["meter/limit_import_max_kw"] = 4.0  # what the edge holds (telemetry)
    plan = free_only.plan(NOW, snaps, _DailyHistory(3.0, 19, 20))
    schedule = free_only.last_schedule
    assert schedule is not None
    assert (schedule.p_site_kw[:, 0] <= 4.0 + 1e-6).all()
    # a 2 kW cap the controller sent, valid for 30 min: the battery covers the 1 kW over it then
    (cmd,) = [c for c in plan.commands if c.asset == "bat1"]
    cap = cmd.model_copy(
        update={
            "cmd_id": "cap-1",
            "asset": "meter",
            "kind": "site_import_max_kw",
            "value": 2.0,
            "valid_until": NOW + timedelta(minutes=30),
        }
    )
    free_only.note_sent([cap])
    plan = free_only.plan(NOW, snaps, _DailyHistory(3.0, 19, 20))
    schedule = free_only.last_schedule
    assert schedule is not None
    assert (schedule.p_site_kw[:2, 0] <= 2.0 + 1e-6).all()
    assert plan.site_limit_shortfalls == []
    (cmd,) = [c for c in plan.commands if c.asset == "bat1"]
    assert float(cmd.value) <= -1.0 + 1e-3
