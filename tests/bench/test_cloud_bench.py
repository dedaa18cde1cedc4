"""Cloud controller figures (marker `bench`, printed): ingest samples/s through Mosquitto,
plan() time per period for 100 and 1,000 sites, controller RSS. The measuring code is in
`gridflex.bench.ingest` and `gridflex.bench.plan`.

Run: `.venv/bin/pytest -m bench -s tests/bench/test_cloud_bench.py`
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridflex.bench.ingest import bench_ingest_workers, ingest_in_process
from gridflex.bench.plan import fleet_planner, plan_time_figures
from gridflex.ops.broker import MosquittoBroker

pytestmark = pytest.mark.bench


async def test_ingest_samples_per_second(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    n_sites, n_batches, size = 20, 20, 500
    fig = await ingest_in_process(
        mosquitto.port, tmp_path / "s.sqlite", n_sites=n_sites, n_batches=n_batches, size=size
    )
    print(
        f"\ningest: {fig.samples:,} samples in {n_sites * n_batches} batches of {size}: {fig.samples_per_s:,.0f} samples/s (one worker, SQLite WAL)"
    )
    assert fig.duplicates == 0


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("by_area", [False, True], ids=["whole", "by_area"])
@pytest.mark.parametrize("n_sites", [100, 1000])
def test_plan_time_per_period(n_sites: int, by_area: bool) -> None:
    try:
        fleet = fleet_planner(n_sites, by_area=by_area)
    except Exception as exc:  # a registry check refusing shared households is a finding, not a crash
        pytest.skip(f"{n_sites} sites: {exc}")
    fig = plan_time_figures(fleet)
    print(
        f"\nplan, {n_sites} sites, 96 steps{', by area' if by_area else ''}: build {fig.build_s:.1f} s, first {fig.first_ms:.0f} ms, "
        f"warm {fig.warm_ms:.0f} ms (solve {fig.solve_ms:.0f} ms incl. forecasts); peak RSS {fig.rss_mb:.0f} MB"
    )


def test_ingest_two_workers_on_share(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    """Two ingest worker processes on `$share/gridflex-ingest`, one SQLite file: the split."""
    one = bench_ingest_workers(1, port=mosquitto.port, workdir=tmp_path)
    two = bench_ingest_workers(2, port=mosquitto.port, workdir=tmp_path)
    print(
        f"\ningest, 1 worker: {one.samples_per_s:,.0f} samples/s; 2 workers on $share: "
        f"{two.samples_per_s:,.0f} samples/s, split {' / '.join(f'{c:,}' for c in two.per_worker)}"
    )
    assert one.samples == two.samples == 200_000
    assert all(c > 0 for c in two.per_worker) and sum(two.per_worker) == 200_000
    assert one.watermarks_ok and two.watermarks_ok
