"""The planner never commands an asset the site never reported (the registry check's `missing_assets`)."""

from __future__ import annotations

from datetime import UTC, datetime

from cloud_controller.grid import build_schutterwald_region
from cloud_controller.live.planner import build_planner
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot

NOW = datetime(2030, 1, 15, 17, tzinfo=UTC)


class _History:
    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        return []


SITES = [
    SiteRef(
        f"b00{i}",
        20 * i,
        (
            AssetRef("meter", "meter"),
            AssetRef("pv1", "pv", 8.0),
            AssetRef("bat1", "battery", 5.0, 10.0),
            AssetRef("ev1", "ev", 11.0, p_guaranteed_min_kw=4.2),
        ),
    )
    for i in (1, 2, 3)
]
#: What each site never reported (one plan covers the cases: a battery, EV + PV, nothing).
MISSING = {"b001": frozenset({"bat1"}), "b002": frozenset({"ev1", "pv1"}), "b003": frozenset[str]()}
CONTROLLABLE = {"pv1", "bat1", "ev1"}


def test_a_missing_asset_gets_no_command_and_no_setpoint() -> None:
    planner = build_planner(
        build_schutterwald_region(),
        SITES,
        period_s=900,
        horizon_steps=8,
        margin_s=60,
        station_limit_kw=5.0,  # tight: the plan wants every battery and cap it can get
    )
    snaps = {
        s.site: SiteSnapshot(
            site=s.site,
            mode="online",
            p_net_kw=9.0,
            points={"ev1/p_kw": 11.0},
            missing_assets=MISSING[s.site],
        )
        for s in SITES
    }
    plan = planner.plan(NOW, snaps, _History())
    for site, missing in MISSING.items():
        assert {c.asset for c in plan.commands if c.site == site} == CONTROLLABLE - missing, site
        assert not set(plan.site_setpoints[site]) & missing, site
    assert planner.engine is not None
    corrections = planner.correct(NOW, snaps)
    assert not [c for c in corrections if c.asset in MISSING[c.site]]
