"""The market's grid work on a meshed, two-feed region (marker `bench`): figures printed.

Run: `.venv/bin/pytest -m bench -s tests/bench/test_market_meshed_bench.py`. `mv_oberrhein`
with every switch closed (rings and two HV/MV feeds: a `DcGrid`), its 147 loads as sites,
96 ISPs at the loads' base kW × (1 ± 0.5 sine); the congestion point is the element the
forecast loads most; it needs 200 kW per ISP. One offer per site (5-50 kW per ISP, 1-60
EUR/kWh, minimum factor 0/0.5/1). Timed: the forecast, the view's PTDF and DC median flows,
the AC model, the PTDF rows, the clearing with them (rows, PTDF cover and AC check) against
the same clearing without (the anchor, same run). Only the outcome is asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import numpy as np
import pytest

from cloud_controller.forecast.probabilistic import ProbabilisticCongestion
from cloud_controller.forecast.result import ForecastOptions
from cloud_controller.grid.meshed.planning import DcGrid, meshed_region
from cloud_controller.market.clearing import ClearingOptions, clear
from cloud_controller.market.forecast_hook import meshed_view_parts
from cloud_controller.market.grid_check import clear_on_grid, grid_inputs, pgm_power_flow
from cloud_controller.market.grid_view import GridView
from cloud_controller.market.products import FlexOffer, FlexRequest, OfferOption
from tests.unit.grid.meshed.nets import case

pytestmark = pytest.mark.bench

D = datetime(2030, 1, 15, tzinfo=UTC)
T = 96
R = TypeVar("R")


def _timed(label: str, f: Callable[[], R]) -> tuple[R, float]:
    w, c = time.perf_counter(), time.process_time()
    out = f()
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    print(f"{label}: {wall:.3f} s wall, {cpu:.3f} s CPU")
    return out, wall


@pytest.mark.timeout(600)
def test_market_grid_work_on_a_meshed_region() -> None:
    net = case("mv_oberrhein")
    net.switch["closed"] = True
    region = meshed_region(net)
    assert isinstance(region.grid, DcGrid) and len(region.grid.feed_bus) == 1
    n = region.n_sites
    print(f"\n{region.grid.n_bus} buses, {region.grid.n_branch} branches, {n} sites, 2 feeds")
    rng = np.random.default_rng(0)
    base = np.asarray(net.load.p_mw.to_numpy()[net.load.in_service.to_numpy(dtype=bool)]) * 1000.0
    p50 = base[None, :] * (1.0 + 0.5 * np.sin(np.linspace(0, 2 * np.pi, T)))[:, None]
    fc, _ = _timed(
        "forecast (10 scenarios x 96, AC)",
        lambda: ProbabilisticCongestion(region, list(range(n))).forecast(
            p50, 0.05 * np.abs(p50) + 1.0, ForecastOptions(n_scenarios=10)
        ),
    )
    starts = tuple(D + timedelta(minutes=15 * k) for k in range(T))
    site_bus = tuple(int(b) for b in region.site_bus)
    (ptdf, flows), _ = _timed("PTDF + DC median flows", lambda: meshed_view_parts(region.grid, site_bus, p50))  # type: ignore[arg-type]
    pf, _ = _timed("AC model of the view", lambda: pgm_power_flow(region, list(range(n))))
    sites = tuple(f"s{i}" for i in range(n))
    view = GridView(fc, starts, region.grid, sites, site_bus, p50, pf, ptdf, flows)
    k = int(np.argmax(fc.quantiles[-1, : region.grid.n_branch].max(axis=1)))
    cp = fc.elements[k]
    need = {t: 200.0 for t in starts}
    offers = [
        FlexOffer(
            f"o{i}",
            "fsp",
            cp,
            (
                OfferOption(
                    "o",
                    {t: float(rng.uniform(5, 50)) for t in starts},
                    float(rng.uniform(1, 60)),
                    float(rng.choice([0.0, 0.5, 1.0])),
                ),
            ),
            D - timedelta(hours=5),
            D + timedelta(days=1),
        )
        for i in range(n)
    ]
    sites_of = {f"o{i}": [sites[i]] for i in range(n)}
    gi, _ = _timed(
        "PTDF rows",
        lambda: grid_inputs(view, [(o.offer_id, cp, sites_of[o.offer_id]) for o in offers], [cp], 0.1),
    )
    now = D - timedelta(hours=3)
    request = [FlexRequest("r", cp, need, 100.0)]
    anchor, w0 = _timed("clearing without rows (anchor)", lambda: clear(request, offers, now=now))
    rowed, w1 = _timed(
        "clearing with rows, PTDF cover and the AC check",
        lambda: clear_on_grid(
            request, offers, sites_of, now=now, options=ClearingOptions(), view=view, risk=0.1
        ),
    )
    print(
        f"congestion point {cp} (90 % quantile up to {fc.quantiles[-1, k].max():.0f} %); {len(gi.rows)} rows; "
        f"orders {len(anchor.orders)} -> {len(rowed.orders)}; cost {anchor.cost_eur:.0f} -> {rowed.cost_eur:.0f} EUR; "
        f"status {anchor.status} -> {rowed.status}; ratio {w1 / w0:.1f}"
    )
    assert rowed.grid_rows == len(gi.rows) > 0 and rowed.violations == ()
