"""The guard's extra discharge of a DR-reserved battery keeps the reservation's energy to the period's end.

The demo's 17:00 event (docs/dr.md §7), reproduced in the twin: the planner kept the reserved
battery idle before the event, but at each plan the guard's step 4 (T_idx_77 over its limit) set it
to −5 kW for the whole period because its SoC was above the reservation's floor *then*; the offset
held to the next plan and took the battery under the floor (29.7 % at 16:45 → 20.0 % at 17:00
against the 20.5 % the event needs). These numbers are a 10 kWh battery's, by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud_controller.live.guard import FleetGuard
from cloud_controller.live.guard_reserve import reserved_value_min_kw, soc_now_pct
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot

P_S = 900.0
T = datetime(2030, 1, 15, 16, 45, tzinfo=UTC)  # a plan's period start, 15 min before the event
SITES = [
    SiteRef("a", 0, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0))),
    SiteRef("b", 1, (AssetRef("meter", "meter"), AssetRef("ev1", "ev", 11.0, None, 4.2))),
]


def _snaps(now: datetime, soc_a: float, p_bat_a: float) -> dict[str, SiteSnapshot]:
    return {
        "a": SiteSnapshot(
            "a",
            "online",
            1.0 + p_bat_a,
            {"bat1/p_kw": p_bat_a, "bat1/soc_pct": soc_a},
            last_seen=now,
            measured_at=now,
        ),
        # b: an EV at its guaranteed 4.2 kW already (capped by the plan), 20 kW of house: far over
        "b": SiteSnapshot("b", "online", 24.2, {"ev1/p_kw": 4.2}, last_seen=now, measured_at=now),
    }


def _guard(floor_pct: float | None) -> FleetGuard:
    g = FleetGuard(SITES, limit_kw=10.0, period_s=P_S, battery_control="setpoint")
    g.caps.add(("b", "ev1"))
    g.on_plan(T, {"a": 0.0}, set(), {})  # the plan keeps the reserved battery idle before the event
    if floor_pct is not None:
        g.set_reserved_floors({"a": floor_pct}, eta_d=0.95)
    return g


def test_the_most_a_reserved_battery_may_discharge_to_the_periods_end() -> None:
    # 30 % of 10 kWh, floor 20 %: 1 kWh of cells above it, × 0.95 over the 0.25 h left = 3.8 kW AC
    assert reserved_value_min_kw(30.0, 20.0, 10.0, 0.95, 0.25, base_kw=0.0, held=False) == pytest.approx(-3.8)
    # the plan's own discharge counts against it; a plan discharging more is not cut by it
    assert reserved_value_min_kw(30.0, 20.0, 10.0, 0.95, 0.25, base_kw=-4.5, held=False) == pytest.approx(
        -4.5
    )
    # held by the request: the DR setpoint's energy is in the floor already, only the extra counts
    assert reserved_value_min_kw(30.0, 20.0, 10.0, 0.95, 0.25, base_kw=-4.0, held=True) == pytest.approx(-7.8)
    # under the floor: nothing beyond the plan's value
    assert reserved_value_min_kw(19.0, 20.0, 10.0, 0.95, 0.25, base_kw=1.0, held=False) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="eta_d"):
        reserved_value_min_kw(30.0, 20.0, 10.0, 0.0, 0.25, base_kw=0.0, held=False)


def test_the_extra_discharge_is_capped_by_the_energy_above_the_reservations_floor() -> None:
    g = _guard(floor_pct=20.0)
    changes = g.step(T, _snaps(T, 30.0, 0.0), force=True)
    assert "hvmv" in changes.over  # 25 kW against 10: every step of the guard is used
    # not −5 kW (its rating) to 17:00, which would end at 20 − 2.3 = 16.8 % (−5 × 0.25 / 0.95 kWh)
    assert changes.battery_kw["a"] == pytest.approx(-3.8)


def test_an_unreserved_battery_still_gives_its_rating() -> None:
    g = _guard(floor_pct=None)
    assert g.step(T, _snaps(T, 30.0, 0.0), force=True).battery_kw["a"] == pytest.approx(-5.0)


def test_an_offset_that_would_cross_the_floor_is_pulled_back_while_the_limit_is_still_over() -> None:
    g = _guard(floor_pct=20.0)
    g.step(T, _snaps(T, 30.0, 0.0), force=True)
    # 9 min in, the SoC fell faster than planned (21 %): 0.1 kWh × 0.95 over the 0.1 h left = 0.95 kW
    now = T + timedelta(minutes=9)
    changes = g.step(now, _snaps(now, 21.0, -3.8))
    assert "hvmv" in changes.over
    assert changes.battery_kw["a"] == pytest.approx(-0.95)
    assert g.battery_value("a") == pytest.approx(-0.95) and changes.dr_overrides == set()


def test_the_soc_read_a_minute_ago_is_carried_forward_by_the_measured_discharge() -> None:
    # −3.8 kW for 60 s from 10 kWh at η 0.95: 3.8 / 60 / 0.95 = 0.0667 kWh, 0.667 points; a charge is not counted
    assert soc_now_pct(21.0, -3.8, 60.0, 10.0, 0.95) == pytest.approx(20.3333, abs=1e-4)
    assert soc_now_pct(21.0, 2.0, 60.0, 10.0, 0.95) == 21.0
    g = _guard(floor_pct=20.0)
    g.step(T, _snaps(T, 30.0, 0.0), force=True)
    now = T + timedelta(minutes=9)
    # the read is from 8 min in: 20.333 % now, 0.0333 kWh × 0.95 over the 0.1 h left = 0.3167 kW (not 0.95)
    changes = g.step(now, _snaps(now - timedelta(minutes=1), 21.0, -3.8))
    assert changes.battery_kw["a"] == pytest.approx(-0.31667, abs=1e-4)
