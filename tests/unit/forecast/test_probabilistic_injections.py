"""A radial region whose net carries sgens: the fast method still holds against the AC batch.

Before, the AC model refused an in-service sgen; now it holds them at their values (the base
case includes them), and the linear model propagates only the sites' deviations around it.
"""

from __future__ import annotations

import numpy as np

from cloud_controller.forecast.probabilistic import ForecastOptions, ProbabilisticCongestion
from cloud_controller.grid.region import _region
from tests.unit.forecast.conftest import HOUSES, evening, feeder_net

LOADING_ERROR_PP = 1.0
VOLTAGE_ERROR_PU = 0.002


def test_fast_method_with_pv_sgens_is_within_1_pp_of_the_ac_batch() -> None:
    import pandapower as pp

    net = feeder_net()
    for b in net.load.bus.iloc[::2]:
        pp.create_sgen(net, int(b), p_mw=0.006, q_mvar=0.0, name=f"pv{int(b)}")
    model = ProbabilisticCongestion(_region(net, "trafo:0"), list(range(HOUSES)))
    p50, sigma = evening(4)
    t = np.arange(4)
    opt = ForecastOptions(n_scenarios=40, seed=4)
    fast_l, fast_v = model.scenario_values(p50, sigma, t, opt)
    ac_l, ac_v = model.scenario_values(p50, sigma, t, ForecastOptions(n_scenarios=40, seed=4, method="ac"))
    assert model.method_for(opt) == "fast"
    assert np.max(np.abs(fast_l - ac_l)) <= LOADING_ERROR_PP
    assert np.max(np.abs(fast_v - ac_v)) <= VOLTAGE_ERROR_PU
    # the sgens are in the AC model: without them the loading would be higher
    plain = ProbabilisticCongestion(_region(feeder_net(), "trafo:0"), list(range(HOUSES)))
    ac_plain, _ = plain.scenario_values(p50, sigma, t, ForecastOptions(n_scenarios=40, seed=4, method="ac"))
    assert np.mean(ac_plain) > np.mean(ac_l) + 0.5
