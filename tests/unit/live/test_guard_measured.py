"""The fleet guard on a metered element: its measured total (background + its sites), not its sites' sum."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloud_controller.live.guard import FleetGuard, GuardElement
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot

T0 = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
SITES = [
    SiteRef("a", 0, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 13.5))),
    SiteRef("b", 1, (AssetRef("meter", "meter"), AssetRef("ev1", "ev", 11.0, p_guaranteed_min_kw=4.2))),
]


def _snaps() -> dict[str, SiteSnapshot]:
    def snap(site: str, p_kw: float, points: dict[str, float]) -> SiteSnapshot:
        return SiteSnapshot(site, "online", p_kw, points, last_seen=T0, measured_at=T0)

    return {
        "a": snap("a", 4.0, {"bat1/p_kw": 3.0, "bat1/soc_pct": 50.0}),
        "b": snap("b", 12.0, {"ev1/p_kw": 11.0}),
    }


def _guard(element: GuardElement, fleet_background_kw: float = 0.0, fleet_kw: float = 1000.0) -> FleetGuard:
    g = FleetGuard(SITES, limit_kw=fleet_kw, period_s=900.0, battery_control="setpoint", fleet_name="HV/MV")
    g.set_elements([element], fleet_background_kw=fleet_background_kw)
    g.on_plan(T0, {"a": 3.0}, set(), {})
    return g


def test_a_station_whose_sites_are_under_its_limit_but_whose_meter_is_over_is_relieved() -> None:
    sites_only = GuardElement("S1", frozenset({"a", "b"}), 50.0)
    assert _guard(sites_only).step(T0, _snaps(), force=True).over == {}  # 16 kW of sites: under 50
    metered = GuardElement("S1", frozenset({"a", "b"}), 50.0, background_kw=40.0)  # meter: 56 kW
    ch = _guard(metered).step(T0, _snaps(), force=True)
    assert ch.over == {"S1": pytest.approx(6.0)}
    assert ch.battery_kw == {"a": pytest.approx(0.0)}  # its battery stops charging (3 kW)
    assert ch.capped == {("b", "ev1")}  # then its charger (6.8 kW)


def test_the_fleet_limit_counts_the_stations_measured_backgrounds() -> None:
    el = GuardElement("S1", frozenset({"a", "b"}), 500.0)
    assert _guard(el, fleet_kw=30.0).step(T0, _snaps(), force=True).over == {}
    ch = _guard(el, fleet_background_kw=20.0, fleet_kw=30.0).step(T0, _snaps(), force=True)
    assert ch.over == {"HV/MV": pytest.approx(6.0)}  # 16 kW of sites + 20 kW outside the fleet
