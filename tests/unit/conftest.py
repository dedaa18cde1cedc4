"""Fixtures of the unit tests that need a Dask scheduler (the area planner's `DaskAreas`).

Why here: the dispatch tests (`dispatch/test_area_execution.py`) and the planner's
(`cloud/test_planner_areas.py`) reach a cluster by its address alike; `distributed` is
imported only when a test asks for one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    """A 2-worker cluster of threads in this process, reached by its address as a remote one would be."""
    from distributed import LocalCluster

    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address
