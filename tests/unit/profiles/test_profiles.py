"""Profile generators: shapes, energy totals, physical bounds, determinism, speed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profiles import (
    ambient_temperature_c,
    ev_demand,
    heat_demand_kw,
    household_load_kw,
    hp_cop,
    module_power_w,
    pv_kw_per_kwp,
    time_index,
)

LAT, LON = 48.45, 7.88  # Schutterwald


@pytest.fixture(scope="module")
def year() -> pd.DatetimeIndex:
    return time_index(2030)


@pytest.fixture(scope="module")
def t_amb(year: pd.DatetimeIndex) -> np.ndarray:
    return ambient_temperature_c(year, seed=3)


def test_time_index_is_utc_left_labelled_year(year: pd.DatetimeIndex) -> None:
    assert len(year) == 35040
    assert str(year.tz) == "UTC"
    assert year[0] == pd.Timestamp("2030-01-01", tz="UTC")
    assert year[-1] == pd.Timestamp("2030-12-31 23:45", tz="UTC")
    assert len(time_index(2032, step_min=60)) == 8784  # leap year


def test_ambient_temperature_has_seasons_and_is_seeded(year: pd.DatetimeIndex, t_amb: np.ndarray) -> None:
    jan = t_amb[year.month == 1].mean()
    jul = t_amb[year.month == 7].mean()
    assert jul - jan > 12.0
    assert 8.0 < t_amb.mean() < 13.0
    assert np.array_equal(t_amb, ambient_temperature_c(year, seed=3))
    assert not np.array_equal(t_amb, ambient_temperature_c(year, seed=4))


def test_household_load_annual_energy_and_decorrelation(year: pd.DatetimeIndex) -> None:
    annual = np.array([2500.0, 4000.0, 6000.0])
    p = household_load_kw(year, annual_kwh=annual, seed=1)
    assert p.shape == (35040, 3)
    np.testing.assert_allclose(p.sum(axis=0) * 0.25, annual, rtol=0.03)
    assert (p >= 0).all()
    # Shifts and fluctuations make households differ, but they stay strongly alike (same H0).
    corr = np.corrcoef(p[:, 0], p[:, 1])[0, 1]
    assert 0.5 < corr < 0.999
    assert np.array_equal(p, household_load_kw(year, annual_kwh=annual, seed=1))


def test_household_load_for_the_whole_region_gives_each_household_its_own_year(
    year: pd.DatetimeIndex,
) -> None:
    """319 households in one call: a year each, their own noise, and about the annual energy asked for."""
    p = household_load_kw(year, annual_kwh=np.full(319, 3500.0), seed=5)
    assert p.shape == (35040, 319)
    annual = p.sum(axis=0) * 0.25
    assert np.all(np.abs(annual / 3500.0 - 1.0) < 0.1)
    assert len({round(float(v), 6) for v in p[18 * 4]}) > 300  # 18:00 on Jan 1st differs per household


def test_pv_is_zero_at_night_bounded_and_plausible(year: pd.DatetimeIndex, t_amb: np.ndarray) -> None:
    pv = pv_kw_per_kwp(year, lat_deg=LAT, lon_deg=LON, seed=2, ambient_t_c=t_amb)
    assert pv.shape == (35040,)
    assert pv.min() >= 0.0
    assert pv.max() <= 1.0
    midnight = (year.hour == 23) | (year.hour < 2)
    assert np.all(pv[midnight] == 0.0)
    yield_kwh_per_kwp = pv.sum() * 0.25
    assert 700 < yield_kwh_per_kwp < 1200  # SW Germany ≈ 900-1,100 kWh/kWp
    assert pv[year.month == 6].mean() > 2 * pv[year.month == 12].mean()
    assert np.array_equal(pv, pv_kw_per_kwp(year, lat_deg=LAT, lon_deg=LON, seed=2, ambient_t_c=t_amb))


def test_zhou_module_model_matches_datasheet_and_derates_with_heat() -> None:
    p_stc = float(module_power_w(1000.0, 25.0))
    assert p_stc == pytest.approx(250.0, rel=0.03)
    assert float(module_power_w(1000.0, 60.0)) < p_stc  # thermal drop-off
    assert float(module_power_w(0.0, 10.0)) == 0.0
    g = np.array([100.0, 400.0, 800.0])
    assert np.all(np.diff(module_power_w(g, 25.0)) > 0)


def test_ev_sessions_are_consistent(year: pd.DatetimeIndex) -> None:
    fleet = ev_demand(year, n_ev=20, seed=9)
    assert fleet.plugged.shape == (35040, 20)
    arrivals = fleet.e_need_kwh > 0
    assert np.array_equal(arrivals, fleet.departure_step >= 0)
    assert np.all((fleet.e_need_kwh[arrivals] >= 4.0) & (fleet.e_need_kwh[arrivals] <= 30.0))
    assert np.all(fleet.uncontrolled_kw <= 11.0 + 1e-9)
    assert not np.any(fleet.uncontrolled_kw[~fleet.plugged] > 0)
    # Charging as fast as possible delivers each session's need when the stay is long enough.
    delivered = fleet.uncontrolled_kw.sum() * 0.25
    assert delivered == pytest.approx(fleet.e_need_kwh.sum(), rel=0.02)
    # Weekday evening arrivals dominate.
    t, _ = np.nonzero(arrivals)
    local_hour = (year[t].hour + 1) % 24
    assert np.mean((local_hour >= 15) & (local_hour <= 22)) > 0.6
    again = ev_demand(year, n_ev=20, seed=9)
    assert np.array_equal(again.uncontrolled_kw, fleet.uncontrolled_kw)


def test_heat_demand_energy_and_winter_peak(year: pd.DatetimeIndex, t_amb: np.ndarray) -> None:
    annual = np.array([6000.0, 12000.0])
    q = heat_demand_kw(year, ambient_t_c=t_amb, annual_kwh=annual, seed=4)
    np.testing.assert_allclose(q.sum(axis=0) * 0.25, annual, rtol=0.03)
    assert q[year.month == 1].mean() > 4 * q[year.month == 7].mean()
    assert q[year.month == 7].mean() > 0  # hot water all year


def test_heat_demand_of_no_heat_pump_is_no_column() -> None:
    index = pd.date_range("2030-01-01", periods=96, freq="15min", tz="UTC")
    q = heat_demand_kw(index, ambient_t_c=np.zeros(96), annual_kwh=np.array([]), seed=1)
    assert q.shape == (96, 0)


def test_cop_rises_with_ambient_and_is_clipped() -> None:
    t = np.linspace(-25, 40, 50)
    cop = hp_cop(t)
    assert np.all(np.diff(cop) >= 0)
    assert cop.min() >= 1.5
    assert cop.max() <= 6.0
    assert 2.0 < float(hp_cop(-10.0)) < 3.2
    assert 3.2 < float(hp_cop(7.0)) < 4.5
