"""Building: p_net composition, seeded determinism, profile-driven behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from simulators.building import Building, build
from simulators.fleet import AssetMix, draw_specs, fleet_profiles

START = datetime(2030, 1, 15, tzinfo=UTC)


def _fleet(n: int, seed: int, days: float = 2.0) -> list[Building]:
    specs = draw_specs(n, seed=seed)
    profiles = fleet_profiles(specs, start=START, seed=seed, days=days)
    return [build(s, p) for s, p in zip(specs, profiles, strict=True)]


def _run(buildings: list[Building], hours: float, dt_s: float = 300.0) -> np.ndarray:
    out = []
    now = START
    for _ in range(int(hours * 3600 / dt_s)):
        now += timedelta(seconds=dt_s)
        out.append([b.step(now, dt_s) for b in buildings])
    return np.array(out)


def test_asset_mix_matches_the_configured_shares() -> None:
    specs = draw_specs(1000, seed=5)
    pv = sum(s.pv_kwp is not None for s in specs) / 1000
    bat = sum(s.battery_kwh is not None for s in specs) / max(1, sum(s.pv_kwp is not None for s in specs))
    ev = sum(s.ev_kw is not None for s in specs) / 1000
    hp = sum(s.hp_kw is not None for s in specs) / 1000
    assert list(np.round([pv, bat, ev, hp], 2)) == pytest.approx([0.5, 0.6, 0.4, 0.4], abs=0.06)
    assert all(s.battery_kwh is None or s.pv_kwp is not None for s in specs)
    assert [s.site for s in specs[:3]] == ["b001", "b002", "b003"]
    none = draw_specs(20, seed=1, mix=AssetMix(pv_share=0.0, ev_share=0.0, hp_share=0.0))
    assert all(s.pv_kwp is None and s.ev_kw is None and s.hp_kw is None for s in none)


def test_same_seed_same_series_other_seed_other_series() -> None:
    a = _run(_fleet(6, seed=11), hours=12)
    b = _run(_fleet(6, seed=11), hours=12)
    c = _run(_fleet(6, seed=12), hours=12)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_p_net_is_the_sum_of_the_assets() -> None:
    for b in _fleet(10, seed=3):
        now = START + timedelta(hours=11)
        b.step(now, 60.0)
        parts = b.p_load_kw + b.zone.p_fan_kw
        for dev in (b.pv, b.battery, b.ev, b.hp):
            if dev is not None:
                parts += dev.p_kw
        assert b.p_net_kw == pytest.approx(parts)
        assert b.meter.p_kw == b.p_net_kw
        if b.pv is not None:
            assert b.pv.p_kw <= 0.0


def test_january_evening_shows_a_load_peak_and_no_pv_at_night() -> None:
    buildings = _fleet(30, seed=2)
    series = _run(buildings, hours=24, dt_s=900.0)
    total = series.sum(axis=1)
    hours_utc = (np.arange(len(total)) + 1) * 0.25
    evening = total[(hours_utc >= 16.5) & (hours_utc < 19.5)].mean()
    night = total[(hours_utc >= 1.0) & (hours_utc < 4.0)].mean()
    assert evening > 1.5 * night
    pv_night = [b.pv for b in buildings if b.pv is not None]
    assert pv_night and all(p.p_kw == 0.0 for p in pv_night)  # last step: 24:00 UTC


def test_self_consumption_battery_absorbs_pv_surplus() -> None:
    specs = [s for s in draw_specs(40, seed=4) if s.battery_kwh and s.pv_kwp][:1]
    prof = fleet_profiles(specs, start=datetime(2030, 6, 20, tzinfo=UTC), seed=4, days=1)
    b = build(specs[0], prof[0])
    b.battery.soc_pct = 10.0  # type: ignore[union-attr]
    now = datetime(2030, 6, 20, 10, tzinfo=UTC)
    b.step(now, 60.0)
    assert b.pv is not None and b.pv.p_kw < -1.0
    assert b.battery is not None and b.battery.p_kw > 0.5
    assert abs(b.p_net_kw) < 0.05  # battery follows the meter
    b.battery.remote = True
    b.battery.setpoint_kw = 0.0
    b.step(now + timedelta(minutes=1), 60.0)
    assert b.battery.p_kw == 0.0 and b.p_net_kw < -0.5


def test_grid_target_mode_holds_the_site_power_within_battery_limits() -> None:
    specs = [s for s in draw_specs(40, seed=4) if s.battery_kwh][:1]
    prof = fleet_profiles(specs, start=START, seed=4, days=1)
    b = build(specs[0], prof[0])
    assert b.battery is not None
    b.battery.soc_pct = 60.0
    now = START + timedelta(hours=18)
    b.step(now, 60.0)  # self-consumption: target 0
    assert abs(b.p_net_kw) < 0.05
    b.battery.grid_target_kw = 1.5  # the site may draw 1.5 kW: the battery covers the rest
    b.step(now + timedelta(minutes=1), 60.0)
    load_kw = b.p_net_kw - b.battery.p_kw
    if load_kw > 1.5:
        assert b.p_net_kw == pytest.approx(1.5, abs=1e-6)
    target_kw = load_kw + 3.0  # above the load: the battery charges the difference
    b.battery.grid_target_kw = target_kw
    b.step(now + timedelta(minutes=2), 60.0)
    assert b.battery.p_kw > 0
    saturated = b.battery.p_kw == pytest.approx(b.battery.p_charge_max_kw)
    assert saturated or b.p_net_kw == pytest.approx(target_kw, abs=1e-6)
