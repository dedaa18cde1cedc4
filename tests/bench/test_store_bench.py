"""Store figures (marker `bench`, printed): samples/s into SQLite and a loopback PostgreSQL, 1 and 2 writers.

The measuring code is `gridflex.bench.store`; the anchor is SQLite with one writer in the
same run. Run: `.venv/bin/pytest -m bench -s tests/bench/test_store_bench.py`
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridflex.bench.store import bench_store_writers
from gridflex.ops.postgres import LoopbackPostgres

pytestmark = pytest.mark.bench


def test_store_samples_per_second_sqlite_vs_postgres(tmp_path: Path) -> None:
    n_sites, n_batches, size = 10, 10, 500
    figures = []
    with LoopbackPostgres() as pg:
        for kind in ("sqlite", "postgres"):
            for n in (1, 2):
                location = str(tmp_path / f"s{n}.sqlite") if kind == "sqlite" else pg.dsn(pg.fresh_schema())
                figures.append(
                    bench_store_writers(
                        "sqlite" if kind == "sqlite" else "postgres",
                        n,
                        location=location,
                        password=pg.password,
                        n_sites=n_sites,
                        n_batches=n_batches,
                        size=size,
                    )
                )
    anchor = figures[0].samples_per_s
    print(f"\nstore writes, {n_sites} sites x {n_batches} batches x {size} samples:")
    for f in figures:
        print(
            f"  {f.kind:8s} x{f.writers}: {f.samples_per_s:10,.0f} samples/s  ({f.samples_per_s / anchor:.2f} x SQLite x1)"
        )
    assert all(f.watermarks_ok for f in figures)
