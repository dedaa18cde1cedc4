"""`gridflex bench congestion`: the probabilistic congestion forecast, fast vs the full AC batch.

On the 319-household region (`build_schutterwald_region()`), every household a fleet site with
an evening-peak median (3 kW x a per-house lognormal) and σ = 0.3 kW + 30 %, over 96 intervals:
time per forecast of the fast method (AC base case + linear scenarios) and of the AC batch at
10, 100 and 1,000 scenarios, their ratio, and the fast method's error against the AC batch on
the same draws — scenario by scenario (max |Δ loading| in percentage points, max |ΔV| in pu)
and on the statistics (p10/p50/p90, P(exceed)). A 1000^3 matrix product timed in the same run
is the anchor, so figures from a loaded machine can be compared (`anchor_s`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cloud_controller import ForecastOptions, ProbabilisticCongestion

__all__ = ["CongestionBenchRow", "evening_fleet", "first_call", "run_congestion_bench"]


@dataclass(frozen=True)
class CongestionBenchRow:
    """One scenario count: times and the fast method's error against the AC batch."""

    scenarios: int
    fast_s: float  # median of the repeats (draws cached after the first call)
    fast_first_s: float  # the first call (draws not cached yet)
    ac_s: float | None  # None where the AC batch was skipped (--ac-max)
    loading_err_pp: float | None  # max over scenarios, intervals and branches
    voltage_err_pu: float | None  # max over scenarios, intervals and buses
    stats_err_pp: float | None  # max |Δ| of p10/p50/p90 over every branch
    p_exceed_diff: float | None  # max |Δ P(exceed)| over every element

    @property
    def ratio(self) -> float | None:
        """AC time over fast time."""
        return None if self.ac_s is None else self.ac_s / self.fast_s


def evening_fleet(n: int, T: int = 96, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(T, n) medians with a morning and an evening peak, and their σ (0.3 kW + 30 %)."""
    rng = np.random.default_rng(seed)
    h = np.arange(T) / (T / 24)
    shape = 0.4 + 0.5 * np.exp(-(((h - 19) / 2.5) ** 2)) + 0.25 * np.exp(-(((h - 8) / 1.5) ** 2))
    p50 = 3.0 * shape[:, None] * rng.lognormal(0.0, 0.35, (T, n))
    return p50, 0.3 + 0.3 * p50


def anchor_s() -> float:
    """Seconds of three 1000 x 1000 float64 matrix products (the machine's speed in this run)."""
    a = np.random.default_rng(0).random((1000, 1000))
    t0 = time.perf_counter()
    for _ in range(3):
        a @ a
    return time.perf_counter() - t0


def run_congestion_bench(
    scenarios: Sequence[int] = (10, 100, 1000), *, intervals: int = 96, repeats: int = 3, ac_max: int = 1000
) -> tuple[list[CongestionBenchRow], dict[str, float]]:
    """Rows per scenario count, and the setting: region build, model build, anchor seconds, sizes."""
    from cloud_controller import ForecastOptions, ProbabilisticCongestion, build_schutterwald_region

    t0 = time.perf_counter()
    region = build_schutterwald_region()
    region_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = ProbabilisticCongestion(region, list(range(region.n_sites)))
    build_s = time.perf_counter() - t0
    p50, sigma = evening_fleet(region.n_sites, intervals)
    cold = first_call(model, p50, sigma)  # before anything else warms the process
    rows = []
    for s in scenarios:
        fast_opt = ForecastOptions(n_scenarios=s, seed=s)
        t0 = time.perf_counter()
        fast = model.forecast(p50, sigma, fast_opt)
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fast = model.forecast(p50, sigma, fast_opt)
            times.append(time.perf_counter() - t0)
        ac_s = l_err = v_err = s_err = p_diff = None
        if s <= ac_max:
            ac_opt = ForecastOptions(n_scenarios=s, seed=s, method="ac")
            t0 = time.perf_counter()
            ac = model.forecast(p50, sigma, ac_opt)
            ac_s = time.perf_counter() - t0
            branches = [e for e, k in enumerate(fast.kinds) if k != "bus"]
            s_err = float(np.max(np.abs(fast.quantiles - ac.quantiles)[:, branches]))
            p_diff = float(np.max(np.abs(fast.p_exceed - ac.p_exceed)))
            l_err, v_err = _scenario_errors(model, p50, sigma, fast_opt, ac_opt, intervals)
        rows.append(CongestionBenchRow(s, float(np.median(times)), first, ac_s, l_err, v_err, s_err, p_diff))
    setting = {
        **cold,
        "region_s": region_s,
        "build_s": build_s,
        "anchor_s": anchor_s(),
        "households": float(region.n_sites),
        "branches": float(region.grid.n_branch),
        "buses": float(region.grid.n_bus),
        "intervals": float(intervals),
        "peak_loading_pct": float(
            np.nanmax(fast.expected[[e for e, k in enumerate(fast.kinds) if k != "bus"]])
        ),
        "min_p10_pu": float(
            np.nanmin(fast.quantiles[0, [e for e, k in enumerate(fast.kinds) if k == "bus"]])
        ),
    }
    return rows, setting


def first_call(
    model: ProbabilisticCongestion, p50: np.ndarray, sigma: np.ndarray, n_scenarios: int = 100
) -> dict[str, float]:
    """The first forecast of a new model, cold and after `prepare()`, against the warm forecast.

    Run first in a process: the cold call is then as cold as the planner's first period.
    """
    from cloud_controller import ForecastOptions, ProbabilisticCongestion

    opt = ForecastOptions(n_scenarios=n_scenarios)
    t0 = time.perf_counter()
    model.forecast(p50, sigma, opt)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.forecast(p50, sigma, opt)
        warm.append(time.perf_counter() - t0)
    fresh = ProbabilisticCongestion(model.region, model.households.tolist())
    prepare_s = fresh.prepare(p50.shape[0], opt)
    t0 = time.perf_counter()
    fresh.forecast(p50, sigma, opt)
    prepared = time.perf_counter() - t0
    return {
        "first_cold_s": cold,
        "first_prepared_s": prepared,
        "prepare_s": prepare_s,
        "first_warm_s": float(np.median(warm)),
    }


def _scenario_errors(
    model: ProbabilisticCongestion,
    p50: np.ndarray,
    sigma: np.ndarray,
    fast_opt: ForecastOptions,
    ac_opt: ForecastOptions,
    intervals: int,
) -> tuple[float, float]:
    """Max scenario-by-scenario errors, over the intervals in blocks of 8 (bounded memory)."""
    l_err = v_err = 0.0
    for a in range(0, intervals, 8):
        t = np.arange(a, min(a + 8, intervals))
        fl, fv = model.scenario_values(p50, sigma, t, fast_opt)
        al, av = model.scenario_values(p50, sigma, t, ac_opt)
        l_err = max(l_err, float(np.nanmax(np.abs(fl - al))))
        v_err = max(v_err, float(np.nanmax(np.abs(fv - av))))
    return l_err, v_err
