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
    # the month settled from the store (array read) is the month settled from the arrays
    assert fig.array_sites == 4 and fig.array_read_s > 0 and fig.array_settle_s > 0
    assert fig.net_eur_from_store == pytest.approx(fig.net_eur, rel=1e-12)
    assert fig.from_store_scaled_s == pytest.approx(fig.array_read_s + fig.array_settle_s)
