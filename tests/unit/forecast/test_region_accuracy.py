"""The fast forecast against the full AC batch on the 319-household region, 100 x 96 (slow: ~30 s).

What docs/grid.md states: scenario by scenario within 1 percentage point of loading and
0.002 pu of voltage on every branch and bus of `build_schutterwald_region()`.
"""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.forecast.probabilistic import ProbabilisticCongestion
from cloud_controller.forecast.result import ForecastOptions
from cloud_controller.grid import build_schutterwald_region

pytestmark = pytest.mark.slow


def evening_fleet(n: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, n) medians with a morning and an evening peak (as `gridflex bench congestion`), σ 0.3 kW + 30 %."""
    rng = np.random.default_rng(1)
    h = np.arange(T) / (T / 24)
    shape = 0.4 + 0.5 * np.exp(-(((h - 19) / 2.5) ** 2)) + 0.25 * np.exp(-(((h - 8) / 1.5) ** 2))
    p50 = 3.0 * shape[:, None] * rng.lognormal(0.0, 0.35, (T, n))
    return p50, 0.3 + 0.3 * p50


def test_fast_forecast_of_the_region_is_within_1_pp_and_2_mpu_of_the_ac_batch() -> None:
    region = build_schutterwald_region()
    model = ProbabilisticCongestion(region, list(range(region.n_sites)))
    p50, sigma = evening_fleet(region.n_sites, 96)
    fast_opt = ForecastOptions(n_scenarios=100)
    ac_opt = ForecastOptions(n_scenarios=100, method="ac")
    for a in range(0, 96, 16):
        t = np.arange(a, a + 16)
        fl, fv = model.scenario_values(p50, sigma, t, fast_opt)
        al, av = model.scenario_values(p50, sigma, t, ac_opt)
        assert np.max(np.abs(fl - al)) <= 1.0
        assert np.max(np.abs(fv - av)) <= 0.002
    fast = model.forecast(p50, sigma, fast_opt)
    assert len(fast.elements) == region.grid.n_branch + region.grid.n_bus and fast.alerts
