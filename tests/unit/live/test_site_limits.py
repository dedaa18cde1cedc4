"""A site's connection limits as the controller sees them, and the per-interval battery bounds they give."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from cloud_controller.live.site_limits import (
    BatteryNow,
    SentCapLog,
    SiteLimits,
    StepBounds,
    clamp_battery_values,
    sent_caps,
    shortfalls,
    site_limits,
    step_bounds,
)
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
from cloud_controller.registry import load_registry
from protocols.errors import ConfigError
from protocols.messages import Command

NOW = datetime(2030, 1, 15, 17, tzinfo=UTC)
STARTS = [NOW + timedelta(minutes=15 * k) for k in range(8)]
DT_H = 0.25
ETA = 0.95


def _limits(imp: float, exp: float = np.inf, t: int = 8) -> SiteLimits:
    return SiteLimits(np.full(t, imp), np.full(t, exp), ("import test",) * t, ("export test",) * t)


def _bounds(
    base: list[float], lim: SiteLimits, e_now: float, e_min: float = 0.5, e_max: float = 10.0
) -> StepBounds:
    return step_bounds(
        np.asarray(base), lim, BatteryNow(5.0, e_now, e_min, e_max), eta_c=ETA, eta_d=ETA, dt_h=DT_H
    )


def _site(**kw: float) -> SiteRef:
    return SiteRef("b1", 0, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0)), **kw)


def test_charge_is_held_to_the_import_headroom_and_discharge_to_the_export_headroom() -> None:
    b = _bounds([3.0, 4.5, 6.0, -2.0, -7.0, 0.0, 0.0, 0.0], _limits(5.0, 4.0), e_now=5.0)
    assert b.ch_max_kw[:5].tolist() == pytest.approx([2.0, 0.5, 0.0, 5.0, 5.0])  # 5 - base, 0..5
    assert b.dis_max_kw[:5].tolist() == pytest.approx([5.0, 5.0, 5.0, 2.0, 0.0])  # base + 4, 0..5
    assert b.dis_min_kw[:5].tolist() == pytest.approx([0.0, 0.0, 1.0, 0.0, 0.0])  # 6 - 5 at t=2


def test_a_peak_it_can_cover_gets_its_discharge_and_an_energy_floor_before_it() -> None:
    # 3 kW house, 8 kW for the last two intervals: 2 x 3 kW x 0.25 h / 0.95 = 1.58 kWh to keep
    base = [3.0] * 6 + [8.0, 8.0]
    b = _bounds(base, _limits(5.0), e_now=5.0)
    assert b.dis_min_kw.tolist() == pytest.approx([0.0] * 6 + [3.0, 3.0])
    need_after_5 = 0.5 + 2 * 3.0 * DT_H / ETA
    assert b.e_min_kwh[5] == pytest.approx(need_after_5)
    assert b.e_min_kwh[6] == pytest.approx(0.5 + 3.0 * DT_H / ETA)
    assert b.e_min_kwh[7] == pytest.approx(0.5)
    # charging in the headroom (2 kW x 0.25 h x 0.95 per interval) lowers the floor further back
    assert b.e_min_kwh[4] == pytest.approx(max(0.5, need_after_5 - 2.0 * DT_H * ETA))


def test_an_empty_battery_is_floored_to_charge_before_the_peak_as_far_as_it_can() -> None:
    # empty (0.5 = reserve); two intervals of 2 kW headroom give 0.95 kWh; the peak wants 1.58
    base = [3.0, 3.0, 8.0, 8.0, 3.0, 3.0, 3.0, 3.0]
    b = _bounds(base, _limits(5.0), e_now=0.5)
    reach = [0.5 + 2.0 * DT_H * ETA, 0.5 + 2 * 2.0 * DT_H * ETA]
    assert b.e_min_kwh[:2].tolist() == pytest.approx(reach)  # charge at every chance
    # the forced discharge is what that energy holds: 0.95 kWh x 0.95 / 0.25 h = 3.61 kW-intervals
    assert b.dis_min_kw[2] == pytest.approx(3.0)
    assert b.dis_min_kw[3] == pytest.approx((reach[1] - 0.5) * ETA / DT_H - 3.0)
    # the LP can always meet them: the floors are reachable and discharge stays within its range
    e = 0.5
    for t in range(8):
        e = e + ETA * DT_H * b.ch_max_kw[t] * (b.dis_min_kw[t] == 0) - DT_H / ETA * b.dis_min_kw[t]
        e = min(e, 10.0)
        assert e >= b.e_min_kwh[t] - 1e-9
    assert (b.dis_min_kw <= b.dis_max_kw).all()


def test_limits_come_from_registry_telemetry_and_a_sent_cap_the_tightest_winning() -> None:
    snap = SiteSnapshot(
        "b1", "online", points={"meter/limit_import_max_kw": 7.0, "meter/limit_export_max_kw": 3.0}
    )
    cap_cmd = Command.model_validate(
        {
            "site": "b1",
            "ts": NOW,
            "cmd_id": "cap-1",
            "asset": "meter",
            "kind": "site_import_max_kw",
            "value": 4.0,
            "valid_from": NOW,
            "valid_until": NOW + timedelta(minutes=40),
        }
    )
    caps = sent_caps([cap_cmd], NOW)
    assert set(caps) == {"b1"}
    lim = site_limits(_site(import_max_kw=6.0, export_max_kw=5.0), snap, caps["b1"], STARTS)
    assert lim is not None
    # the cap holds in the intervals starting before 17:40 (three), then the registry's 6 kW
    assert lim.import_max_kw.tolist() == [4.0, 4.0, 4.0] + [6.0] * 5
    assert lim.import_source[0] == "DSO cap 4 kW (command cap-1)"
    assert lim.import_source[5].startswith("registry grid_connection import_max_kw 6")
    assert lim.export_max_kw.tolist() == [3.0] * 8
    assert lim.export_source[0] == "agent's limit_export_max_kw 3 kW"
    # an expired cap is no cap; a later cap replaces an earlier one (the agent holds the last);
    # a site without any limit has none
    assert sent_caps([cap_cmd], NOW + timedelta(hours=1)) == {}
    later = cap_cmd.model_copy(update={"cmd_id": "cap-2", "ts": NOW + timedelta(minutes=1), "value": 6.0})
    assert sent_caps([later, cap_cmd], NOW)["b1"].cmd_id == "cap-2"
    log = SentCapLog(max_kept=1)
    log.note([cap_cmd, later])
    assert [c.cmd_id for c in log.commands] == ["cap-2"] and log.valid(NOW)["b1"].import_max_kw == 6.0
    assert site_limits(_site(), SiteSnapshot("b1", "online"), None, STARTS) is None


def test_a_negative_limit_in_telemetry_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    # the logger's own level: an earlier test may have left the root logger above WARNING
    caplog.set_level(logging.WARNING, logger="cloud_controller.live.site_limits")
    snap = SiteSnapshot("b1", "online", points={"meter/limit_import_max_kw": -1.0})
    assert site_limits(_site(), snap, None, STARTS) is None
    assert "limit_import_max_kw = -1.0 is no limit" in caplog.text


def test_battery_values_are_clamped_as_the_edge_would_hold_them() -> None:
    sites = [_site(), SiteRef("b2", 1, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0)))]
    lim = {0: _limits(5.0, 2.0), 1: _limits(5.0, 2.0)}
    base = np.array([[4.0, 4.0]])
    got = clamp_battery_values({"b1": 3.0, "b2": 7.0}, sites, lim, base, grid_target={"b2"})
    assert got == {"b1": pytest.approx(1.0), "b2": 5.0}  # charge 5 - 4; grid target at the import max
    got = clamp_battery_values({"b1": -9.0, "b2": -3.0}, sites, lim, base, grid_target={"b2"})
    assert got == {"b1": pytest.approx(-6.0), "b2": -2.0}  # discharge to -2 kW export; target at -2


def test_shortfalls_name_site_side_excess_and_source() -> None:
    sites = [_site()]
    p = np.array([[4.0], [6.5], [7.0], [-4.0]] + [[0.0]] * 4)
    (imp, exp) = shortfalls(sites, {0: _limits(5.0, 3.0)}, p, NOW, 900.0)
    assert (imp.site, imp.side, imp.limit_kw, imp.max_excess_kw, imp.intervals) == (
        "b1",
        "import",
        5.0,
        2.0,
        2,
    )
    assert imp.first_start == NOW + timedelta(minutes=15)
    assert imp.source == "import test"
    assert (exp.side, exp.max_excess_kw, exp.intervals) == ("export", 1.0, 1)


def test_registry_grid_connection_is_read_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(
        "sites:\n  - site: b1\n    region_site: 0\n    grid_connection: {import_max_kw: 11, export_max_kw: 7.5}\n"
    )
    (site,) = load_registry(path).sites
    assert (site.import_max_kw, site.export_max_kw) == (11.0, 7.5)
    path.write_text("sites:\n  - site: b1\n    region_site: 0\n    grid_connection: {import_max_kw: 0}\n")
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    assert (err.value.file, err.value.key) == (str(path), "sites[0].grid_connection.import_max_kw")
    assert "> 0" in err.value.reason
    path.write_text("sites:\n  - site: b1\n    region_site: 0\n    grid_connection: {import_kw: 5}\n")
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    assert err.value.key == "sites[0].grid_connection.import_kw"
