"""DR reservations in the planner's battery rows: fixed injections and SOC floors, by hand (live/reservations.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud_controller.live.guard import FleetGuard
from cloud_controller.live.reservations import (
    BatteryWindow,
    Reservation,
    ReservedSteps,
    active_setpoints,
    default_steps,
    period_means_kw,
    reserve_steps,
    soc_floor_kwh,
)
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot

T0 = datetime(2030, 1, 15, 16, tzinfo=UTC)
P_S = 900.0
ETA = 0.95
E_LO = 0.5  # 5 % of 10 kWh
STARTS = [T0 + timedelta(seconds=P_S * t) for t in range(12)]  # 16:00 .. 18:45


def _res(start: datetime, kw: list[float], minutes: int = 15, rid: str = "r1") -> Reservation:
    bounds = tuple(
        (start + timedelta(minutes=minutes * k), start + timedelta(minutes=minutes * (k + 1)))
        for k in range(len(kw))
    )
    return Reservation(rid, "b1", "bat1", bounds, tuple(kw), held_from=start - timedelta(seconds=2))


def _reserve(res: list[Reservation], e_now_kwh: float, p_max_kw: float = 5.0) -> ReservedSteps:
    p_max = np.array([p_max_kw])
    return reserve_steps(
        default_steps(p_max, np.array([E_LO]), len(STARTS)),
        res,
        {("b1", "bat1"): 0},
        BatteryWindow(np.array([e_now_kwh]), np.array([E_LO]), np.array([10.0]), ETA, ETA),
        starts=STARTS,
        period_s=P_S,
    )


EVENT = T0 + timedelta(hours=1)  # 17:00-18:00, 4 x 15 min at -4 kW: 4 kWh AC


def test_the_soc_floor_is_the_selected_energy_over_eta_plus_the_floor() -> None:
    assert soc_floor_kwh(4.0, 0.95, 0.5) == pytest.approx(4.0 / 0.95 + 0.5)  # 4.7105 kWh
    assert soc_floor_kwh(0.0, 0.95, 0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="eta_d"):
        soc_floor_kwh(1.0, 0.0, 0.5)


def test_a_full_battery_keeps_the_events_energy_before_it_and_its_setpoint_during_it() -> None:
    out = _reserve([_res(EVENT, [-4.0] * 4)], e_now_kwh=6.0)
    s = out.steps
    # before the event (16:00-17:00): every period ends with at least 4 / 0.95 + 0.5 kWh
    assert s.e_min_kwh[:4, 0] == pytest.approx([4.0 / ETA + E_LO] * 4)
    # during it: the floor falls by what each period gives; the last period ends on the battery's own floor
    assert s.e_min_kwh[4:8, 0] == pytest.approx([3.0 / ETA + E_LO, 2.0 / ETA + E_LO, 1.0 / ETA + E_LO, E_LO])
    assert s.e_min_kwh[8:, 0] == pytest.approx([E_LO] * 4)
    # the fixed injection: discharge exactly 4 kW, no charging, in every period of the event
    assert s.dis_min_kw[4:8, 0] == pytest.approx([4.0] * 4)
    assert s.dis_max_kw[4:8, 0] == pytest.approx([4.0] * 4)
    assert s.ch_max_kw[4:8, 0] == pytest.approx([0.0] * 4)
    # outside it the battery is free again
    assert s.dis_min_kw[:4, 0] == pytest.approx([0.0] * 4) and s.dis_max_kw[8:, 0] == pytest.approx([5.0] * 4)
    assert out.short_kwh == {} and out.applied == {("b1", "bat1")}


def test_an_empty_battery_is_made_to_charge_at_full_power_as_far_as_it_can() -> None:
    # 1 kWh now, 5 kW x 0.95 x 0.25 h = 1.1875 kWh more per period: 2.1875, 3.375, 4.5625, then the floor 4.7105
    out = _reserve([_res(EVENT, [-4.0] * 4)], e_now_kwh=1.0)
    assert out.steps.e_min_kwh[:4, 0] == pytest.approx([2.1875, 3.375, 4.5625, 4.0 / ETA + E_LO])
    assert out.short_kwh == {}


def test_a_discharge_the_cells_cannot_give_is_cut_and_reported() -> None:
    # the event starts now with 1 kWh in the cells: 0.5 kWh above the floor = 1.9 kW for 15 min, then nothing
    out = _reserve([_res(T0, [-4.0] * 4)], e_now_kwh=1.0)
    assert out.steps.dis_min_kw[:4, 0] == pytest.approx([1.9, 0.0, 0.0, 0.0])
    assert out.steps.dis_max_kw[:4, 0] == pytest.approx([1.9, 0.0, 0.0, 0.0])
    assert out.short_kwh == {"r1": {"b1": pytest.approx((4.0 - 1.9) * 0.25 + 3 * 1.0)}}  # 3.525 kWh


def test_a_period_the_event_covers_in_part_discharges_at_least_its_share() -> None:
    # -3 kW over 17:05-17:35: 10 of the 17:00 period's 15 min (2 kW), all of 17:15's, 5 of 17:30's (1 kW)
    res = _res(EVENT + timedelta(minutes=5), [-3.0, -3.0], minutes=15)
    mean, share = period_means_kw(res, STARTS, P_S)
    assert mean[4:7] == pytest.approx([-2.0, -3.0, -1.0]) and share[4:7] == pytest.approx([2 / 3, 1.0, 1 / 3])
    s = _reserve([res], e_now_kwh=8.0).steps
    assert s.dis_min_kw[4:7, 0] == pytest.approx([2.0, 3.0, 1.0])
    assert s.dis_max_kw[4:7, 0] == pytest.approx([5.0, 3.0, 5.0])  # only the covered period is fixed


def test_a_charging_setpoint_caps_the_charge_and_keeps_no_floor() -> None:
    s = _reserve([_res(EVENT, [2.0] * 4)], e_now_kwh=5.0).steps
    assert s.ch_max_kw[4:8, 0] == pytest.approx([2.0] * 4)
    assert s.dis_max_kw[4:8, 0] == pytest.approx([0.0] * 4)
    assert s.e_min_kwh[:, 0] == pytest.approx([E_LO] * 12)


def test_a_reservation_over_or_of_an_unknown_battery_changes_nothing() -> None:
    before = default_steps(np.array([5.0]), np.array([E_LO]), len(STARTS))
    over = _reserve([_res(T0 - timedelta(hours=2), [-4.0] * 4)], e_now_kwh=5.0)
    unknown = _reserve(
        [Reservation("r2", "zz", "bat1", ((EVENT, EVENT + timedelta(hours=1)),), (-4.0,), EVENT)], 5.0
    )
    for out in (over, unknown):
        assert out.applied == set()
        assert np.array_equal(out.steps.e_min_kwh, before.e_min_kwh)
        assert np.array_equal(out.steps.dis_min_kw, before.dis_min_kw)


def test_the_setpoint_in_force_counts_from_the_hold_to_the_events_end() -> None:
    res = _res(EVENT, [-4.0, -3.0])
    assert active_setpoints([res], EVENT - timedelta(seconds=3)) == {}
    assert active_setpoints([res], EVENT - timedelta(seconds=1)) == {"b1": -4.0}  # held: the first step's
    assert active_setpoints([res], EVENT + timedelta(minutes=20)) == {"b1": -3.0}
    assert active_setpoints([res], EVENT + timedelta(minutes=30)) == {}


def test_a_reservation_needs_one_setpoint_per_interval() -> None:
    with pytest.raises(ValueError, match="2 intervals for 1 setpoints"):
        Reservation("r", "b1", "bat1", ((T0, EVENT), (EVENT, EVENT + timedelta(hours=1))), (-1.0,), T0)


# -- wired: the live planner and the fleet guard -------------------------------------------------


def test_the_planner_keeps_a_reserved_battery_for_its_event_and_plans_its_setpoint_during_it() -> None:
    from tests.unit.grid.test_limits import cached_region
    from tests.unit.live.test_planner_site_limits import FREE, SITE, _DailyHistory, _planner, _snaps

    # b1's battery (10 kWh at 50 %) is selected for -4 kW over 18:00-19:00; site b0 peaks over its
    # 5 kW connection at 17:00-19:00, which b1 cannot help (a site limit is the site's own)
    planner = _planner(cached_region())
    now = datetime(2030, 1, 15, 17, tzinfo=UTC)
    event = now + timedelta(hours=1)
    asset = next(a.asset for a in FREE.assets if a.kind == "battery")
    res = Reservation("r1", FREE.site, asset, tuple(_res(event, [-4.0] * 4).bounds), (-4.0,) * 4, event)
    planner.set_reservations([res])
    planner.plan(now, _snaps(soc_pct=30.0), _DailyHistory(8.0, 17, 19))
    sched = planner.last_schedule
    assert sched is not None
    k = planner.bat_index[1]
    # 3 kWh now: the event needs 4 / 0.95 + 0.5 = 4.71 kWh at 18:00, so the battery charges first
    assert sched.e_bat_kwh[3, k] >= 4.0 / ETA + E_LO - 1e-6
    assert sched.p_bat_kw[4:8, k] == pytest.approx([-4.0] * 4, abs=1e-6)  # the fixed injection
    assert planner.last_reserved is not None and planner.last_reserved.short_kwh == {}
    # the guard's floor for b1 now: the event's 4 kWh / 0.95 + the plan's 5 % floor, of 10 kWh
    assert planner.dr.floors_pct(now) == {"b1": pytest.approx(100.0 * (4.0 / ETA + E_LO) / 10.0)}
    # without the reservation the LP has no reason to hold it at -4 kW then
    planner.set_reservations([])
    planner.plan(now, _snaps(soc_pct=30.0), _DailyHistory(8.0, 17, 19))
    assert planner.last_schedule is not None
    assert planner.last_schedule.p_bat_kw[4:8, k] != pytest.approx([-4.0] * 4, abs=1e-3)
    assert planner.last_reserved is None and SITE.site == "b0"


def _guard_sites() -> tuple[list[SiteRef], dict[str, SiteSnapshot]]:
    sites = [
        SiteRef("a", 0, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0))),
        SiteRef("b", 1, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0))),
    ]
    now = EVENT + timedelta(minutes=1)
    snaps = {
        # a: its battery on the DR setpoint (-4 kW) under a 3 kW house: -1 kW at the meter
        "a": SiteSnapshot(
            "a", "online", -1.0, {"bat1/p_kw": -4.0, "bat1/soc_pct": 60.0}, last_seen=now, measured_at=now
        ),
        "b": SiteSnapshot(
            "b", "online", 6.0, {"bat1/p_kw": 0.0, "bat1/soc_pct": 60.0}, last_seen=now, measured_at=now
        ),
    }
    return sites, snaps


def _dr_guard(limit_kw: float) -> FleetGuard:
    sites, _ = _guard_sites()
    g = FleetGuard(sites, limit_kw=limit_kw, period_s=P_S, battery_control="setpoint")
    # the plan (made before the event) had a charging at +2 kW; the DR request holds it at -4 kW
    g.on_plan(EVENT, {"a": 2.0, "b": 0.0}, set(), {})
    g.set_reserved(
        active_setpoints(
            [Reservation("r1", "a", "bat1", ((EVENT, EVENT + timedelta(hours=1)),), (-4.0,), EVENT)],
            EVENT + timedelta(minutes=1),
        )
    )
    return g


def test_the_guard_starts_from_the_dr_setpoint_and_leaves_it_under_the_limit() -> None:
    g = _dr_guard(limit_kw=20.0)
    _, snaps = _guard_sites()
    changes = g.step(EVENT + timedelta(minutes=1), snaps, force=True)
    assert changes.over == {} and "a" not in changes.battery_kw and changes.dr_overrides == set()
    assert g.battery_value("a") == pytest.approx(-4.0)  # not the plan's +2 kW
    assert g.dr_overrides == 0


def test_the_guard_overrides_a_reserved_battery_only_over_the_limit_and_counts_it() -> None:
    g = _dr_guard(limit_kw=1.0)  # 5 kW of sites against 1 kW
    _, snaps = _guard_sites()
    changes = g.step(EVENT + timedelta(minutes=1), snaps, force=True)
    # a minute in, the interval's 0.25 kWh spread over the 14 minutes left: 1.0714 kW allowed
    need = 5.0 - 1.0 * 900.0 / 840.0
    assert changes.over == {"hvmv": pytest.approx(need)}
    # both batteries discharge further, shared by what each has left (a: 1 kW of its 5, b: 5 kW)
    assert changes.battery_kw["a"] == pytest.approx(-4.0 - 1.0 * need / 6.0)
    assert changes.battery_kw["b"] == pytest.approx(-5.0 * need / 6.0)
    assert changes.dr_overrides == {"a"} and g.dr_overrides == 1


def test_the_guards_extra_discharge_stops_at_the_soc_a_reservation_keeps() -> None:
    g = _dr_guard(limit_kw=1.0)
    _, snaps = _guard_sites()
    g.set_reserved_floors({"a": 61.0})  # a holds 60 %: below what its event still needs
    changes = g.step(EVENT + timedelta(minutes=1), snaps, force=True)
    need = 5.0 - 1.0 * 900.0 / 840.0
    assert "a" not in changes.battery_kw and changes.dr_overrides == set()
    assert changes.battery_kw["b"] == pytest.approx(-min(need, 5.0))  # b alone gives what it can


def test_a_battery_still_charging_when_the_dr_command_goes_out_is_not_cut_against_it() -> None:
    # the plan pre-charged a at +4 kW for the reservation; at the hold the base becomes -4 kW: the
    # measured +4 kW is the old command's, expected to become -4 kW, so nothing is cut from the DR value
    sites, snaps = _guard_sites()
    now = EVENT + timedelta(seconds=30)  # 30 s into the interval: 12.41 kW allowed for the rest of it
    snaps["a"].points["bat1/p_kw"], snaps["a"].p_net_kw = 4.0, 7.0
    for snap in snaps.values():
        snap.measured_at = now  # measured as the command went out: it does not show it yet
    g = FleetGuard(sites, limit_kw=12.0, period_s=P_S, battery_control="setpoint")
    g.on_plan(now - timedelta(minutes=14), {"a": 4.0, "b": 0.0}, set(), {})
    res = Reservation("r1", "a", "bat1", ((EVENT, EVENT + timedelta(hours=1)),), (-4.0,), now)
    g.set_reserved(active_setpoints([res], now), now)
    changes = g.step(now, snaps, force=True)  # 13 kW measured, 5 kW once a's command is applied
    assert changes.over == {} and "a" not in changes.battery_kw and g.dr_overrides == 0
    # without the expectation the guard would read 13 kW, 0.59 kW over, and cut a's "charging"
    blind = FleetGuard(sites, limit_kw=12.0, period_s=P_S, battery_control="setpoint")
    blind.on_plan(now - timedelta(minutes=14), {"a": 4.0, "b": 0.0}, set(), {})
    blind.set_reserved(active_setpoints([res], now))
    assert blind.step(now, snaps, force=True).dr_overrides == {"a"}
