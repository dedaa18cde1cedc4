"""The probabilistic congestion forecast on meshed and multi-feed regions: every scenario through the AC batch.

The nets: `loop_two_feeds` (a 20 kV ring with a chord, two ext_grids, an sgen) and a variant
with the elements pandapower nets bring along (a generating sgen with reactive power, a
storage, a shunt, a closed bus-bus switch). Without spread the forecast must be pandapower's
`runpp`; with a spread its statistics must be those of the AC batch's scenarios.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import pytest

from cloud_controller.forecast.probabilistic import ForecastOptions, ProbabilisticCongestion
from cloud_controller.grid import Region
from cloud_controller.grid.meshed.planning import meshed_region
from tests.unit.grid.meshed.nets import loop_two_feeds

LOADING_TOL_PP = 0.1
VOLTAGE_TOL_PU = 1e-4
#: per-site medians (kW) of one peak interval: line L01 (rated 30 %) past its limit
PEAK_KW = np.array([900.0, 600.0, 1000.0, 700.0, 400.0, 1300.0])


def ring_with_injections() -> Any:
    """`loop_two_feeds` plus a generating sgen, a storage, a shunt and a site behind a closed bus-bus switch."""
    import pandapower as pp

    net = loop_two_feeds()
    net.sgen.loc[0, ["p_mw", "q_mvar"]] = [0.7, 0.2]
    pp.create_sgen(net, 2, p_mw=0.4, q_mvar=-0.1, scaling=0.5, name="pv2")
    pp.create_storage(net, 5, p_mw=0.3, max_e_mwh=1.0, name="battery5")  # charging: a load
    pp.create_shunt(net, 1, q_mvar=0.3, p_mw=0.01, name="reactor1")
    b = pp.create_bus(net, vn_kv=20.0, name="busbar 4b")
    pp.create_switch(net, 4, b, et="b", closed=True)
    pp.create_load(net, b, p_mw=0.5, name="site6")
    return net


@pytest.fixture(scope="module", params=["loop_two_feeds", "ring_with_injections"])
def net(request: pytest.FixtureRequest) -> Any:
    return loop_two_feeds() if request.param == "loop_two_feeds" else ring_with_injections()


@pytest.fixture(scope="module")
def region(net: Any) -> Region:
    return meshed_region(net)


@pytest.fixture(scope="module")
def model(region: Region) -> ProbabilisticCongestion:
    return ProbabilisticCongestion(region, list(range(region.n_sites)))


def _peak(region: Region) -> np.ndarray:
    return np.resize(PEAK_KW, region.n_sites)[None, :]


def _runpp(net: Any, site_kw: np.ndarray) -> Any:
    import pandapower as pp

    out = copy.deepcopy(net)
    out.load["p_mw"] = site_kw / 1000.0
    out.load["q_mvar"] = 0.0  # the forecast's sites are at unity power factor, their kW as given
    out.load["scaling"] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(out, calculate_voltage_angles=True, numba=False)
    return out


def _want(res: Any, element: str) -> float:
    table, idx = element.split(":")
    if table == "bus":
        return float(res.res_bus.vm_pu.at[int(idx)])
    return float(res[f"res_{table}"].loading_percent.at[int(idx)])


def test_without_spread_every_element_is_pandapowers_runpp(net: Any, model: ProbabilisticCongestion) -> None:
    p50 = _peak(model.region)
    res = _runpp(net, p50[0])
    for method in ("fast", "ac"):  # "fast" has no tree here: it runs the AC batch and says so
        f = model.forecast(p50, np.zeros_like(p50), ForecastOptions(n_scenarios=3, method=method))
        assert f.method == "ac" and f.failed_steps == 0
        assert set(f.kinds) == {"line", "bus"}
        assert f.kinds.count("line") == len(net.line) and f.kinds.count("bus") == model.region.grid.n_bus
        for e, (el, kind) in enumerate(zip(f.elements, f.kinds, strict=True)):
            tol = VOLTAGE_TOL_PU if kind == "bus" else LOADING_TOL_PP
            assert abs(f.expected[e, 0] - _want(res, el)) <= tol, (method, el)
            assert f.quantiles[0, e, 0] == pytest.approx(f.quantiles[-1, e, 0], abs=1e-4)
    # line L01 is rated at 30 %: the forecast says it is over, for sure, and alerts on it
    l01 = f.elements.index("line:0")
    assert f.expected[l01, 0] > 30.0 and f.p_exceed[l01, 0] == 1.0
    assert any(a.element == "line:0" for a in f.alerts)


def test_a_scenario_is_pandapowers_runpp_of_its_draw(net: Any, model: ProbabilisticCongestion) -> None:
    p50 = _peak(model.region)
    sigma = 0.3 * p50
    opt = ForecastOptions(n_scenarios=4, seed=5)
    loading, vm = model.scenario_values(p50, sigma, [0], opt)
    z = np.random.default_rng([opt.seed, 0]).standard_normal(
        (model.n_sites, opt.n_scenarios), dtype=np.float32
    )
    for s in (0, 3):
        res = _runpp(net, p50[0] + sigma[0] * z[:, s])
        for k, ref in enumerate(model.branch_refs):
            assert abs(loading[k, 0, s] - _want(res, ref)) <= LOADING_TOL_PP, ref
        for i, ref in enumerate(model.bus_refs):
            assert abs(vm[i, 0, s] - _want(res, ref)) <= VOLTAGE_TOL_PU, ref


def test_with_spread_the_statistics_are_the_ac_batchs_scenarios(model: ProbabilisticCongestion) -> None:
    T = 4
    p50 = _peak(model.region) * np.linspace(0.6, 1.1, T)[:, None]
    sigma = 0.25 * p50 + 20.0
    opt = ForecastOptions(n_scenarios=200, seed=2)
    f = model.forecast(p50, sigma, opt)
    loading, vm = model.scenario_values(p50, sigma, np.arange(T), opt)
    n_b = len(model.branch_refs)
    assert f.method == "ac"
    np.testing.assert_allclose(f.expected[:n_b], loading.mean(axis=-1), atol=1e-3)
    np.testing.assert_allclose(f.expected[n_b:], vm.mean(axis=-1), atol=1e-6)
    limit = np.asarray(f.limit_hi[:n_b])[:, None, None]
    np.testing.assert_allclose(f.p_exceed[:n_b], (loading > limit).mean(axis=-1), atol=1e-9)
    out = (vm < 0.95) | (vm > 1.05)
    np.testing.assert_allclose(f.p_exceed[n_b:], out.mean(axis=-1), atol=1e-9)
    # a spread, and an element near its limit: P(exceed) strictly between 0 and 1 somewhere
    assert np.any((f.p_exceed > 0.0) & (f.p_exceed < 1.0))
    # the horizon-worst CDF ends at the worst scenario's value
    np.testing.assert_allclose(f.cdf[:n_b, -1], loading.max(axis=(1, 2)), atol=1e-3)


def test_limits_in_force_and_bus_bands_are_honoured(model: ProbabilisticCongestion) -> None:
    T = 3
    p50 = _peak(model.region) * np.ones((T, 1))
    sigma = 0.25 * p50
    opt = ForecastOptions(n_scenarios=100, seed=1)
    loading, vm = model.scenario_values(p50, sigma, np.arange(T), opt)
    n_b, n_v = len(model.branch_refs), len(model.bus_refs)
    # interval 1: every branch limited at its median loading; others at 1000 %
    lim = np.full((T, n_b), 1000.0)
    lim[1] = np.median(loading[:, 1, :], axis=-1)
    lo, hi = np.full(n_v, 0.9), np.full(n_v, 1.2)
    lo[1] = np.median(vm[1, 0, :])  # bus 1's own band starts at its median voltage in interval 0
    f = model.forecast(p50, sigma, opt, branch_limit_pct=lim, bus_band_pu=(lo, hi))
    assert np.all(f.p_exceed[:n_b, [0, 2]] == 0.0)
    np.testing.assert_allclose(f.p_exceed[:n_b, 1], (loading[:, 1, :] > lim[1][:, None]).mean(axis=-1))
    np.testing.assert_allclose(f.limit_hi[:n_b], lim[1])
    assert f.p_exceed[n_b + 1, 0] == pytest.approx(0.5, abs=0.02)
    np.testing.assert_allclose(f.limit_lo[n_b:], lo)


@pytest.mark.slow
@pytest.mark.parametrize("close_all_switches", [False, True], ids=["as_shipped", "switches_closed"])
def test_mv_oberrhein_without_spread_is_runpp_on_every_element(close_all_switches: bool) -> None:
    """The whole mv_oberrhein: two feeds, 150° transformers with taps, 153 sgens at scaling 1 (loops if closed)."""
    import pandapower.networks as pn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = pn.mv_oberrhein()
    net.sgen["scaling"] = 1.0
    if close_all_switches:
        net.switch["closed"] = True
    region = meshed_region(net)
    model = ProbabilisticCongestion(region, list(range(region.n_sites)))
    p50 = (net.load.p_mw * net.load.scaling).to_numpy(dtype=float)[None, :] * 1000.0
    f = model.forecast(p50, np.zeros_like(p50), ForecastOptions(n_scenarios=2))
    res = _runpp(net, p50[0])
    assert f.method == "ac" and f.kinds.count("transformer") == 2
    for e, (el, kind) in enumerate(zip(f.elements, f.kinds, strict=True)):
        tol = VOLTAGE_TOL_PU if kind == "bus" else LOADING_TOL_PP
        assert abs(f.expected[e, 0] - _want(res, el)) <= tol, el


def test_an_envelope_on_a_ring_line_is_judged_in_its_intervals(model: ProbabilisticCongestion) -> None:
    """The limits in force (`limits_for_region`, a DSO envelope by line name) on a meshed region."""
    from datetime import UTC, datetime, timedelta

    from cloud_controller.forecast.limits_input import forecast_limits
    from cloud_controller.grid.limits import Envelope
    from cloud_controller.grid.limits_config import limits_for_region

    t0, period_s, T = datetime(2030, 1, 15, 17, tzinfo=UTC), 900.0, 4
    starts = [t0 + timedelta(seconds=k * period_s) for k in range(T)]
    limits = limits_for_region(model.region).with_envelopes(
        [Envelope("L12", starts[1], starts[3], max_loading_pct=1.0)]
    )
    pct, band = forecast_limits(limits, model.branch_refs, model.bus_refs, starts, period_s)
    k = model.branch_refs.index("line:1")
    np.testing.assert_allclose(pct[:, k], [100.0, 1.0, 1.0, 100.0])
    p50 = _peak(model.region) * np.ones((T, 1))
    f = model.forecast(
        p50, 0.1 * p50, ForecastOptions(n_scenarios=50), branch_limit_pct=pct, bus_band_pu=band
    )
    e = f.elements.index("line:1")
    assert f.names[e] == "L12" and f.limit_hi[e] == pytest.approx(1.0)
    assert f.p_exceed[e].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert any(a.element == "line:1" for a in f.alerts)
