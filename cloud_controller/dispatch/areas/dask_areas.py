"""The areas of `DecomposedEngine` on Dask distributed: one actor per worker holding its areas' engines.

Why actors: an area's engine keeps its HiGHS model and warm basis between calls, so each
area must be solved where it was built. A Dask actor is exactly that: an object that
lives on one worker, whose methods run there. One `AreaGroup` actor per worker, each
with its share of the areas (`spread`); a round calls every actor's `solve` and then
waits for all of them. With no scheduler address, a `LocalCluster` of `workers`
processes (one thread each) on loopback is started and closed with the engine.
"""

from __future__ import annotations

from typing import Any

from cloud_controller.dispatch.areas.execution import FannedAreas, spread
from cloud_controller.dispatch.areas.group import (
    AreaGroup,
    AreaSpec,
)
from cloud_controller.dispatch.options import EngineOptions

__all__ = ["DaskAreas"]

CLOSE_TIMEOUT_S = 10.0


class DaskAreas(FannedAreas):
    """The areas over the workers of a Dask cluster (`scheduler` address, or a local one of `workers`).

    `processes=False` runs a local cluster's workers as threads of this process (tests).
    With a scheduler address, the areas are spread over at most `workers` of its workers
    (all of them if `workers` is 0). `timeout_s` bounds every round.
    """

    def __init__(
        self, workers: int, scheduler: str | None = None, *, processes: bool = True, timeout_s: float = 600.0
    ) -> None:
        if workers < (0 if scheduler else 1):
            raise ValueError(f"workers must be >= 1 for a local cluster, got {workers}")
        self.workers = workers
        self.scheduler = scheduler
        self._processes = processes
        self._timeout_s = timeout_s
        self._cluster: Any = None
        self._client: Any = None
        self._actors: list[Any] = []
        self._owner: dict[int, int] = {}
        self._sizes: dict[int, int] = {}

    def start(self, specs: list[AreaSpec], options: EngineOptions) -> None:
        """Connect (or start a local cluster), then place one actor per worker with its areas."""
        from distributed import Client, LocalCluster

        try:
            if self.scheduler:
                self._client = Client(self.scheduler, timeout=self._timeout_s)  # type: ignore[no-untyped-call]
            else:
                self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=self._processes,
                    dashboard_address=None,
                    # worker processes listen on loopback only; threads talk in-process
                    **({"host": "127.0.0.1"} if self._processes else {}),
                )
                self._client = Client(self._cluster)  # type: ignore[no-untyped-call]
            addrs = sorted(self._client.scheduler_info()["workers"])
            if self.workers:
                addrs = addrs[: self.workers]
            if not addrs:
                raise RuntimeError(f"no Dask worker at {self.scheduler}")
            groups = spread(specs, len(addrs))
            futures = [
                self._client.submit(AreaGroup, g, options, actor=True, workers=[addrs[w]], pure=False)
                for w, g in enumerate(groups)
            ]
            self._actors = [f.result(timeout=self._timeout_s) for f in futures]
            self._owner = {s.index: w for w, g in enumerate(groups) for s in g}
            self._sizes = {s.index: s.size for s in specs}
        except BaseException:
            self.close()
            raise

    def _workers(self) -> int:
        return len(self._actors)

    def _all(self, method: str, per_actor: list[Any] | None = None) -> list[Any]:
        if not self._actors:
            raise RuntimeError("the area execution is not started (or closed)")
        pending = [
            getattr(a, method)() if per_actor is None else getattr(a, method)(per_actor[w])
            for w, a in enumerate(self._actors)
        ]
        return [p.result(timeout=self._timeout_s) for p in pending]

    def close(self) -> None:
        """Drop the actors, close the client and a local cluster (each bounded by CLOSE_TIMEOUT_S)."""
        self._actors = []
        if self._client is not None:
            self._client.close(timeout=CLOSE_TIMEOUT_S)
            self._client = None
        if self._cluster is not None:
            self._cluster.close(timeout=CLOSE_TIMEOUT_S)
            self._cluster = None
