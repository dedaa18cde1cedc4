"""AHU fan ↔ CO2, heat pump via the RC zone, adaptive comfort and PV, against hand numbers and the simulators."""

from __future__ import annotations

import math

import pytest

from flexmodels import (
    ComfortBand,
    FanZone,
    PvModule,
    RcZone,
    adaptive_band,
    co2_after_ppm,
    cop_from_table,
    fan_reduce_kw,
    heatpump_flex_kw,
    min_fan_fraction,
    pv_array_kw,
    pv_module_w,
    running_mean_outdoor_c,
    steady_co2_ppm,
    zone_temperature_after_c,
)
from simulators.devices.zone import Zone

# simulators/devices/zone.py's defaults: 300 m³, 3 people × 0.018 m³/h, 450 m³/h, 0.25 kW fan
SIM_FAN_ZONE = FanZone(volume_m3=300.0, co2_gen_m3_h=0.054, fan_flow_max_m3_h=450.0, fan_p_max_kw=0.25)
SIM_RC_ZONE = RcZone(r_k_per_kw=5.0, c_kwh_per_k=8.0, gains_kw=0.3)


def test_steady_co2_at_30_pct_fan_is_820_ppm() -> None:
    # 420 + 0.054e6 / (450 * 0.3) = 420 + 400
    assert steady_co2_ppm(SIM_FAN_ZONE, 0.3) == pytest.approx(820.0)


def test_short_event_may_stop_the_fan_where_steady_state_would_not() -> None:
    # fan off 2 h from 600 ppm: 600 + 0.054e6/300 * 2 = 960 ppm <= 1000, though steady state needs s >= 20.7 %
    assert co2_after_ppm(SIM_FAN_ZONE, 600.0, 0.0, 2.0) == pytest.approx(960.0)
    assert min_fan_fraction(SIM_FAN_ZONE, 600.0, 0.3, 2.0) == 0.0
    s_steady = 0.054e6 / (1000.0 - 420.0) / 450.0
    assert s_steady == pytest.approx(0.2069, abs=1e-4)
    assert fan_reduce_kw(SIM_FAN_ZONE, 600.0, 0.3, 2.0) == pytest.approx(0.25 * 0.3**3)


def test_three_hour_event_keeps_a_fan_speed_that_ends_on_1000_ppm() -> None:
    s = min_fan_fraction(SIM_FAN_ZONE, 600.0, 0.3, 3.0)
    assert 0.0 < s < 0.2069
    flow = 450.0 * s  # the exact solution at s, written out
    c_eq = 420.0 + 0.054e6 / flow
    assert c_eq + (600.0 - c_eq) * math.exp(-flow * 3.0 / 300.0) == pytest.approx(1000.0, abs=1e-3)
    assert s == pytest.approx(0.07939, abs=1e-4)


def test_simulated_zone_at_the_computed_fan_speed_stays_under_the_limit() -> None:
    s = min_fan_fraction(SIM_FAN_ZONE, 600.0, 0.3, 3.0)
    zone = Zone(co2_ppm=600.0, fan_cmd_pct=100.0 * s)
    peak = 0.0
    for minute in range(180):  # night: full occupancy
        zone.step(60.0, t_out_c=5.0, local_hour=1.0 + minute / 60.0, weekend=False)
        peak = max(peak, zone.co2_ppm)
    assert peak <= 1000.0 + 1e-6
    assert zone.co2_ppm == pytest.approx(1000.0, abs=0.01)


def test_zone_coasting_two_hours_matches_the_simulator() -> None:
    # T(2 h) = 1.5 + 19.5 * exp(-2/40) = 20.049 °C with the heat off at 0 °C outside
    expected = 1.5 + 19.5 * math.exp(-0.05)
    assert zone_temperature_after_c(SIM_RC_ZONE, 21.0, 0.0, 0.0, 2.0) == pytest.approx(expected)
    sim = Zone(t_c=21.0, setpoint_c=21.0)
    for _ in range(120):
        sim.step(60.0, t_out_c=0.0, local_hour=12.0, weekend=False, heat_fraction=0.0)
    assert sim.t_c == pytest.approx(expected, abs=1e-9)


def test_heat_pump_may_switch_off_for_two_hours_and_gives_0_92_kw_for_three() -> None:
    """Zone at 21 °C, 0 °C outside, COP 3, band 20-24 °C.

    Hold: Q = 21/5 - 0.3 = 3.9 kW heat = 1.3 kW electric. 2 h off ends at 20.049 °C: all 1.3 kW.
    3 h: a = exp(-0.075) = 0.927743; T_eq = (20 - 21a)/(1 - a) = 7.1606; Q = 7.1606/5 - 0.3 = 1.1321;
    f_T = (3.9 - 1.1321)/3 = 0.9226 kW.
    """
    band = ComfortBand(20.0, 24.0)
    two = heatpump_flex_kw(
        SIM_RC_ZONE, t_now_c=21.0, t_out_c=0.0, cop=3.0, p_max_kw=9.0, band=band, duration_h=2.0
    )
    three = heatpump_flex_kw(
        SIM_RC_ZONE, t_now_c=21.0, t_out_c=0.0, cop=3.0, p_max_kw=9.0, band=band, duration_h=3.0
    )
    assert two.p_base_kw == pytest.approx(1.3)
    assert two.reduce_kw == pytest.approx(1.3)
    assert three.reduce_kw == pytest.approx(0.9226, abs=1e-4)
    # increase: end at 24 °C in 3 h: T_eq = (24 - 21a)/(1 - a) = 62.5188, Q = 12.2038, +(12.2038 - 3.9)/3
    assert three.increase_kw == pytest.approx((12.2038 - 3.9) / 3.0, abs=1e-4)


def test_heat_pump_outside_the_band_offers_nothing() -> None:
    flex = heatpump_flex_kw(
        SIM_RC_ZONE,
        t_now_c=19.0,
        t_out_c=0.0,
        cop=3.0,
        p_max_kw=9.0,
        band=ComfortBand(20.0, 24.0),
        duration_h=1.0,
    )
    assert (flex.reduce_kw, flex.increase_kw) == (0.0, 0.0)


def test_cop_lookup_interpolates() -> None:
    assert cop_from_table(2.0, [(-5.0, 2.5), (7.0, 3.7)]) == pytest.approx(2.5 + 1.2 * 7.0 / 12.0)


@pytest.mark.parametrize(
    ("t_rm", "standard", "category", "band"),
    [
        (20.0, "en15251", "II", (22.4, 28.4)),  # 0.33*20 + 18.8 = 25.4 ± 3
        (5.0, "en15251", "II", (19.1, 25.1)),  # clamped to 10 °C: 22.1 ± 3
        (20.0, "ashrae55", "80", (20.5, 27.5)),  # 0.31*20 + 17.8 = 24.0 ± 3.5
        (25.0, "ashrae55", "90", (23.05, 28.05)),  # 25.55 ± 2.5
    ],
    ids=["en-ii", "en-clamped", "ashrae-80", "ashrae-90"],
)
def test_adaptive_comfort_band(t_rm: float, standard: str, category: str, band: tuple[float, float]) -> None:
    got = adaptive_band(t_rm, standard=standard, category=category)  # type: ignore[arg-type]
    assert (got.t_min_c, got.t_max_c) == pytest.approx(band)


def test_running_mean_uses_en15251_weights() -> None:
    days = [20.0, 18.0, 16.0, 15.0, 14.0, 13.0, 12.0]
    expected = (20 + 0.8 * 18 + 0.6 * 16 + 0.5 * 15 + 0.4 * 14 + 0.3 * 13 + 0.2 * 12) / 3.8
    assert running_mean_outdoor_c(days) == pytest.approx(expected)


def test_pv_module_at_standard_conditions_is_254_w_near_its_250_wp() -> None:
    # v_t = 1.17 * 60 * k*298.15/q = 1.80362 V; v_oc = 37.8/1.80362 = 20.958; FF0 = (20.958 - ln 21.678)/21.958
    # = 0.81429; FF = FF0 * (1 - 0.012*8.28/37.8) = 0.81215; P = 0.81215 * 37.8 * 8.28 = 254.2 W
    assert pv_module_w(PvModule(), 1000.0, 25.0) == pytest.approx(254.21, abs=0.01)


def test_pv_at_half_irradiance_gives_less_than_half_power() -> None:
    # I_sc = 8.28 * 0.5**1.21 = 3.5791 A (alpha > 1), V_oc = 37.8/(1 + 0.058 ln 2) = 36.339 V
    p = pv_module_w(PvModule(), 500.0, 25.0)
    assert p == pytest.approx(105.10, abs=0.01)
    assert pv_array_kw(PvModule(), 500.0, 25.0, n_series=10, n_parallel=2) == pytest.approx(20 * p / 1000.0)


def test_hotter_module_gives_less() -> None:
    assert pv_module_w(PvModule(), 1000.0, 45.0) < pv_module_w(PvModule(), 1000.0, 25.0)
