"""Device physics: energy balances, clamps, curtailment, deferral and recovery, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiles import hp_cop
from simulators.devices import Battery, EvCharger, HeatPump, Meter, PvInverter, Zone


def test_battery_cycle_loses_exactly_the_efficiency_losses() -> None:
    bat = Battery(
        capacity_kwh=16.0,
        p_charge_max_kw=5.0,
        p_discharge_max_kw=5.0,
        eta_charge=0.95,
        eta_discharge=0.92,
        soc_min_pct=0.0,
        soc_pct=0.0,
        self_discharge_pct_per_day=0.0,
    )
    bat.setpoint_kw = 5.0
    while bat.soc_pct < 100.0 - 1e-9:
        bat.step(60.0)
    assert bat.e_charged_kwh == pytest.approx(16.0 / 0.95, rel=1e-9)
    bat.setpoint_kw = -5.0
    for _ in range(10_000):
        if bat.step(60.0) == 0.0:
            break
    assert bat.soc_pct == pytest.approx(0.0, abs=1e-9)
    assert bat.e_discharged_kwh == pytest.approx(16.0 * 0.92, rel=1e-9)
    round_trip = bat.e_discharged_kwh / bat.e_charged_kwh
    assert round_trip == pytest.approx(0.95 * 0.92, rel=1e-9)


def test_battery_stops_exactly_on_the_soc_bound() -> None:
    bat = Battery(capacity_kwh=10.0, soc_pct=99.0, soc_max_pct=100.0, self_discharge_pct_per_day=0.0)
    bat.setpoint_kw = 5.0
    p = bat.step(3600.0)
    assert bat.soc_pct == pytest.approx(100.0)
    assert p == pytest.approx(0.1 / bat.eta_charge)
    assert bat.step(3600.0) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-1e4, 1e4), st.floats(0.0, 86_400.0)), min_size=1, max_size=20),
    st.floats(0.0, 100.0),
)
def test_battery_soc_never_leaves_bounds_whatever_is_written(
    writes: list[tuple[float, float]], soc0: float
) -> None:
    bat = Battery(capacity_kwh=16.0, soc_pct=soc0, soc_min_pct=5.0)
    for setpoint, dt in writes:
        bat.setpoint_kw = setpoint
        p = bat.step(dt)
        assert 0.0 <= bat.soc_pct <= 100.0
        assert -bat.p_discharge_max_kw - 1e-9 <= p <= bat.p_charge_max_kw + 1e-9


def test_battery_self_discharges_slowly() -> None:
    bat = Battery(capacity_kwh=10.0, soc_pct=50.0, self_discharge_pct_per_day=1.0)
    bat.step(86_400.0)
    assert bat.soc_pct == pytest.approx(49.5)


def test_pv_is_zero_at_night_and_never_above_nameplate() -> None:
    pv = PvInverter(kwp=8.0, inverter_kw=8.0)
    assert pv.step(1.0, poa_w_m2=0.0, t_amb_c=5.0) == 0.0
    for g in np.linspace(0.0, 1400.0, 50):
        p = pv.step(1.0, poa_w_m2=float(g), t_amb_c=-20.0)
        assert -8.0 - 1e-9 <= p <= 0.0
    assert pv.step(1.0, poa_w_m2=1000.0, t_amb_c=25.0) < -6.0  # a sunny noon gives most of it


def test_pv_curtailment_caps_output_at_the_enabled_percentage() -> None:
    pv = PvInverter(kwp=8.0, inverter_kw=8.0, limit_pct=30.0, limit_enabled=False)
    assert pv.step(1.0, poa_w_m2=1000.0, t_amb_c=10.0) < -2.4 - 1.0
    pv.limit_enabled = True
    assert pv.step(1.0, poa_w_m2=1000.0, t_amb_c=10.0) == pytest.approx(-2.4)
    assert pv.p_available_kw > 2.4  # the sun still offers more


def test_hp_cop_rises_with_ambient_temperature() -> None:
    cops = hp_cop(np.linspace(-15.0, 20.0, 36))
    assert np.all(np.diff(cops) > 0)
    hp = HeatPump()
    hp.step(60.0, t_amb_c=-10.0, q_demand_kw=5.0)
    cold = hp.cop
    hp.step(60.0, t_amb_c=10.0, q_demand_kw=5.0)
    assert hp.cop > cold


def test_tank_holds_11_6_kwh_over_10_k() -> None:
    assert HeatPump(tank_l=1000.0, t_min_c=45.0, t_max_c=55.0).tank_kwh == pytest.approx(11.61, abs=0.01)


def _run_hp(limit_hours: tuple[int, int] | None, hours: int = 24) -> HeatPump:
    hp = HeatPump(p_max_kw=9.0, t_tank_c=50.0)
    for minute in range(hours * 60):
        h = minute // 60
        hp.p_limit_kw = 0.0 if limit_hours and limit_hours[0] <= h < limit_hours[1] else None
        hp.step(60.0, t_amb_c=0.0, q_demand_kw=6.0)
    return hp


def test_hp_limit_defers_heat_and_recovers_it_later() -> None:
    free = _run_hp(None)
    limited = HeatPump(p_max_kw=9.0, t_tank_c=50.0)
    deficit_peak = 0.0
    heat_in_window = 0.0
    for minute in range(24 * 60):
        limited.p_limit_kw = 0.0 if 6 * 60 <= minute < 10 * 60 else None
        limited.step(60.0, t_amb_c=0.0, q_demand_kw=6.0)
        deficit_peak = max(deficit_peak, limited.e_deficit_kwh)
        if 6 * 60 <= minute < 10 * 60:
            heat_in_window += limited.q_heat_kw / 60.0
    assert heat_in_window == 0.0  # nothing during a 0 kW limit
    assert deficit_peak > 10.0  # 24 kWh asked over 4 h, the tank covers only part of it
    assert limited.e_deficit_kwh == pytest.approx(0.0, abs=1e-6)  # paid back
    # Same demand served over the day: heat produced equals demand plus tank change, both runs.
    for hp in (free, limited):
        assert hp.e_heat_kwh == pytest.approx(
            hp.e_demand_kwh + hp.e_tank_kwh - HeatPump().e_tank_kwh, abs=1e-6
        )
    assert limited.e_heat_kwh == pytest.approx(free.e_heat_kwh, abs=HeatPump().tank_kwh)


def test_hp_limit_caps_electric_power() -> None:
    hp = HeatPump(p_max_kw=9.0, t_tank_c=45.0, p_limit_kw=4.2)
    for _ in range(60):
        assert hp.step(60.0, t_amb_c=0.0, q_demand_kw=8.0) <= 4.2 + 1e-9


def test_ev_limit_slows_charging_and_carries_unmet_energy_forward() -> None:
    ev = EvCharger(p_max_kw=11.0)
    ev.plug_in(20.0, departure_s=3600.0)
    ev.p_limit_kw = 4.2
    for t in range(0, 3600 + 60, 60):
        p = ev.step(60.0, t_s=float(t))
        assert p <= 4.2 + 1e-9
    assert ev.e_session_kwh == pytest.approx(4.2, abs=1e-6)
    assert ev.e_unmet_kwh == pytest.approx(20.0 - 4.2, abs=1e-6)
    ev.p_limit_kw = None
    ev.plug_in(10.0, departure_s=7 * 3600.0)
    assert ev.e_remaining_kwh == pytest.approx(10.0 + 15.8, abs=1e-6)
    assert ev.step(60.0, t_s=3700.0) == pytest.approx(11.0)


def test_ev_pauses_below_six_amps() -> None:
    ev = EvCharger()
    ev.plug_in(10.0, departure_s=1e6)
    ev.limit_a = 5.0
    assert ev.step(60.0, t_s=0.0) == 0.0
    ev.limit_a = 6.0
    assert ev.step(60.0, t_s=60.0) == pytest.approx(3 * 230 * 6 / 1000)


def test_meter_splits_import_and_export() -> None:
    m = Meter()
    m.step(3600.0, p_kw=2.0)
    m.step(1800.0, p_kw=-4.0)
    assert m.e_import_kwh == pytest.approx(2.0)
    assert m.e_export_kwh == pytest.approx(2.0)


def test_zone_follows_setpoint_and_cools_without_heat() -> None:
    z = Zone(t_c=19.0, setpoint_c=21.0)
    for _ in range(6 * 60):
        z.step(60.0, t_out_c=0.0, local_hour=12.0, weekend=False)
    assert z.t_c == pytest.approx(21.0, abs=0.3)
    for _ in range(6 * 60):
        z.step(60.0, t_out_c=0.0, local_hour=12.0, weekend=False, heat_fraction=0.0)
    assert z.t_c < 20.0


def test_fan_speed_trades_power_against_co2() -> None:
    def co2_after(fan_pct: float) -> tuple[float, float]:
        z = Zone(fan_cmd_pct=fan_pct, co2_ppm=600.0)
        for _ in range(4 * 60):
            z.step(60.0, t_out_c=5.0, local_hour=20.0, weekend=False)
        return z.co2_ppm, z.p_fan_kw

    co2_low, p_low = co2_after(20.0)
    co2_high, p_high = co2_after(80.0)
    assert co2_low > co2_high > 420.0
    assert p_high == pytest.approx(0.25 * 0.8**3)
    assert p_low < p_high
    auto = Zone(co2_ppm=1000.0)
    assert auto.auto_fan_pct() == 100.0
