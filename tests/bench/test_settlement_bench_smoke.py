"""The settlement bench at a tiny size: the arrays, the per-order path and the store settle to the same net."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gridflex.bench.settlement import settlement_figures
from gridflex.bench.store import rollup_write_cost


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


def test_rollup_write_cost_counts_every_sample_with_and_without(tmp_path: Path) -> None:
    cost = rollup_write_cost(
        "sqlite", lambda k: str(tmp_path / f"w{k}.sqlite"), size=10, samples=200, n_sites=2, rounds=1
    )
    assert cost.size == 10 and len(cost.with_per_s) == len(cost.without_per_s) == 1
    assert min(cost.with_per_s + cost.without_per_s) > 0 and cost.ratio > 0
    assert min(cost.with_cpu_us + cost.without_cpu_us) > 0
    # the run with rollups kept them (one row per site and day), the one without kept none
    with sqlite3.connect(tmp_path / "w1.sqlite") as db:
        assert db.execute("SELECT count(*) FROM isp_rollups").fetchone()[0] == 2
    with sqlite3.connect(tmp_path / "w0.sqlite") as db:
        assert db.execute("SELECT count(*) FROM isp_rollups").fetchone()[0] == 0
