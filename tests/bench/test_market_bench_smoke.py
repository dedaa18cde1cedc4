"""The market bench at a tiny size: both clearings run, the lumpy one is never cheaper than its LP anchor."""

from __future__ import annotations

from datetime import timedelta

from cloud_controller.market import clear
from gridflex.bench.market import DELIVERY, _divisible, market_case, market_figures


def test_market_bench_runs_and_the_lp_anchor_bounds_the_milp() -> None:
    fig = market_figures(20, 8, 2)
    assert (fig.offers, fig.isps, fig.congestion_points) == (20, 8, 2)
    assert fig.milp_s > 0 and fig.lp_s > 0 and fig.orders > 0
    requests, offers = market_case(20, 8, 2)
    now = DELIVERY - timedelta(hours=4)
    lumpy, divisible = clear(requests, offers, now=now), clear(requests, _divisible(offers), now=now)
    # the relaxation can only do better: its cost + shortfall value is a lower bound
    assert divisible.welfare_eur >= lumpy.welfare_eur - 1e-6 * abs(lumpy.welfare_eur)
