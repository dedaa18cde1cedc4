"""Bad data next to pseudo-measurements: a real meter is not removed for the forecast's error (baddata.py).

The case: the small MV/LV net's true loads are a known factor above the pseudo-measurements
(the model's loads, σ 1.5 kW each as `/grid/state` gives households outside the fleet), with
class-0.2 substation meters at both stations.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from cloud_controller.grid.estimate import EstimateOptions, MeasurementBatch, StateEstimate, StateEstimator
from tests.unit.grid.estimate.cases import measurements, small_net, truth

PSEUDO_SIGMA_KW = 1.5


@pytest.fixture(scope="module")
def model() -> Any:
    return truth(small_net())


@pytest.fixture(scope="module")
def est(model: Any) -> StateEstimator:
    return StateEstimator(model)


def _station1(model: Any) -> np.ndarray:
    lv = int(model.trafo.lv_bus[model.trafo.name == "station 1"].iloc[0])
    return np.asarray(model.load.bus.isin(model.bus.index[model.bus.index > lv]).to_numpy(), dtype=bool)


def _case(model: Any, scale: float, pseudo: np.ndarray) -> tuple[Any, MeasurementBatch]:
    """The truth with the `pseudo` loads at `scale` x the model's; those loads pseudo-measured at the model's."""
    net = copy.deepcopy(model)
    net.load.loc[pseudo, "p_mw"] *= scale
    net.load.loc[pseudo, "q_mvar"] *= scale
    truth(net)
    mb = measurements(net, metered=~pseudo)
    ld = mb.loads
    p50 = model.load.p_mw.to_numpy() * 1e3
    q50 = model.load.q_mvar.to_numpy() * 1e3
    p, q = ld.p_kw.copy(), ld.q_kvar.copy()
    sp, sq = ld.sigma_p_kw.copy(), ld.sigma_q_kvar.copy()
    p[0, pseudo], q[0, pseudo] = p50[pseudo], q50[pseudo]
    sp[0, pseudo] = sq[0, pseudo] = PSEUDO_SIGMA_KW
    loads = replace(
        ld,
        p_kw=p,
        q_kvar=q,
        sigma_p_kw=sp,
        sigma_q_kvar=sq,
        pseudo_p_kw=p50[None, :],
        pseudo_sigma_p_kw=np.full((1, len(p50)), PSEUDO_SIGMA_KW),
    )
    return net, replace(mb, loads=loads)


def _station_errors(r: StateEstimate, net: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """|estimated − true| station P (kW), loading error and its σ (fractions), per transformer."""
    tr = [int(n.split(":")[1]) for n in r.trafo_names]
    dp = np.abs(r.trafo_p_lv_kw[0] + net.res_trafo.p_lv_mw.loc[tr].to_numpy() * 1e3)
    dl = np.abs(r.trafo_loading[0] - net.res_trafo.loading_percent.loc[tr].to_numpy() / 100)
    assert r.trafo_loading_sigma is not None
    return dp, dl, r.trafo_loading_sigma[0]


def test_pseudo_loads_off_by_45_percent_leave_the_station_meters_in(model: Any, est: StateEstimator) -> None:
    """The case `/grid/state` hit: residuals taken at PGM's own optimum made the meters' r_N 8-95."""
    net, mb = _case(model, 1.45, np.ones(len(model.load), dtype=bool))
    r = est.estimate(mb, EstimateOptions(with_sigma=True))
    assert r.chi2_failed[0]  # the forecast is off: J says so
    assert r.bad_data == ()  # consistent residuals: every r_N of that conflict is 2.4-2.7 < 3
    dp, dl, sig = _station_errors(r, net)
    assert np.all(dp[1:] < 0.05) and np.all(dl <= np.maximum(sig, 1e-6))


def test_pseudo_loads_off_by_a_factor_two_are_widened_and_the_station_meters_kept(
    model: Any, est: StateEstimator
) -> None:
    net, mb = _case(model, 2.0, np.ones(len(model.load), dtype=bool))
    r = est.estimate(mb, EstimateOptions(with_sigma=True))
    assert r.bad_data == ()
    assert {w.meter for w in r.pseudo_widened} == {"flow:trafo:1:to", "flow:trafo:2:to"}
    assert all(w.normalised_residual > 3.0 and 2.0 <= w.factor <= 8.0 for w in r.pseudo_widened)
    assert all(len(w.loads) == 4 for w in r.pseudo_widened)  # the four households below each station
    dp, dl, sig = _station_errors(r, net)
    assert np.all(dp[1:] < 0.05)  # the stations follow their meters (truth 36.3 and 32.2 kW)
    assert np.all(dl <= np.maximum(sig, 1e-6))  # loading within its σ of the truth
    # without the rule the same case removes both station meters and the stations follow the forecast
    off = est.estimate(mb, EstimateOptions(with_sigma=True, pseudo_widen_factor=1.0))
    assert {b.sensor for b in off.bad_data} == {"flow:trafo:1:to", "flow:trafo:2:to"}
    assert np.all(_station_errors(off, net)[0][1:] > 15.0)


def test_a_bad_household_meter_is_still_removed_where_pseudo_loads_elsewhere_are_widened(
    model: Any, est: StateEstimator
) -> None:
    """Station 0's households metered (one off by 10σ), station 1's pseudo-measured at half their load."""
    st1 = _station1(model)
    net, mb = _case(model, 2.0, st1)
    col = 1
    assert mb.loads.metered[0, col]
    p = mb.loads.p_kw.copy()
    p[0, col] += 10 * mb.loads.sigma_p_kw[0, col]
    r = est.estimate(replace(mb, loads=replace(mb.loads, p_kw=p)), EstimateOptions(with_sigma=True))
    assert [(b.sensor, b.replaced_by) for b in r.bad_data] == [(f"load:{int(mb.loads.load[col])}", "pseudo")]
    assert r.bad_data[0].normalised_residual > 3.0
    widened = {i for w in r.pseudo_widened for i in w.loads}
    assert widened == set(model.load.index[st1].tolist())
    dp, dl, sig = _station_errors(r, net)
    assert np.all(dp[1:] < 0.05) and np.all(dl <= np.maximum(sig, 1e-6))


def test_widening_touches_only_pseudo_measurements(model: Any) -> None:
    _, mb = _case(model, 2.0, _station1(model))
    cols = np.arange(len(model.load))
    out = mb.with_pseudo_widened(0, cols, 4.0)
    pseudo = ~mb.loads.metered[0]
    assert np.allclose(out.loads.sigma_p_kw[0, pseudo], 4.0 * PSEUDO_SIGMA_KW)
    assert np.array_equal(out.loads.sigma_p_kw[0, ~pseudo], mb.loads.sigma_p_kw[0, ~pseudo])
    with pytest.raises(ValueError, match=">= 1"):
        mb.with_pseudo_widened(0, cols, 0.5)
