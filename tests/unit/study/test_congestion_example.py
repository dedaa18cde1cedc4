"""A constructed winter evening: Stor alone leaves the HV/MV peak above the limit, ProA+ProB does not.

Ten households on one feeder, five with a 10 kWh / 5 kW battery, no PV (winter), an
evening peak of 3 kW each from 17:00 to 20:00. Self-consumption storage discharges all
afternoon and is empty at 17:00; ProA pre-charges it from the grid in the quietest hours
before the onset (under the limit), ProB holds it until the onset.
"""

from __future__ import annotations

import numpy as np

from cloud_controller.dispatch import DispatchEngine, SiteAssets, StepInputs, StorageState, build_problem
from cloud_controller.study import policies
from tests.unit.dispatch.helpers import feeder

DT = 0.25
SPD = 96
N = 10
LIMIT = 22.0


def _day_load() -> np.ndarray:
    base = np.full((SPD, N), 0.6)
    base[14 * 4 : 17 * 4] = 1.2  # afternoon: storage drains here under self-consumption
    base[17 * 4 : 20 * 4] = 3.0  # evening peak: 30 kW at the station
    return base


def _simulate(pro_a: bool, pro_b: bool) -> tuple[np.ndarray, np.ndarray]:
    assets = SiteAssets(
        bat_e_kwh=np.where(np.arange(N) < 5, 10.0, 0.0),
        bat_p_kw=np.where(np.arange(N) < 5, 5.0, 0.0),
        hp_p_max_kw=np.zeros(N),
        ts_e_kwh=np.zeros(N),
    )
    prob = build_problem(feeder(N + 1), np.arange(1, N + 1), assets, horizon=1)
    eng = DispatchEngine(prob)
    base = _day_load()
    forecast = base.sum(axis=1)
    on = policies.congestion_onsets(forecast, LIMIT, SPD)
    pro = policies.pro_ab(
        forecast,
        on,
        pro_a=pro_a,
        pro_b=pro_b,
        window_steps=16,
        search_steps=48,
        c_import_base=1.0,
        c_import_low=0.3,
        bat_w_discharge_base=0.6,
        ts_w_discharge_base=0.05,
        w_discharge_hold=2.0,
    )
    st_lim = np.where(pro.precharge, 0.95 * LIMIT, np.inf)
    state = StorageState(np.full(5, 3.0), np.zeros(0))
    root = np.zeros(SPD)
    soc = np.zeros(SPD)
    for t in range(SPD):
        s = slice(t, t + 1)
        r = eng.solve(
            StepInputs(
                base_kw=base[s],
                c_import=pro.c_import[s],
                bat_w_discharge=pro.bat_w_discharge[s],
                station_limit_kw=st_lim[s],
            ),
            state,
        )
        state = r.next_state()
        root[t] = r.p_root_kw[0]
        soc[t] = state.e_bat_kwh.sum()
    return root, soc


def test_stor_alone_leaves_the_evening_peak_over_the_limit() -> None:
    root, soc = _simulate(False, False)
    assert soc[17 * 4 - 1] < 1e-6  # drained by the afternoon
    assert root[17 * 4 : 20 * 4].max() > LIMIT + 5


def test_proa_prob_keeps_the_peak_under_the_limit_and_never_makes_a_new_one() -> None:
    root, soc = _simulate(True, True)
    assert root.max() <= LIMIT + 1e-6
    assert soc[17 * 4 - 1] > 0.9 * 5 * 10.0 * 0.95  # pre-charged and held until the onset
    # pre-charging stayed under the limit share it was given
    assert root[: 17 * 4].max() <= 0.95 * LIMIT + 1e-6


def test_proa_alone_is_marginal_storage_drains_before_the_onset() -> None:
    root_a, _ = _simulate(True, False)
    root_ab, _ = _simulate(True, True)
    over_a = int((root_a > LIMIT + 1e-6).sum())
    over_ab = int((root_ab > LIMIT + 1e-6).sum())
    assert over_ab == 0 < over_a
