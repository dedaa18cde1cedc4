"""The market's grid work on the 319-household Schutterwald region (marker `bench`): figures printed.

Run: `.venv/bin/pytest -m bench -s tests/bench/test_market_grid_bench.py`. One offer per
household at its station (0-3 kW per ISP, 1-60 EUR/kWh, min factor 0/0.5/1), 96 ISPs,
the three MV/LV stations as congestion points, each needing the forecast's relief at
risk 0.1 or 20 kW per ISP, whichever is more; a third of the houses export up to 12 kW of
PV at noon, so some cables' reverse room binds. Timed: building the grid view's AC model,
the DSO's needs, the grid rows, the clearing with them against the same clearing without
(the anchor, same run), and the AC check of the orders. Only the outcome is asserted.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud_controller.forecast.probabilistic import ProbabilisticCongestion
from cloud_controller.forecast.result import ForecastOptions
from cloud_controller.grid.region import build_schutterwald_region
from cloud_controller.market.clearing import ClearingOptions, clear
from cloud_controller.market.grid_check import ac_check_of, clear_on_grid, grid_inputs, pgm_power_flow
from cloud_controller.market.grid_view import GridView
from cloud_controller.market.products import FlexOffer, FlexRequest, OfferOption

pytestmark = pytest.mark.bench

DELIVERY = datetime(2030, 1, 15, 0, 0, tzinfo=UTC)
T = 96


@pytest.mark.timeout(1200)
def test_market_grid_work_on_the_region() -> None:
    region = build_schutterwald_region()
    n = region.n_sites
    rng = np.random.default_rng(0)
    evening = 1.0 + 0.8 * np.sin(np.linspace(0, 2 * np.pi, T))[:, None]
    daylight = np.clip(np.sin(np.linspace(-np.pi / 2, 3 * np.pi / 2, T)), 0.0, None)[:, None]
    pv = (np.arange(n) % 3 == 0)[None, :] * 12.0 * daylight  # a third of the houses export at noon
    p50 = evening * rng.uniform(1.0, 5.0, (1, n)) - pv
    starts = tuple(DELIVERY + timedelta(minutes=15 * k) for k in range(T))
    sites = tuple(f"h{i:03d}" for i in range(n))
    t0 = time.perf_counter()
    fc = ProbabilisticCongestion(region, list(range(n))).forecast(p50, 0.3 * p50 + 0.3, ForecastOptions())
    forecast_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pf = pgm_power_flow(region, list(range(n)))
    view = GridView(fc, starts, region.grid, sites, tuple(int(b) for b in region.site_bus), p50, pf)
    build_s = time.perf_counter() - t0
    cps = [st.lower() for st in region.station_branch]
    t0 = time.perf_counter()
    needs = {cp: view.relief_needed_kw(cp, 0.1) for cp in cps}
    need_s = time.perf_counter() - t0
    requests = [
        FlexRequest(f"r-{cp}", cp, {t: max(20.0, kw) for t, kw in needs[cp].items()}, 100.0) for cp in cps
    ]
    offers, offer_sites = [], {}
    for i, (site, st) in enumerate(zip(sites, region.site_station, strict=True)):
        if not st:
            continue
        kw = rng.uniform(0.0, 3.0, T)
        opt = OfferOption(
            "o", dict(zip(starts, kw, strict=True)), float(rng.uniform(1, 60)), float(rng.choice([0, 0.5, 1]))
        )
        offers.append(
            FlexOffer(
                f"o{i}",
                "fsp",
                st.lower(),
                (opt,),
                DELIVERY - timedelta(hours=6),
                DELIVERY + timedelta(days=1),
            )
        )
        offer_sites[f"o{i}"] = [site]
    now, opts = DELIVERY - timedelta(hours=4), ClearingOptions()
    t0 = time.perf_counter()
    gi = grid_inputs(
        view, [(o.offer_id, o.congestion_point, offer_sites[o.offer_id]) for o in offers], cps, 0.1
    )
    rows_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    anchor = clear(requests, offers, now=now, options=opts)
    anchor_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rowed = clear_on_grid(  # the rows built again inside: the whole path without the AC check
        requests,
        offers,
        offer_sites,
        now=now,
        options=opts,
        view=GridView(fc, starts, region.grid, sites, view.site_bus, p50),
        risk=0.1,
    )
    rowed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    violations = ac_check_of(view, offer_sites)(rowed.orders)
    ac_s = time.perf_counter() - t0
    print(
        f"\n{len(offers)} offers x {T} ISPs x {len(cps)} points on {n} households, {len(gi.rows)} grid rows: "
        f"forecast {forecast_s:.2f} s, AC model build {build_s:.2f} s, needs {need_s * 1e3:.1f} ms, "
        f"(total {sum(sum(v.values()) for v in needs.values()) / 4:.0f} kWh), rows {rows_s:.2f} s, clearing with rows {rowed_s:.2f} s vs without {anchor_s:.2f} s "
        f"(ratio {rowed_s / anchor_s:.1f}; with rows {len(rowed.orders)} orders, {rowed.cost_eur:.0f} EUR; "
        f"without {len(anchor.orders)}, {anchor.cost_eur:.0f} EUR), AC check of the orders "
        f"({2 * T} power flows) {ac_s:.2f} s, {len(violations)} violations"
    )
    assert rowed.grid_rows == len(gi.rows) > 0 and rowed.cost_eur >= anchor.cost_eur - 1e-6
