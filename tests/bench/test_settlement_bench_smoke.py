"""The settlement bench at a tiny size: the arrays, the per-order path and the store settle to the same net."""

from __future__ import annotations

import pytest

from gridflex.bench.settlement import settlement_figures


def test_settlement_bench_paths_agree_and_time_is_measured() -> None:
    fig = settlement_figures(4, per_order_sites=2, store_sites=2)
    assert fig.sites == 4 and fig.orders == 40  # 10 order days per site
    assert fig.net_eur_batch_sample == pytest.approx(fig.net_eur_per_order_sample, rel=1e-9)
    assert fig.net_eur_batch_sample > 0 and fig.net_eur > fig.net_eur_batch_sample
    assert fig.batch_s > 0 and fig.anchor_s > 0 and fig.per_order_s > 0
    assert fig.per_order_scaled_s == pytest.approx(fig.per_order_s * 2)
    assert fig.store_read_s > 0 and fig.store_read_scaled_s == pytest.approx(fig.store_read_s * 2)
    # the month settled from each store: rollups = samples = written, net = from the arrays
    for month in (fig.sqlite, fig.postgres):
        assert month is not None and month.sites == 4 and month.samples == 4 * 51 * 96
        assert month.same and month.net_eur == pytest.approx(fig.net_eur, rel=1e-12)
        assert month.raw_s > 0 and month.rollup_s > 0 and month.settle_s > 0 and month.backfill_s > 0
        assert month.month_s == pytest.approx(month.rollup_s + month.settle_s)
    assert fig.postgres is not None and fig.postgres.rollup_server_cpu_s >= 0.0
    assert fig.from_store_scaled_s == pytest.approx(fig.sqlite.month_s)
