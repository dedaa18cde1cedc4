"""The fleet guard (cloud_controller/live/guard.py): pure logic on made-up measurements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud_controller.live.guard import FleetGuard
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot

T0 = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)  # an interval start
PERIOD_S = 900.0


def _site(name: str, *, battery: bool = False, ev: bool = False, hp: bool = False) -> SiteRef:
    assets = [AssetRef("meter", "meter")]
    if battery:
        assets.append(AssetRef("bat1", "battery", p_nominal_kw=5.0, capacity_kwh=13.5))
    if ev:
        assets.append(AssetRef("ev1", "ev", p_nominal_kw=11.0, p_guaranteed_min_kw=4.2))
    if hp:
        assets.append(AssetRef("hp1", "hp", p_nominal_kw=6.0, p_guaranteed_min_kw=4.2))
    return SiteRef(site=name, region_site=0, assets=tuple(assets))


def _snap(site: str, at: datetime, p_net_kw: float, **points: float) -> SiteSnapshot:
    return SiteSnapshot(
        site=site,
        mode="online",
        p_net_kw=p_net_kw,
        points={k.replace("__", "/"): v for k, v in points.items()},
        last_seen=at,
        measured_at=at,
    )


def _guard(sites: list[SiteRef], limit_kw: float, control: str = "setpoint") -> FleetGuard:
    return FleetGuard(sites, limit_kw=limit_kw, period_s=PERIOD_S, battery_control=control)


def test_excess_stops_charging_first_then_caps_the_running_ev() -> None:
    sites = [_site("a", battery=True), _site("b", ev=True), _site("c", ev=True)]
    g = _guard(sites, limit_kw=10.0)
    g.on_plan(T0, {"a": 3.0}, set(), {})
    snaps = {
        "a": _snap("a", T0, 4.0, bat1__p_kw=3.0, bat1__soc_pct=50.0),
        "b": _snap("b", T0, 12.0, ev1__p_kw=11.0),
        "c": _snap("c", T0, 0.5, ev1__p_kw=0.0),
    }
    ch = g.step(T0, snaps, force=True)  # 16.5 kW against 10 kW
    assert ch.battery_kw == {"a": pytest.approx(0.0)}  # the 3 kW of charging go first
    assert ("b", "ev1") in ch.capped  # then the running charger: 11 -> 4.2 kW (6.8 kW)
    assert ("c", "ev1") not in ch.capped  # 3 + 6.8 covered the 6.5 kW: the idle one stays free


def test_when_caps_are_not_enough_idle_chargers_are_capped_and_batteries_discharge() -> None:
    sites = [_site("a", battery=True), _site("b", ev=True), _site("c", ev=True)]
    g = _guard(sites, limit_kw=5.0)
    g.on_plan(T0, {"a": 0.0}, set(), {})
    snaps = {
        "a": _snap("a", T0, 2.0, bat1__p_kw=0.0, bat1__soc_pct=50.0),
        "b": _snap("b", T0, 12.0, ev1__p_kw=11.0),
        "c": _snap("c", T0, 1.0, ev1__p_kw=0.0),
    }
    ch = g.step(T0, snaps, force=True)  # 15 kW against 5: the cap saves 6.8, 3.2 kW remain
    assert ch.capped == {("b", "ev1"), ("c", "ev1")}
    assert ch.battery_kw["a"] == pytest.approx(-3.2)
    assert g.battery_value("a") == pytest.approx(-3.2)


def test_an_empty_battery_is_not_asked_to_discharge() -> None:
    g = _guard([_site("a", battery=True)], limit_kw=1.0)
    g.on_plan(T0, {"a": 0.0}, set(), {})
    ch = g.step(T0, {"a": _snap("a", T0, 4.0, bat1__p_kw=0.0, bat1__soc_pct=5.0)}, force=True)
    assert not ch


def test_energy_drawn_early_in_the_interval_tightens_the_rest() -> None:
    """Half the interval at 20 kW against a 10 kW limit leaves 0 kW for the rest: a fleet at
    8 kW (under the limit) must still be reduced."""
    g = _guard([_site("a", battery=True)], limit_kw=10.0)
    g.on_plan(T0, {"a": 0.0}, set(), {})
    g.step(T0, {"a": _snap("a", T0, 20.0, bat1__p_kw=0.0, bat1__soc_pct=50.0)})
    half = T0 + timedelta(seconds=PERIOD_S / 2)
    ch = g.step(half, {"a": _snap("a", half, 8.0, bat1__p_kw=0.0, bat1__soc_pct=50.0)})
    assert ch.battery_kw["a"] == pytest.approx(-5.0)  # all it has
    # A new interval starts from a full budget again.
    nxt = T0 + timedelta(seconds=PERIOD_S)
    g.on_plan(nxt, {"a": 0.0}, set(), {})
    ch = g.step(nxt, {"a": _snap("a", nxt, 8.0, bat1__p_kw=0.0, bat1__soc_pct=50.0)}, force=True)
    assert not ch


def test_no_new_measurement_no_second_action_and_pending_effects_count() -> None:
    sites = [_site("b", ev=True), _site("c", ev=True)]
    g = _guard(sites, limit_kw=16.0)
    g.on_plan(T0, {}, set(), {})
    snaps = {"b": _snap("b", T0, 11.0, ev1__p_kw=11.0), "c": _snap("c", T0, 11.0, ev1__p_kw=11.0)}
    first = g.step(T0, snaps, force=True)  # 22 kW against 16: one cap (6.8 kW) is enough
    assert len(first.capped) == 1
    later = T0 + timedelta(seconds=30)
    assert not g.step(later, snaps)  # the same measurements again: nothing new to act on
    # A newer measurement from the other site only: the capped site still shows 11 kW, but
    # its cap is pending, so the guard does not cap the second charger too.
    snaps["c"] = _snap("c", later, 11.0, ev1__p_kw=11.0)
    assert not g.step(later, snaps).capped


def test_release_is_one_device_per_step_and_only_with_room_for_its_full_power() -> None:
    sites = [_site("b", ev=True), _site("c", ev=True), _site("d", hp=True)]
    g = _guard(sites, limit_kw=30.0)
    g.on_plan(T0, {}, set(), {})
    g.caps = {("b", "ev1"), ("c", "ev1"), ("d", "hp1")}
    t = T0 + timedelta(minutes=1)
    snaps = {
        "b": _snap("b", t, 4.2, ev1__p_kw=4.2),
        "c": _snap("c", t, 4.2, ev1__p_kw=4.2),
        "d": _snap("d", t, 4.2, hp1__p_kw=4.2),
    }
    ch = g.step(t, snaps)  # 12.6 kW, 17.4 kW of room
    assert ch.released == {("d", "hp1")}  # heat pumps first, one per step
    t2 = t + timedelta(minutes=2)
    snaps = {
        k: _snap(k, t2, v.p_net_kw or 0.0, **{kk.replace("/", "__"): vv for kk, vv in v.points.items()})
        for k, v in snaps.items()
    }
    ch = g.step(t2, snaps)  # the released heat pump's 1.8 kW is pending: room for one charger
    assert len(ch.released) == 1 and next(iter(ch.released))[1] == "ev1"
    g2 = _guard(sites, limit_kw=13.0)  # 0.4 kW of room: nothing released
    g2.on_plan(T0, {}, set(), {})
    g2.caps = {("b", "ev1")}
    assert not g2.step(t, snaps).released


def test_excluded_sites_are_neither_capped_nor_corrected() -> None:
    sites = [_site("a", battery=True, ev=True)]
    g = _guard(sites, limit_kw=1.0)
    g.on_plan(T0, {"a": 0.0}, {"a"}, {})
    ch = g.step(
        T0, {"a": _snap("a", T0, 15.0, bat1__p_kw=0.0, bat1__soc_pct=50.0, ev1__p_kw=11.0)}, force=True
    )
    assert not ch


def test_grid_target_mode_offsets_the_site_target() -> None:
    g = _guard([_site("a", battery=True)], limit_kw=2.0, control="grid_target")
    g.on_plan(T0, {"a": 3.0}, set(), {})  # the plan: hold the site at 3 kW import
    ch = g.step(T0, {"a": _snap("a", T0, 3.0, bat1__p_kw=0.0, bat1__soc_pct=50.0)}, force=True)
    assert ch.battery_kw["a"] == pytest.approx(2.0)  # the target moves down by the excess


def test_a_site_that_went_offline_since_the_plan_gets_no_corrections() -> None:
    g = _guard([_site("a", battery=True, ev=True)], limit_kw=1.0)
    g.on_plan(T0, {"a": 0.0}, set(), {})
    snap = _snap("a", T0, 15.0, bat1__p_kw=0.0, bat1__soc_pct=50.0, ev1__p_kw=11.0)
    snap.mode = "offline"
    assert not g.step(T0, {"a": snap}, force=True)
    snap.mode = "online"
    assert g.step(T0, {"a": snap}, force=True).capped == {("a", "ev1")}
