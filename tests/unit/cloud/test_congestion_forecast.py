"""The FlexiGrid DSO guide's probabilistic congestion forecast: sampled scenarios through power-grid-model."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from cloud_controller.forecast.congestion import ScenarioCongestion
from cloud_controller.grid import Region, build_schutterwald_region

HOUSEHOLDS = list(range(0, 300, 15))  # 20 sites spread over the three stations


@pytest.fixture(scope="module")
def region() -> Region:
    return build_schutterwald_region()


def test_without_spread_it_is_pandapowers_deterministic_power_flow(region: Region) -> None:
    import pandapower as pp

    model = ScenarioCongestion(region, HOUSEHOLDS, n_scenarios=3)
    p50 = np.array([[2.0] * 20, [9.0] * 20])  # two intervals, kW per site
    f = model.forecast(p50, np.zeros_like(p50))
    assert f.elements == ("hvmv", "T_idx_118", "T_idx_77", "T_idx_80", "lines")
    net = copy.deepcopy(region.net)
    net.load["p_mw"] = 0.0
    net.load["q_mvar"] = 0.0
    net.sgen["in_service"] = False
    for k in range(2):
        for h in HOUSEHOLDS:
            net.load.at[int(region.site_load_idx[h]), "p_mw"] = p50[k, 0] / 1000.0
        pp.runpp(net, calculate_voltage_angles=False, numba=False)
        trafo = net.res_trafo.loading_percent
        assert region.hvmv_branch is not None
        names = {"hvmv": region.hvmv_branch, **region.station_branch}
        for e, element in enumerate(f.elements[:-1]):
            idx = int(region.grid.branch_names[names[element]].split(":")[1])
            assert f.loading_pct[k, e] == pytest.approx(trafo.at[idx], rel=1e-3, abs=1e-3)
        assert f.loading_pct[k, -1] == pytest.approx(net.res_line.loading_percent.max(), rel=1e-3)
    assert set(np.unique(f.p_exceed)) <= {0.0}  # nothing near its rating


def test_probability_of_exceeding_the_hvmv_limit(region: Region) -> None:
    model = ScenarioCongestion(region, HOUSEHOLDS, n_scenarios=400, seed=1)
    p50 = np.array([[5.0] * 20, [2.0] * 20, [8.0] * 20])  # fleet 100, 40, 160 kW
    sigma = np.full_like(p50, 2.0)  # fleet sigma = 2 * sqrt(20) = 8.9 kW
    f = model.forecast(p50, sigma, hvmv_limit_kw=100.0)
    assert f.p_exceed[0, 0] == pytest.approx(0.5, abs=0.08)  # median on the limit
    assert f.p_exceed[1, 0] == 0.0 and f.p_exceed[2, 0] == 1.0
    assert f.loading_pct[:, 0] == pytest.approx([100.0, 40.0, 160.0], abs=1.5)  # 400 draws: SE 0.45
    with pytest.raises(ValueError, match="20"):
        model.forecast(p50[:, :5], sigma[:, :5])
