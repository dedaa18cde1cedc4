"""The Schutterwald study's curative and proactive measures as pure functions: energy conserved, caps respected."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.study import policies

DT = 0.25
SPD = 96


def test_onsets_first_step_over_limit_per_day() -> None:
    f = np.zeros(3 * SPD)
    f[SPD + 70] = 5.0
    f[SPD + 72] = 6.0
    f[2 * SPD + 10] = 4.0
    on = policies.congestion_onsets(f, 4.5, SPD)
    assert on.tolist() == [-1, SPD + 70, -1]


def test_cura_caps_to_3_7_kw_from_onset_and_delivers_the_energy_next_morning() -> None:
    rng = np.random.default_rng(1)
    ev = np.zeros((2 * SPD, 5))
    for j in range(5):  # evening sessions at 11 kW
        start = 68 + int(rng.integers(0, 12))
        ev[start : start + 8 + j, j] = 11.0
    onsets = np.array([70, -1])
    out = policies.cur_a(ev, onsets, SPD, cap_kw=3.7, p_max_kw=11.0, dt_h=DT)
    # from the onset to midnight nobody charges above the cap
    assert out[70:SPD].max() <= 3.7 + 1e-9
    # before the onset nothing changes
    np.testing.assert_allclose(out[:70], ev[:70])
    # every kWh is delivered by the end of the next day (the backlog at full power after midnight)
    np.testing.assert_allclose(out.sum(axis=0), ev.sum(axis=0), rtol=1e-12)
    assert out[SPD:].max() <= 11.0 + 1e-9
    moved = out[SPD:].sum() * DT
    assert moved > 0  # something really was carried to the next morning
    # the carried energy is charged from 00:00 at the original power
    assert out[SPD, :].max() == pytest.approx(11.0)


def test_curb_30_percent_for_two_hours_and_heat_recovered_within_six() -> None:
    t = 2 * SPD
    heat = np.full((t, 3), 2.0)
    cop = np.full(t, 3.0)
    p_max = np.array([1.5, 2.0, 3.0])  # thermal capacity 4.5, 6, 9 kW
    onsets = np.array([68, -1])
    res = policies.cur_b(heat, cop, p_max, onsets, share=0.3, duration_steps=8, recovery_steps=24, dt_h=DT)
    q_cap = 0.3 * p_max * 3.0
    assert np.all(res.heat_kw[68:76] <= q_cap[None, :] + 1e-9)
    assert np.all(res.hp_cap_frac[68:76] == 0.3)
    assert np.all(res.hp_cap_frac[:68] == 1.0) and np.all(res.hp_cap_frac[76:] == 1.0)
    # total heat conserved, and all of it made up within the 6 h after the window
    np.testing.assert_allclose(res.heat_kw.sum(axis=0), heat.sum(axis=0))
    np.testing.assert_allclose(res.heat_kw[100:], heat[100:])
    deferred = (heat[68:76] - res.heat_kw[68:76]).sum() * DT
    assert deferred == pytest.approx(res.deferred_kwh)
    assert deferred > 0
    # the recovery never asks a heat pump for more than its capacity when there is room
    assert np.all(res.heat_kw[76:100] <= (p_max * 3.0)[None, :] + 1e-9)


def _pro(f: np.ndarray, on: np.ndarray, *, pro_b: bool) -> policies.ProResult:
    """ProA (and ProB if asked) with the costs the engine uses by default."""
    return policies.pro_ab(
        f,
        on,
        pro_a=True,
        pro_b=pro_b,
        window_steps=16,
        search_steps=64,
        c_import_base=1.0,
        c_import_low=0.3,
        bat_w_discharge_base=0.6,
        ts_w_discharge_base=0.05,
        w_discharge_hold=2.0,
    )


def test_proa_window_is_the_lowest_forecast_before_onset_and_prob_holds_until_onset() -> None:
    f = np.full(SPD, 100.0)
    f[20:36] = 40.0  # a quiet night/morning stretch
    f[70:80] = 300.0
    on = policies.congestion_onsets(f, 250.0, SPD)
    res = _pro(f, on, pro_b=True)
    assert res.window_start.tolist() == [20]
    assert (
        np.all(res.c_import[20:36] == 0.3)
        and res.c_import[36:].min() == 1.0
        and res.c_import[:20].min() == 1.0
    )
    assert res.precharge.sum() == 16
    assert np.all(res.bat_w_discharge[20:70] == 2.0)
    assert np.all(res.bat_w_discharge[70:] == 0.6) and np.all(res.bat_w_discharge[:20] == 0.6)
    only_a = _pro(f, on, pro_b=False)
    assert np.all(only_a.bat_w_discharge == 0.6)
