"""The probabilistic congestion forecast: every element against pandapower and the full AC batch."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from cloud_controller.forecast.probabilistic import ForecastOptions, ProbabilisticCongestion
from cloud_controller.grid import Region

from .conftest import HOUSES, evening

#: What the fast method is held to against the AC batch, scenario by scenario.
LOADING_ERROR_PP = 1.0
VOLTAGE_ERROR_PU = 0.002


def test_without_spread_every_element_is_pandapowers_power_flow(
    feeder: Region, model: ProbabilisticCongestion
) -> None:
    import pandapower as pp

    p50, _ = evening(6)
    p50 = p50[-1:]  # the peak interval: cables past their rating, far ends below 0.95 pu
    net = copy.deepcopy(feeder.net)
    net.load["p_mw"] = p50[0] / 1000.0
    pp.runpp(net, calculate_voltage_angles=True, numba=False)
    for method in ("fast", "ac"):
        f = model.forecast(p50, np.zeros_like(p50), ForecastOptions(n_scenarios=3, method=method))
        for e, (el, kind) in enumerate(zip(f.elements, f.kinds, strict=True)):
            idx = int(el.split(":")[1])
            want = {
                "transformer": net.res_trafo.loading_percent,
                "line": net.res_line.loading_percent,
                "bus": net.res_bus.vm_pu,
            }[kind].at[idx]
            assert f.expected[e, 0] == pytest.approx(want, rel=1e-4, abs=1e-4), (method, el)
            assert f.quantiles[0, e, 0] == pytest.approx(f.quantiles[2, e, 0], abs=1e-4)
    assert {"HV/MV", "station", "f1-0", "LV busbar"} <= set(f.names)
    assert f.kinds.count("line") == HOUSES and f.kinds.count("transformer") == 2


def test_fast_method_is_within_1_pp_and_2_mpu_of_the_ac_batch_scenario_by_scenario(
    model: ProbabilisticCongestion,
) -> None:
    p50, sigma = evening(6)
    intervals = np.arange(6)
    opt = ForecastOptions(n_scenarios=60, seed=3)
    fast_l, fast_v = model.scenario_values(p50, sigma, intervals, opt)
    ac_l, ac_v = model.scenario_values(
        p50, sigma, intervals, ForecastOptions(n_scenarios=60, seed=3, method="ac")
    )
    # the cases where the linearisation is tested hardest: past the rating, below the band
    assert np.nanmax(ac_l) > 100.0 and np.nanmin(ac_v) < 0.95
    assert np.max(np.abs(fast_l - ac_l)) <= LOADING_ERROR_PP
    assert np.max(np.abs(fast_v - ac_v)) <= VOLTAGE_ERROR_PU


def test_statistics_agree_between_the_methods_within_the_error_bound(model: ProbabilisticCongestion) -> None:
    p50, sigma = evening(6)
    fast = model.forecast(p50, sigma, ForecastOptions(n_scenarios=60))
    opt_ac = ForecastOptions(n_scenarios=60, method="ac")
    ac = model.forecast(p50, sigma, opt_ac)
    assert fast.elements == ac.elements and fast.method == "fast" and ac.method == "ac"
    loads = [e for e, k in enumerate(fast.kinds) if k != "bus"]
    buses = [e for e, k in enumerate(fast.kinds) if k == "bus"]
    assert np.max(np.abs(fast.quantiles - ac.quantiles)[:, loads]) <= LOADING_ERROR_PP
    assert np.max(np.abs(fast.quantiles - ac.quantiles)[:, buses]) <= VOLTAGE_ERROR_PU
    # P(exceed) can differ only by AC scenarios within the error bound of the limit
    ac_l, ac_v = model.scenario_values(p50, sigma, np.arange(6), opt_ac)
    lim = fast.limit_hi[loads][:, None, None]
    assert np.all(fast.p_exceed[loads] >= (ac_l > lim + LOADING_ERROR_PP).mean(axis=-1))
    assert np.all(fast.p_exceed[loads] <= (ac_l > lim - LOADING_ERROR_PP).mean(axis=-1))
    lo, err = 0.95, VOLTAGE_ERROR_PU  # nothing near the upper band here
    assert np.all(fast.p_exceed[buses] >= (ac_v < lo - err).mean(axis=-1))
    assert np.all(fast.p_exceed[buses] <= (ac_v < lo + err).mean(axis=-1))


def test_alert_names_the_element_its_intervals_p_exceed_and_loading(model: ProbabilisticCongestion) -> None:
    p50, sigma = evening(6)
    f = model.forecast(p50, sigma, ForecastOptions(n_scenarios=50, alert_level=0.2))
    head = f.index("f0-0")  # the first cable of feeder 0 carries its five houses
    alert = next(a for a in f.alerts if a.element == f.elements[head])
    assert alert.kind == "line" and alert.limit == "100 %"
    assert f.p_exceed[head, alert.peak] == alert.p_exceed >= 0.2
    assert alert.expected == pytest.approx(f.expected[head, alert.peak])
    assert np.all(f.p_exceed[head, alert.first : alert.last + 1] >= 0.2)
    assert alert.first == 0 or f.p_exceed[head, alert.first - 1] < 0.2
    assert alert.last == 5 or f.p_exceed[head, alert.last + 1] < 0.2
    quiet = model.forecast(p50 * 0.2, sigma * 0.2, ForecastOptions(n_scenarios=50))
    assert quiet.alerts == () and float(quiet.p_exceed.max()) == 0.0


def test_voltage_band_is_a_parameter(model: ProbabilisticCongestion) -> None:
    p50, sigma = evening(4)
    wide = model.forecast(p50, sigma, ForecastOptions(n_scenarios=40, v_band_pu=(0.9, 1.1)))
    narrow = model.forecast(p50, sigma, ForecastOptions(n_scenarios=40, v_band_pu=(0.97, 1.03)))
    buses = [e for e, k in enumerate(wide.kinds) if k == "bus"]
    assert narrow.p_exceed[buses].sum() > wide.p_exceed[buses].sum()
    assert narrow.limit_lo[buses[0]] == 0.97 and narrow.limit_hi[buses[0]] == 1.03
    far = narrow.index("bus:7")  # feeder 0's far end (the line f0-4 has the same name)
    assert any(a.element == narrow.elements[far] and a.limit == "0.97-1.03 pu" for a in narrow.alerts)


def test_fleet_limit_is_judged_like_a_normal_distribution(model: ProbabilisticCongestion) -> None:
    p50 = np.full((3, HOUSES), 5.0) * np.array([[1.0], [0.8], [1.2]])  # fleet 50, 40, 60 kW
    sigma = np.full_like(p50, 2.0)  # fleet σ = 2·√10 = 6.3 kW
    f = model.forecast(p50, sigma, ForecastOptions(n_scenarios=1000, seed=7), hvmv_limit_kw=50.0)
    e = f.index("fleet_limit")
    s = 2.0 * math.sqrt(HOUSES)
    for k, mean_kw in enumerate((50.0, 40.0, 60.0)):
        want = 0.5 * math.erfc((50.0 - mean_kw) / s / math.sqrt(2))
        assert f.p_exceed[e, k] == pytest.approx(want, abs=0.04)  # 1,000 draws: SE <= 0.016
        assert f.quantiles[0, e, k] == pytest.approx(100 * (mean_kw - 1.2816 * s) / 50, abs=1.5)
        assert f.quantiles[2, e, k] == pytest.approx(100 * (mean_kw + 1.2816 * s) / 50, abs=1.5)


def test_cdf_of_the_horizon_worst_is_monotone_and_ends_at_the_worst_scenario(
    model: ProbabilisticCongestion,
) -> None:
    p50, sigma = evening(4)
    opt = ForecastOptions(n_scenarios=40)
    f = model.forecast(p50, sigma, opt)
    assert (
        f.cdf.shape == (len(f.elements), len(f.cdf_levels)) and f.cdf_levels[0] == 0 and f.cdf_levels[-1] == 1
    )
    assert np.all(np.diff(f.cdf, axis=1) >= 0)
    loading, vm = model.scenario_values(p50, sigma, np.arange(4), opt)
    n_branch = loading.shape[0]
    assert f.cdf[:n_branch, -1] == pytest.approx(loading.max(axis=(1, 2)), abs=1e-3)
    deviation = np.abs(vm - 1.0).max(axis=1)  # per bus and scenario over the horizon
    assert f.cdf[n_branch:, 0] == pytest.approx(deviation.min(axis=1), abs=1e-6)


def test_ac_check_of_the_most_uncertain_interval_takes_the_ac_numbers(model: ProbabilisticCongestion) -> None:
    p50, sigma = evening(6)
    ac = model.forecast(p50, sigma, ForecastOptions(n_scenarios=40, method="ac"))
    f = model.forecast(p50, sigma, ForecastOptions(n_scenarios=40, ac_intervals=2))
    assert len(f.ac_checked) == 2
    for k in f.ac_checked:
        assert f.p_exceed[:, k] == pytest.approx(ac.p_exceed[:, k])
        assert f.quantiles[:, :, k] == pytest.approx(ac.quantiles[:, :, k], abs=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_scenarios": 0}, "n_scenarios"),
        ({"method": "dc"}, "method"),
        ({"v_band_pu": (1.05, 0.95)}, "v_band_pu"),
        ({"alert_level": 0.0}, "alert_level"),
    ],
    ids=["no-scenarios", "unknown-method", "band-reversed", "alert-level-zero"],
)
def test_bad_options_are_refused_with_the_option_named(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ForecastOptions(**kwargs)  # type: ignore[arg-type]


def test_bad_inputs_are_refused(model: ProbabilisticCongestion) -> None:
    p50, sigma = evening(2)
    with pytest.raises(ValueError, match="10"):
        model.forecast(p50[:, :4], sigma[:, :4])
    with pytest.raises(ValueError, match="finite"):
        model.forecast(np.full_like(p50, np.nan), sigma)
    with pytest.raises(ValueError, match="background_kw"):
        model.forecast(p50, sigma, background_kw=np.zeros((2, 3)))


def test_prepare_caches_the_draws_and_leaves_the_forecast_unchanged(feeder: Region) -> None:
    """`prepare()` (the planner's build) pays the first call's costs and changes no number."""
    p50, sigma = evening(6)
    opt = ForecastOptions(n_scenarios=40, seed=9)
    plain = ProbabilisticCongestion(feeder, list(range(10))).forecast(p50, sigma, opt)
    prepared = ProbabilisticCongestion(feeder, list(range(10)))
    assert prepared.prepare(6, opt) > 0
    assert sorted(prepared._z) == [(9, t, 40) for t in range(6)]
    again = prepared.forecast(p50, sigma, opt)
    np.testing.assert_array_equal(again.quantiles, plain.quantiles)
    np.testing.assert_array_equal(again.p_exceed, plain.p_exceed)
    with pytest.raises(ValueError, match="n_intervals"):
        prepared.prepare(0)
