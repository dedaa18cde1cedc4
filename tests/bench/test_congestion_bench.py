"""`gridflex bench congestion` end to end at a small size (marker `bench`): every figure measured, errors bounded.

Run: `.venv/bin/pytest -m bench -s tests/bench/test_congestion_bench.py`. Timings are printed,
not asserted (docs/benchmarks.md has the figures); the fast method's error against the AC
batch is asserted, since it holds on any machine.
"""

from __future__ import annotations

import math

import pytest

from gridflex.bench.congestion import run_congestion_bench

pytestmark = pytest.mark.bench


@pytest.mark.timeout(1200)
def test_congestion_bench_measures_fast_and_ac_and_the_error() -> None:
    rows, setting = run_congestion_bench((10, 100), intervals=96, repeats=2)
    for r in rows:
        print(
            f"\n{r.scenarios:>5} scenarios: fast {r.fast_s:.3f} s (first {r.fast_first_s:.3f}), AC {r.ac_s:.2f} s, "
            f"ratio {r.ratio:.1f}, max |Δ loading| {r.loading_err_pp:.3f} pp, max |ΔV| {r.voltage_err_pu:.5f} pu, "
            f"stats {r.stats_err_pp:.3f} pp, P(exceed) {r.p_exceed_diff:.3f}"
        )
        assert r.ac_s is not None and r.ratio is not None and math.isfinite(r.ratio)
        assert r.loading_err_pp is not None and r.loading_err_pp <= 1.0
        assert r.voltage_err_pu is not None and r.voltage_err_pu <= 0.002
    print(f"anchor {setting['anchor_s']:.2f} s, model build {setting['build_s']:.2f} s")
    print(
        f"first call: cold {setting['first_cold_s']:.3f} s, after prepare {setting['first_prepared_s']:.3f} s "
        f"(prepare {setting['prepare_s']:.2f} s), warm {setting['first_warm_s']:.3f} s"
    )
    assert all(setting[k] > 0 for k in ("first_cold_s", "first_prepared_s", "prepare_s", "first_warm_s"))
    assert setting["households"] == 319 and setting["intervals"] == 96
