"""The fleet guard per element: a station over its limit is relieved by its own sites, by name."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from cloud_controller.live.guard import FleetGuard, GuardElement
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot

T0 = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
SITES = [
    SiteRef("a", 0, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 13.5))),
    SiteRef("b", 1, (AssetRef("meter", "meter"), AssetRef("ev1", "ev", 11.0, p_guaranteed_min_kw=4.2))),
    SiteRef("c", 2, (AssetRef("meter", "meter"), AssetRef("ev1", "ev", 11.0, p_guaranteed_min_kw=4.2))),
]
S1 = GuardElement("T_idx_118", frozenset({"a", "b"}), 10.0)
S2 = GuardElement("T_idx_80", frozenset({"c"}), 630.0)


def _snap(site: str, at: datetime, p_net_kw: float, **points: float) -> SiteSnapshot:
    pts = {k.replace("__", "/"): v for k, v in points.items()}
    return SiteSnapshot(site=site, mode="online", p_net_kw=p_net_kw, points=pts, last_seen=at, measured_at=at)


def _guard(fleet_kw: float) -> FleetGuard:
    g = FleetGuard(SITES, limit_kw=fleet_kw, period_s=900.0, battery_control="setpoint", fleet_name="HV/MV")
    g.set_elements([S1, S2])
    g.on_plan(T0, {"a": 3.0}, set(), {})
    return g


def test_a_station_over_its_limit_is_relieved_by_its_own_sites_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    g = _guard(fleet_kw=100.0)  # the fleet's 28 kW are far under the HV/MV limit
    snaps = {
        "a": _snap("a", T0, 4.0, bat1__p_kw=3.0, bat1__soc_pct=50.0),
        "b": _snap("b", T0, 12.0, ev1__p_kw=11.0),
        "c": _snap("c", T0, 12.0, ev1__p_kw=11.0),
    }
    with caplog.at_level(logging.INFO, logger="cloud_controller.live.guard"):
        ch = g.step(T0, snaps, force=True)  # the station: 16 kW against 10 kW
    assert ch.over == {"T_idx_118": pytest.approx(6.0)}
    assert ch.battery_kw == {"a": pytest.approx(0.0)}  # its battery stops charging (3 kW)
    assert ch.capped == {("b", "ev1")}  # then its running charger (6.8 kW); c's, below T_idx_80, runs on
    assert "T_idx_118 projected 6.0 kW over its 10.0 kW limit" in caplog.text
    # a minute later (16 kW drawn for it) the station may still average (2.5 - 16/60) / (14/60)
    # = 9.57 kW: 3.37 kW of room over its 6.2, 2.37 after the 1 kW release margin. The battery
    # gets those back; the charger's 6.8 kW do not fit, although the fleet has 70 kW of room
    t1 = T0 + timedelta(minutes=1)
    snaps = {
        "a": _snap("a", t1, 1.0, bat1__p_kw=0.0, bat1__soc_pct=50.0),
        "b": _snap("b", t1, 5.2, ev1__p_kw=4.2),
        "c": _snap("c", t1, 12.0, ev1__p_kw=11.0),
    }
    ch = g.step(t1, snaps)
    assert ch.over == {} and ch.released == set()
    assert ch.battery_kw["a"] == pytest.approx((2.5 - 16.0 / 60.0) / (14.0 / 60.0) - 6.2 - 1.0)


def test_the_fleet_over_its_limit_is_relieved_by_every_site_under_its_name() -> None:
    g = _guard(fleet_kw=20.0)
    snaps = {
        "a": _snap("a", T0, 1.0, bat1__p_kw=0.0, bat1__soc_pct=50.0),
        "b": _snap("b", T0, 5.0, ev1__p_kw=4.0),  # the station: 6 kW, under its 10
        "c": _snap("c", T0, 23.0, ev1__p_kw=11.0),
    }
    ch = g.step(T0, snaps, force=True)  # 29 kW against 20 kW
    assert ch.over == {"HV/MV": pytest.approx(9.0)}
    assert ("c", "ev1") in ch.capped
