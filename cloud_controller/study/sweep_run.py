"""Run a sweep's points on Dask distributed: a LocalCluster by default, or a given scheduler.

Each point is one whole study (`run_point`, serial inside: a Dask worker is a daemon
process and may not fork a pool of its own), so the cluster's workers take points, not
scenarios. The worker returns the point's summary (plain JSON-able data) and the client
writes every file, so workers need no shared disk with the caller. The local cluster
listens on loopback only, has no dashboard, and is closed in a `finally` under a bound.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cloud_controller.study.config import StudyConfig
from cloud_controller.study.sweep import SweepPoint

if TYPE_CHECKING:
    from cloud_controller.grid.region import Region

__all__ = ["run_point", "run_sweep", "run_sweep_serial"]

CLOSE_TIMEOUT_S = 30.0  # closing the client and the cluster; a stuck worker is killed after it
START_TIMEOUT_S = 180.0  # worker processes import pandapower & co.: slow on a loaded machine

OnDone = Callable[[SweepPoint, dict[str, Any], int, int], None]


RegionKey = tuple[str | None, tuple[str, ...], float]
_REGIONS: dict[RegionKey, Region] = {}  # per process (worker): the regions its points named
_REGIONS_LOCK = threading.Lock()  # a cluster of threads shares the cache


def _region(cfg: StudyConfig) -> Region:
    """`cfg`'s region, built once per process and handed out as a copy.

    Reading `lv_schutterwald` is ~85 % of a quick point's inputs (6.6 of 7.8 s, profiled);
    a sweep's points mostly share their region. Each point gets its own deep copy, so
    nothing a run does to its region reaches another point.
    """
    from cloud_controller.grid.region import build_schutterwald_region, region_from_json

    key: RegionKey = (cfg.network_json, cfg.stations, cfg.hvmv_sn_mva)
    with _REGIONS_LOCK:
        if key not in _REGIONS:
            _REGIONS[key] = (
                region_from_json(cfg.network_json)
                if cfg.network_json
                else build_schutterwald_region(cfg.stations, hvmv_sn_mva=cfg.hvmv_sn_mva)
            )
        return copy.deepcopy(_REGIONS[key])


def run_point(cfg: StudyConfig, *, quick: bool, validate: bool) -> dict[str, Any]:
    """One point: the study of `cfg` (its scenarios and stress levels), summarised."""
    from cloud_controller.study.study import load_inputs, run_study, summarise

    inputs = load_inputs(cfg, quick=quick, region=_region(cfg))
    return summarise(run_study(cfg, quick=quick, jobs=1, inputs=inputs, validate=validate))


def run_sweep_serial(
    points: Sequence[SweepPoint], *, quick: bool, validate: bool, on_done: OnDone | None = None
) -> list[dict[str, Any]]:
    """The points one after the other in this process (the reference for the Dask run)."""
    out: list[dict[str, Any]] = []
    for point in points:
        out.append(run_point(point.config, quick=quick, validate=validate))
        if on_done:
            on_done(point, out[-1], len(out), len(points))
    return out


def run_sweep(
    points: Sequence[SweepPoint],
    *,
    quick: bool,
    validate: bool,
    scheduler: str | None = None,
    n_workers: int = 1,
    processes: bool = True,
    on_done: OnDone | None = None,
) -> list[dict[str, Any]]:
    """Every point's summary, in the points' order, computed on Dask.

    Without `scheduler`, a `LocalCluster` of `n_workers` (one thread each; processes
    unless `processes=False`) is started here and closed before returning, also on error.
    With `scheduler` ("tcp://host:8786"), its workers run the points; they need gridflex
    installed at the same version.
    """
    from distributed import Client, LocalCluster, as_completed

    cluster: LocalCluster | None = None
    try:
        if scheduler is None:
            cluster = LocalCluster(  # type: ignore[no-untyped-call]  # distributed is partly typed
                n_workers=max(1, min(n_workers, len(points))),
                threads_per_worker=1,
                processes=processes,
                host="127.0.0.1" if processes else None,  # threads talk in-process
                dashboard_address=None,
                worker_dashboard_address=None,
                # no dashboard, and the scheduler's HTTP routes (health, metrics) on a free loopback port
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                timeout=START_TIMEOUT_S,
            )
        client = Client(cluster if cluster is not None else scheduler, timeout=START_TIMEOUT_S)  # type: ignore[no-untyped-call]
        try:
            futures = {
                client.submit(run_point, p.config, quick=quick, validate=validate, pure=False): i
                for i, p in enumerate(points)
            }
            results: dict[int, dict[str, Any]] = {}
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                i = futures[future]
                results[i] = future.result()
                if on_done:
                    on_done(points[i], results[i], len(results), len(points))
        finally:
            client.close(timeout=CLOSE_TIMEOUT_S)  # type: ignore[no-untyped-call]
    finally:
        if cluster is not None:
            cluster.close(timeout=CLOSE_TIMEOUT_S)
    return [results[i] for i in range(len(points))]
