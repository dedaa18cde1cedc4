"""The probabilistic congestion forecast on meshed / multi-feed regions (marker `bench`): time vs scenarios.

Run: `.venv/bin/pytest -m bench -s tests/bench/test_congestion_meshed_bench.py`. On such a region
every scenario goes through the AC batch (no tree for the fast method), so the figures are the
AC batch's: 10, 100 and 1,000 scenarios x 96 intervals on the test ring (`loop_two_feeds`) and
on the whole `mv_oberrhein` (two feeds, 179 buses, its 147 loads as sites, its 153 sgens at
scaling 1). Timings are printed with the anchor (`gridflex.bench.congestion.anchor_s`, measured
in the same run), not asserted; that every scenario ran is asserted.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pytest

from cloud_controller.forecast.probabilistic import ForecastOptions, ProbabilisticCongestion
from cloud_controller.grid.meshed.planning import meshed_region
from gridflex.bench.congestion import anchor_s
from tests.unit.grid.meshed.nets import loop_two_feeds

pytestmark = pytest.mark.bench
INTERVALS = 96


def _oberrhein() -> Any:
    import pandapower.networks as pn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = pn.mv_oberrhein()
    net.sgen["scaling"] = 1.0
    return net


def _day(p_peak_kw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shape = 0.5 + 0.6 * np.sin(np.linspace(0.0, np.pi, INTERVALS)) ** 2
    p50 = shape[:, None] * p_peak_kw[None, :]
    return p50, 0.25 * p50 + 0.5


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", ["loop_two_feeds", "mv_oberrhein"])
def test_meshed_forecast_time_vs_scenarios(name: str) -> None:
    net = loop_two_feeds() if name == "loop_two_feeds" else _oberrhein()
    t0 = time.perf_counter()
    region = meshed_region(net)
    model = ProbabilisticCongestion(region, list(range(region.n_sites)))
    build_s = time.perf_counter() - t0
    peak = (net.load.p_mw * net.load.scaling).to_numpy(dtype=float) * 1000.0
    p50, sigma = _day(peak)
    anchor = anchor_s()
    print(
        f"\n{name}: {region.grid.n_bus} buses, {region.grid.n_branch} branches, {region.n_sites} sites, "
        f"build {build_s:.3f} s, anchor {anchor:.3f} s"
    )
    model.prepare(INTERVALS, ForecastOptions(n_scenarios=10))
    for s in (10, 100, 1000):
        opt = ForecastOptions(n_scenarios=s)
        first = model.forecast(p50, sigma, opt)
        t0 = time.perf_counter()
        f = model.forecast(p50, sigma, opt)
        warm = time.perf_counter() - t0
        assert f.method == "ac" and f.failed_steps == 0 and np.all(np.isfinite(f.expected))
        print(
            f"  {s:>5} x {INTERVALS}: first {first.compute_s:.3f} s, warm {warm:.3f} s "
            f"({warm / anchor:.1f} anchors, {1e6 * warm / (s * INTERVALS):.0f} us per power flow), "
            f"max loading p90 {np.max(f.quantiles[-1, : len(model.branch_refs)]):.1f} %"
        )
