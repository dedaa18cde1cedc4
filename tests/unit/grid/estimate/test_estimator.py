"""The estimator against pandapower's WLS and the grid truth; bad data; observability; batches."""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from cloud_controller.grid.estimate import EstimateOptions, StateEstimator
from tests.unit.grid.estimate.cases import measurements, small_net, truth


@pytest.fixture(scope="module")
def net() -> Any:
    return truth(small_net())


@pytest.fixture(scope="module")
def est(net: Any) -> StateEstimator:
    return StateEstimator(net)


def _vm_err(est_vm: np.ndarray, net: Any, bus_idx: np.ndarray) -> float:
    return float(np.max(np.abs(est_vm - net.res_bus.vm_pu.loc[bus_idx].to_numpy())))


def test_same_noisy_measurements_give_pandapowers_wls_estimate(net: Any, est: StateEstimator) -> None:
    """Both WLS on one set of noisy readings: the voltages agree to 1e-5 pu (the models agree to ~1e-6)."""
    import pandapower as pp
    from pandapower.estimation import estimate

    mb = measurements(net, noise_seed=3)
    ours = est.estimate(mb, EstimateOptions(bad_data=False))
    ref = copy.deepcopy(net)
    v = mb.voltage
    for c, b in enumerate(v.bus):
        pp.create_measurement(ref, "v", "bus", float(v.u_pu[0, c]), float(v.sigma_pu[0, c]), int(b))
    ld = mb.loads
    for c, idx in enumerate(ld.load):
        b = int(ref.load.bus.at[idx])
        pp.create_measurement(ref, "p", "bus", ld.p_kw[0, c] / 1e3, ld.sigma_p_kw[0, c] / 1e3, b)
        pp.create_measurement(ref, "q", "bus", ld.q_kvar[0, c] / 1e3, ld.sigma_q_kvar[0, c] / 1e3, b)
    fl = mb.flows
    for c, name in enumerate(fl.branch):
        t = int(name.split(":")[1])
        pp.create_measurement(ref, "p", "trafo", fl.p_kw[0, c] / 1e3, fl.sigma_p_kw[0, c] / 1e3, t, side="lv")
        pp.create_measurement(
            ref, "q", "trafo", fl.q_kvar[0, c] / 1e3, fl.sigma_q_kvar[0, c] / 1e3, t, side="lv"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = estimate(ref, init="flat", zero_injection="no_inj_bus", tolerance=1e-10)
    assert res["success"]
    pp_vm = ref.res_bus_est.vm_pu.loc[ours.bus_idx].to_numpy()
    assert float(np.max(np.abs(ours.vm_pu[0] - pp_vm))) < 1e-5
    # and both are close to the truth: the noise is that of class-1 meters
    assert _vm_err(ours.vm_pu[0], net, ours.bus_idx) < 1e-3


def test_full_exact_metering_recovers_the_grid_truth(net: Any, est: StateEstimator) -> None:
    r = est.estimate(measurements(net), EstimateOptions(with_sigma=True))
    assert _vm_err(r.vm_pu[0], net, r.bus_idx) < 1e-6
    tr_idx = [int(n.split(":")[1]) for n in r.trafo_names]
    assert (
        np.max(np.abs(r.trafo_loading[0] - net.res_trafo.loading_percent.loc[tr_idx].to_numpy() / 100)) < 1e-5
    )
    assert np.max(np.abs(r.load_p_kw[0] - net.res_load.p_mw.loc[r.load_idx].to_numpy() * 1e3)) < 1e-3
    assert r.bad_data == () and not r.chi2_failed[0]
    assert r.vm_sigma_pu is not None and np.all(r.vm_sigma_pu[0] > 0) and np.all(r.vm_sigma_pu[0] < 0.01)


def test_a_meter_off_by_ten_sigma_fails_chi2_and_is_removed(net: Any, est: StateEstimator) -> None:
    """Station 0's four household meters and its station meter form one sum: all five have r_N 5.12.

    Residuals cannot say which of them is wrong; the tie goes to the meter with the widest σ
    (baddata.largest_residual), so the bad meter here is that one: column 1 (σ 0.019 kW).
    """
    mb = measurements(net)
    col = 1
    p = mb.loads.p_kw.copy()
    truth_kw = float(p[0, col])
    p[0, col] += 10 * mb.loads.sigma_p_kw[0, col]
    bad = replace(mb, loads=replace(mb.loads, p_kw=p))
    r = est.estimate(bad)
    assert r.chi2_failed[0]
    assert [b.sensor for b in r.bad_data] == [f"load:{int(mb.loads.load[col])}"]
    assert r.bad_data[0].normalised_residual > 3.0 and r.bad_data[0].replaced_by == "pseudo"
    # the re-estimate uses the pseudo-measurement (here: the truth): the state is exact again
    assert _vm_err(r.vm_pu[0], net, r.bus_idx) < 1e-6
    assert abs(float(r.load_p_kw[0, col]) - truth_kw) < 1e-3
    assert r.chi2[0] <= r.chi2_threshold[0]


def test_clean_noisy_measurements_remove_nothing(net: Any, est: StateEstimator) -> None:
    r = est.estimate(measurements(net, noise_seed=11))
    assert not r.chi2_failed[0] and r.bad_data == ()


def test_unobservable_station_is_reported_and_the_suggested_meters_make_it_observable(
    net: Any, est: StateEstimator
) -> None:
    """Station 1 without any meter and no pseudo-measurements counted: its buses are reported."""
    st1_lv = int(net.trafo.lv_bus[net.trafo.name == "station 1"].iloc[0])
    st1_loads = net.load.bus.isin(net.bus.index[net.bus.index > st1_lv]).to_numpy()
    mb = measurements(net, metered=~st1_loads, station_meters=False)
    obs = est.observability(mb, flow_candidates=False)
    assert not obs.observable and obs.rank_deficiency == int(st1_loads.sum())
    assert set(net.load.bus[st1_loads]) <= set(obs.unobservable_buses)
    assert [s.kind for s in obs.suggestions] == ["site"] * obs.rank_deficiency and obs.suggestions_verified
    # meter exactly the suggested buses: now observable from real meters, and the estimate is the truth
    added = {c for s in obs.suggestions for c in s.loads}
    metered = ~st1_loads
    metered[list(added)] = True
    mb2 = measurements(net, metered=metered, station_meters=False)
    assert est.observability(mb2).observable
    r = est.estimate(mb2)
    assert _vm_err(r.vm_pu[0], net, r.bus_idx) < 1e-6


def test_pseudo_measurements_make_the_same_case_observable(net: Any, est: StateEstimator) -> None:
    mb = measurements(net, metered=np.zeros(len(net.load), dtype=bool), station_meters=False)
    assert not est.observability(mb).observable
    assert est.observability(mb, count_pseudo=True).observable


def test_a_batch_gives_what_each_period_gives_alone(net: Any, est: StateEstimator) -> None:
    mb = measurements(net, noise_seed=5, n_steps=3)
    batch = est.estimate(mb)
    for t in range(3):
        one = est.estimate(mb.step(t))
        assert np.max(np.abs(one.vm_pu[0] - batch.vm_pu[t])) < 1e-12
