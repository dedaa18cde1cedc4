"""Where the areas of `DecomposedEngine` are solved: in the caller, in worker processes, on Dask.

Why: the areas' LPs of one round are independent (each sees the others' load as fixed
from the guess), so they can be solved at the same time. Every area's engine keeps its
HiGHS model and warm basis between calls, which cannot be pickled, so each area lives in
one place for the engine's life: the areas are spread once over the workers (largest
first, each to the least loaded, `spread`), every worker builds its areas' engines
(`AreaGroup`) and is sent only numpy data every round. The answers do not depend on the
execution: each area's engine sees the same calls in the same order wherever it runs.

- `SerialAreas`: in the caller (optionally a thread pool: HiGHS releases the GIL);
- `ProcessAreas`: N worker processes on this machine (spawned, one pipe each);
- `DaskAreas` (dask_areas.py): N Dask actors, on a `LocalCluster` or a given scheduler.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from cloud_controller.dispatch.areas.group import (
    AreaCall,
    AreaGroup,
    AreaLimits,
    AreaResult,
    AreaSpec,
    AreaStart,
)
from cloud_controller.dispatch.engine import DispatchEngine
from cloud_controller.dispatch.options import EngineOptions

__all__ = ["EXECUTIONS", "AreaExecution", "ProcessAreas", "SerialAreas", "area_execution", "spread"]

EXECUTIONS = ("serial", "processes", "dask")
CLOSE_TIMEOUT_S = 10.0  # how long a worker gets to end after "close", then again after terminate


class AreaExecution(Protocol):
    """The areas' engines somewhere; `start` once, then calls in rounds, `close` at the end."""

    def start(self, specs: list[AreaSpec], options: EngineOptions) -> None:
        """Build every area's engine (where it will be solved)."""
        ...

    def solve(self, calls: list[AreaCall]) -> list[AreaResult]:
        """One round: every call solved; results in any order (`index` says whose)."""
        ...

    def set_battery_limits(self, limits: list[AreaLimits]) -> None:
        """Each area's battery limits, until changed again."""
        ...

    def shift_basis(self, k: int) -> bool:
        """Every area's basis shifted `k` periods on; True if every shift took."""
        ...

    def starts(self) -> dict[int, AreaStart | None]:
        """Every area's basis and lazily added rows (for the whole LP's start, join.py)."""
        ...

    def lazy_rows(self) -> int:
        """Grid rows added lazily over all areas."""
        ...

    def close(self) -> None:
        """Stop the workers (bounded); the execution cannot be used afterwards."""
        ...


def spread(specs: list[AreaSpec], n: int) -> list[list[AreaSpec]]:
    """The areas over `n` workers: largest first, each to the least loaded (longest-processing-time)."""
    groups: list[list[AreaSpec]] = [[] for _ in range(n)]
    load = [0] * n
    for s in sorted(specs, key=lambda s: -s.size):
        w = load.index(min(load))
        groups[w].append(s)
        load[w] += s.size
    return [g for g in groups if g]


def by_size(calls: list[AreaCall], sizes: dict[int, int]) -> list[AreaCall]:
    """Largest areas first, so the last to finish in a worker is a small one."""
    return sorted(calls, key=lambda c: -sizes[c.index])


class SerialAreas:
    """Every area in the caller's process; `threads` > 1 solves them in a thread pool."""

    def __init__(self, threads: int = 1) -> None:
        self._threads = threads
        self._group: AreaGroup | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._sizes: dict[int, int] = {}

    def start(self, specs: list[AreaSpec], options: EngineOptions) -> None:
        """Build the engines here."""
        self._group = AreaGroup(specs, options)
        self._sizes = {s.index: s.size for s in specs}
        self._pool = ThreadPoolExecutor(self._threads) if self._threads > 1 else None

    def _g(self) -> AreaGroup:
        if self._group is None:
            raise RuntimeError("the area execution is not started (or closed)")
        return self._group

    def solve(self, calls: list[AreaCall]) -> list[AreaResult]:
        """Solve in turn, or largest first in the thread pool."""
        g = self._g()
        if self._pool is None:
            return g.solve(calls)
        return list(self._pool.map(g.solve_one, by_size(calls, self._sizes)))

    def set_battery_limits(self, limits: list[AreaLimits]) -> None:
        """On every engine here."""
        self._g().set_battery_limits(limits)

    def shift_basis(self, k: int) -> bool:
        """On every engine here."""
        return all(self._g().shift_basis(k).values())

    def starts(self) -> dict[int, AreaStart | None]:
        """From every engine here."""
        return self._g().starts()

    def lazy_rows(self) -> int:
        """Over every engine here."""
        return self._g().lazy_rows()

    def engines(self) -> list[DispatchEngine]:
        """The areas' engines in area order (only this execution has them in the caller)."""
        g = self._g()
        return [g.engine(i) for i in sorted(g.indices)]

    def close(self) -> None:
        """Stop the thread pool."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _serve(conn: Connection, specs: list[AreaSpec], options: EngineOptions) -> None:
    """A worker process: build the group, then answer (method, argument) requests until "close"."""
    try:
        group = AreaGroup(specs, options)
    except Exception as exc:  # reported to the caller, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", None))
    while True:
        try:
            method, arg = conn.recv()
        except EOFError:  # the caller is gone
            return
        if method == "close":
            return
        try:
            fn = getattr(group, method)
            conn.send(("ok", fn() if arg is None else fn(arg)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class FannedAreas:
    """What the worker-process and Dask executions share: areas fanned out to workers by owner.

    A subclass sets `_owner` (area index → worker) and `_sizes` at start and gives `_all`
    (send one method to every worker, each its own argument, and read every answer) and
    `_workers` (how many are running; 0 before start and after close).
    """

    _owner: dict[int, int]
    _sizes: dict[int, int]

    def _workers(self) -> int:
        raise NotImplementedError

    def _all(self, method: str, per_worker: list[Any] | None = None) -> list[Any]:
        raise NotImplementedError

    def _split(self, items: list[Any]) -> list[list[Any]]:
        if not self._workers():
            raise RuntimeError("the area execution is not started (or closed)")
        out: list[list[Any]] = [[] for _ in range(self._workers())]
        for it in items:
            out[self._owner[it.index]].append(it)
        return out

    def solve(self, calls: list[AreaCall]) -> list[AreaResult]:
        """Every worker its areas' calls (largest first), at the same time."""
        parts = self._all("solve", self._split(by_size(calls, self._sizes)))
        return [r for part in parts for r in part]

    def set_battery_limits(self, limits: list[AreaLimits]) -> None:
        """Each worker its areas' limits."""
        self._all("set_battery_limits", self._split(limits))

    def shift_basis(self, k: int) -> bool:
        """Every worker's areas."""
        return all(ok for part in self._all("shift_basis", [k] * self._workers()) for ok in part.values())

    def starts(self) -> dict[int, AreaStart | None]:
        """Gathered from every worker."""
        out: dict[int, AreaStart | None] = {}
        for part in self._all("starts"):
            out.update(part)
        return out

    def lazy_rows(self) -> int:
        """Summed over the workers."""
        return int(sum(self._all("lazy_rows")))


class ProcessAreas(FannedAreas):
    """The areas spread over `workers` spawned processes on this machine, one pipe each.

    Started by `start_method`: "forkserver" (the default) forks each worker from a clean
    server process that has imported the dispatch code once (a fresh interpreter pays
    that import, several seconds of CPU); "spawn" starts each from scratch; "fork" copies
    the caller, fastest, but unsafe where the caller runs threads (the controller's API,
    HiGHS's own worker threads): a child may inherit a lock held by a thread it does
    not have. Each round sends every worker its calls first and then reads the answers,
    so the workers solve at the same time. `timeout_s` bounds each answer; a worker that
    dies or times out raises RuntimeError.
    """

    def __init__(self, workers: int, *, start_method: str = "forkserver", timeout_s: float = 600.0) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if start_method not in mp.get_all_start_methods():
            raise ValueError(
                f"start_method must be one of {mp.get_all_start_methods()}, got {start_method!r}"
            )
        self.workers = workers
        self._start_method = start_method
        self._timeout_s = timeout_s
        self._procs: list[BaseProcess] = []
        self._conns: list[Connection] = []
        self._owner: dict[int, int] = {}  # area index -> worker
        self._sizes: dict[int, int] = {}

    def start(self, specs: list[AreaSpec], options: EngineOptions) -> None:
        """Spawn the workers, each building its share of the areas."""
        ctx = mp.get_context(self._start_method)
        if self._start_method == "forkserver":  # the server imports the group's code once
            ctx.set_forkserver_preload([AreaGroup.__module__, __name__])
        try:
            for w, group in enumerate(spread(specs, self.workers)):
                here, there = ctx.Pipe()
                proc = ctx.Process(  # type: ignore[attr-defined]  # every concrete context has it
                    target=_serve, args=(there, group, options), daemon=True, name=f"areas-{w}"
                )
                proc.start()
                there.close()
                self._procs.append(proc)
                self._conns.append(here)
                self._owner.update({s.index: w for s in group})
            self._sizes = {s.index: s.size for s in specs}
            for w in range(len(self._conns)):
                self._reply(w)
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (e.g. to read their CPU time)."""
        return [int(p.pid) for p in self._procs if p.pid is not None]

    def _reply(self, w: int) -> Any:
        conn = self._conns[w]
        if not conn.poll(self._timeout_s):
            raise RuntimeError(f"area worker {w} did not answer within {self._timeout_s:.0f} s")
        try:
            status, value = conn.recv()
        except EOFError:
            raise RuntimeError(f"area worker {w} ended (exit code {self._procs[w].exitcode})") from None
        if status != "ok":
            raise RuntimeError(f"area worker {w}: {value}")
        return value

    def _workers(self) -> int:
        return len(self._conns)

    def _all(self, method: str, per_worker: list[Any] | None = None) -> list[Any]:
        """Send `method` to every worker (its own argument each), then read every answer."""
        if not self._conns:
            raise RuntimeError("the area execution is not started (or closed)")
        for w, conn in enumerate(self._conns):
            conn.send((method, None if per_worker is None else per_worker[w]))
        return [self._reply(w) for w in range(len(self._conns))]

    def close(self) -> None:
        """Ask every worker to end; terminate (then kill) one that has not within CLOSE_TIMEOUT_S."""
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):  # its end may already be gone
                conn.send(("close", None))
        for proc in self._procs:
            proc.join(CLOSE_TIMEOUT_S)
            if proc.is_alive():
                proc.terminate()
                proc.join(CLOSE_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
                proc.join(CLOSE_TIMEOUT_S)
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []


def area_execution(
    kind: str, workers: int = 1, scheduler: str | None = None, *, threads: int = 1
) -> AreaExecution:
    """The execution named `kind` (one of EXECUTIONS): `threads` for serial, `workers`/`scheduler` else."""
    if kind == "serial":
        return SerialAreas(threads)
    if kind == "processes":
        return ProcessAreas(workers)
    if kind == "dask":
        from cloud_controller.dispatch.areas.dask_areas import DaskAreas

        return DaskAreas(workers, scheduler)
    raise ValueError(f"area execution must be one of {', '.join(EXECUTIONS)}, got {kind!r}")
