"""The Schutterwald study priorities, storage bookkeeping and the no-burning guarantee on constructed data."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.dispatch import (
    DispatchEngine,
    EngineOptions,
    SiteAssets,
    StepInputs,
    StorageState,
    build_problem,
)
from tests.unit.dispatch.helpers import feeder

DT = 0.25


def one_site(horizon: int = 1, **kw: float) -> DispatchEngine:
    assets = SiteAssets(
        bat_e_kwh=np.array([10.0]),
        bat_p_kw=np.array([5.0]),
        hp_p_max_kw=np.array([3.0]),
        ts_e_kwh=np.array([11.6]),
    )
    return DispatchEngine(build_problem(feeder(2), np.array([1]), assets, horizon=horizon, **kw))  # type: ignore[arg-type]


def step(base: float, heat: float, e_bat: float, e_ts: float, cop: float = 3.0, **kw: object) -> StepInputs:
    return StepInputs(base_kw=np.array([[base]]), heat_kw=np.array([[heat]]), cop=np.array([cop]), **kw)  # type: ignore[arg-type]


def test_surplus_fills_battery_before_thermal_store() -> None:
    eng = one_site()
    r = eng.solve(step(-4.0, 1.0, 2.0, 0.0), StorageState(np.array([2.0]), np.array([0.0])))
    assert r.p_bat_kw[0, 0] == pytest.approx(4.0 - 1.0 / 3.0, abs=1e-6)
    assert r.q_ts_kw[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert r.p_site_kw[0, 0] == pytest.approx(0.0, abs=1e-6)
    # once the battery is full, the surplus goes into the thermal store through the HP
    r = eng.solve(step(-4.0, 1.0, 10.0, 0.0, cop=6.0), StorageState(np.array([10.0]), np.array([0.0])))
    assert r.p_bat_kw[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert r.q_ts_kw[0, 0] > 5.0
    assert r.p_hp_kw[0, 0] == pytest.approx(3.0, abs=1e-6)


def test_deficit_empties_thermal_store_before_battery() -> None:
    eng = one_site()
    r = eng.solve(step(2.0, 3.0, 8.0, 8.0), StorageState(np.array([8.0]), np.array([8.0])))
    assert r.q_ts_kw[0, 0] == pytest.approx(-3.0, abs=1e-6)  # all heat from the store
    assert r.p_hp_kw[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert r.p_bat_kw[0, 0] == pytest.approx(-2.0, abs=1e-6)  # battery only for the rest
    # rolling over an evening the thermal store runs empty first
    st = StorageState(np.array([8.0]), np.array([3.0]))
    empty_ts, empty_bat = None, None
    for t in range(40):
        r = eng.solve(step(1.0, 2.0, 0, 0), st)
        st = r.next_state()
        if empty_ts is None and st.e_ts_kwh[0] < 1e-6:
            empty_ts = t
        if empty_bat is None and st.e_bat_kwh[0] < 1e-6:
            empty_bat = t
    assert empty_ts is not None and empty_bat is not None and empty_ts < empty_bat


def test_no_grid_charging_and_no_discharge_to_export_at_normal_costs() -> None:
    eng = one_site()
    r = eng.solve(step(0.5, 0.0, 5.0, 5.0), StorageState(np.array([5.0]), np.array([5.0])))
    assert r.p_site_kw[0, 0] == pytest.approx(0.0, abs=1e-6)  # battery covers 0.5 kW, no export
    assert r.p_bat_kw[0, 0] == pytest.approx(-0.5, abs=1e-6)


def test_storage_bookkeeping_over_a_day() -> None:
    rng = np.random.default_rng(1)
    eng = one_site()
    st0 = StorageState(np.array([3.0]), np.array([4.0]))
    st = st0
    ch = dis = q = heat_sum = hp_th = 0.0
    for t in range(96):
        pv = 6.0 * max(0.0, np.sin((t - 28) / 40 * np.pi))
        base = 0.4 + rng.uniform(0, 1.5) - pv
        heat = rng.uniform(0.5, 2.5)
        cop = 2.5 + 1.5 * rng.uniform()
        r = eng.solve(step(base, heat, 0, 0, cop=cop), st)
        assert 0.0 - 1e-9 <= r.e_bat_kwh[0, 0] <= 10.0 + 1e-9
        assert 0.0 - 1e-9 <= r.e_ts_kwh[0, 0] <= 11.6 + 1e-9
        assert min(r.p_bat_ch_kw[0, 0], r.p_bat_dis_kw[0, 0]) < 1e-9
        ch += r.p_bat_ch_kw[0, 0] * DT
        dis += r.p_bat_dis_kw[0, 0] * DT
        q += r.q_ts_kw[0, 0] * DT
        heat_sum += heat * DT
        hp_th += cop * r.p_hp_kw[0, 0] * DT
        st = r.next_state()
    losses = ch * (1 - 0.95) + dis * (1 / 0.95 - 1)
    # energy in = energy out + losses + change of stored energy
    assert ch == pytest.approx(dis + losses + (st.e_bat_kwh[0] - st0.e_bat_kwh[0]), abs=1e-6)
    assert q == pytest.approx(st.e_ts_kwh[0] - st0.e_ts_kwh[0], abs=1e-6)
    assert hp_th - q == pytest.approx(heat_sum, abs=1e-6)  # heat delivered exactly, no unmet heat
    assert ch > 1.0 and dis > 1.0


def test_feed_in_congestion_curtails_instead_of_burning_energy_in_storage() -> None:
    # battery nearly full, PV surplus above the HV/MV feed-in threshold: cycling the battery
    # would absorb the excess through losses; curtailment must be chosen instead.
    eng = one_site()
    r = eng.solve(
        step(-8.0, 0.0, 9.9, 11.6, station_feed_limit_kw=np.array([2.0]), pv_kw=np.array([[9.0]])),
        StorageState(np.array([9.9]), np.array([11.6])),
    )
    assert min(r.p_bat_ch_kw[0, 0], r.p_bat_dis_kw[0, 0]) < 1e-9
    assert r.curtail_kw[0, 0] > 5.0
    assert r.p_root_kw[0] == pytest.approx(-2.0, abs=1e-6)
    assert not r.violations


def test_cheap_grid_precharges_without_cycling() -> None:
    # ProA-like: import almost free → charge from the grid, never charge+discharge at once
    eng = one_site()
    r = eng.solve(
        step(1.0, 1.0, 2.0, 2.0, c_import=np.array([0.05])), StorageState(np.array([2.0]), np.array([2.0]))
    )
    assert r.p_bat_kw[0, 0] == pytest.approx(5.0, abs=1e-6)
    assert r.p_bat_dis_kw[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert r.q_ts_kw[0, 0] > 0.0


def test_impossible_limit_is_relaxed_and_reported() -> None:
    eng = one_site()
    r = eng.solve(
        step(20.0, 0.0, 0.0, 0.0, station_limit_kw=np.array([5.0])),
        StorageState(np.array([0.0]), np.array([0.0])),
    )
    kinds = {v.kind: v.amount for v in r.violations}
    assert kinds["station_load"] == pytest.approx(15.0, abs=1e-6)
    assert r.p_root_kw[0] == pytest.approx(20.0, abs=1e-6)


def test_engines_with_other_thread_counts_share_one_process() -> None:
    """Review regression: HiGHS starts one scheduler per process; an engine asking for another
    thread count than the first failed to run ("Not Set"). It now takes the first count."""
    import warnings as _warnings

    from cloud_controller.highs import threads as engine_module
    from tests.unit.dispatch.test_decompose import _inputs, _problem, _state

    rng = np.random.default_rng(3)
    p = _problem(rng)
    x, st = _inputs(rng, p), _state(rng, p)
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        one = DispatchEngine(p, EngineOptions(threads=1)).solve(x, st)
        two = DispatchEngine(p, EngineOptions(threads=2)).solve(x, st)
    assert two.objective == pytest.approx(one.objective, rel=1e-9)
    assert engine_module._THREADS_IN_USE  # the process's count is fixed by the first engine
    assert any("thread(s) in this process" in str(w.message) for w in caught)
