"""The non-fleet households' background load: seeded, one row per interval, the stated shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from gridflex.loop.background import BackgroundLoad, BackgroundSettings, background_load
from profiles import h0_kw_per_kwh

START = datetime(2030, 1, 14, tzinfo=UTC)  # the demo's profile start: a winter Monday


def _load(fleet: list[int], settings: BackgroundSettings | None = None, *, n: int = 60) -> BackgroundLoad:
    return background_load(n, fleet, start=START, days=2.0, period_s=900.0, seed=1, settings=settings)


def test_same_seed_same_profiles_and_one_row_per_interval() -> None:
    a, b = _load([3, 7]), _load([3, 7])
    assert a.p_kw.shape == a.q_kvar.shape == (192, 58)  # 2 days of 15 min, 60 households - 2
    assert a.households.tolist() == [h for h in range(60) if h not in (3, 7)]
    np.testing.assert_array_equal(a.p_kw, b.p_kw)
    assert not np.array_equal(
        a.p_kw, background_load(60, [3, 7], start=START, days=2.0, period_s=900.0, seed=2).p_kw
    )
    assert (a.p_kw > 0).all()  # every household draws something (H0 has no zero)


def test_a_households_profile_does_not_depend_on_where_the_fleet_is() -> None:
    a, b = _load([3, 7]), _load([0, 1, 2, 50])
    common = sorted(set(a.households.tolist()) & set(b.households.tolist()))
    ia = np.searchsorted(a.households, common)
    ib = np.searchsorted(b.households, common)
    np.testing.assert_array_equal(a.p_kw[:, ia], b.p_kw[:, ib])
    np.testing.assert_array_equal(a.has_ev[ia], b.has_ev[ib])


def test_reactive_power_at_the_stated_cos_phi() -> None:
    load = _load([], BackgroundSettings(cos_phi=0.95))
    np.testing.assert_allclose(load.q_kvar, load.p_kw * np.tan(np.arccos(0.95)))


def test_totals_household_energy_and_the_electrified_shares() -> None:
    plain = _load([], BackgroundSettings(hp_share=0.0, ev_share=0.0, annual_kwh=(3650.0, 3650.0)), n=200)
    # each household's energy is its annual figure times H0's share of the year in the window
    index = pd.date_range(START, periods=192, freq="900s")
    expected_kwh = 3650.0 * float(h0_kw_per_kwh(index).sum()) * 0.25
    np.testing.assert_allclose(plain.p_kw.sum(axis=0) * 0.25, expected_kwh, rtol=1e-9)
    assert 9.0 < expected_kwh / 2.0 < 16.0  # kWh per winter day, about the yearly mean of 10
    full = _load([], n=200)  # the defaults: 80 % heat pumps, 70 % EVs
    assert 0.7 < full.has_hp.mean() < 0.9 and 0.6 < full.has_ev.mean() < 0.8
    extra = full.p_kw - _load([], BackgroundSettings(hp_share=0.0, ev_share=0.0), n=200).p_kw
    s = BackgroundSettings()
    # no heat pump and no car: nothing added; a heat pump never above its rating (+ an EV's)
    idle = ~full.has_hp & ~full.has_ev
    assert np.allclose(extra[:, idle], 0.0)
    assert extra[:, full.has_hp & ~full.has_ev].max() <= s.hp_kw + 1e-9
    assert extra.max() <= s.hp_kw + s.ev_kw + 1e-9
    # cars charge at their full 11 kW: some interval sees several at once in the evening
    ev_only = full.has_ev & ~full.has_hp
    assert extra[:, ev_only].max() == pytest.approx(s.ev_kw)
    # heat pumps draw every winter interval (heat demand never stops at these temperatures)
    assert (extra[:, full.has_hp & ~full.has_ev] > 0).all()
    assert full.total_p_kw().shape == (192,)
    np.testing.assert_allclose(full.total_p_kw([0, 1]), full.p_kw[:, :2].sum(axis=1))


def test_row_of_a_time_and_outside_the_window_is_an_error() -> None:
    load = _load([])
    assert load.row(START) == 0
    assert load.row(START + timedelta(minutes=29)) == 1
    assert load.row(START + timedelta(days=2) - timedelta(seconds=1)) == 191
    with pytest.raises(ValueError, match="outside its window"):
        load.row(START + timedelta(days=2))
    with pytest.raises(ValueError, match="outside its window"):
        load.row(START - timedelta(seconds=1))


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="hp_share"):
        BackgroundSettings(hp_share=1.5)
    with pytest.raises(ValueError, match="cos_phi"):
        BackgroundSettings(cos_phi=0.0)
    with pytest.raises(ValueError, match="annual_kwh"):
        BackgroundSettings(annual_kwh=(5000.0, 3000.0))
    with pytest.raises(ValueError, match="fleet households"):
        _load([60])
    with pytest.raises(ValueError, match="timezone"):
        background_load(5, [], start=datetime(2030, 1, 14), days=1.0, period_s=900.0, seed=1)
