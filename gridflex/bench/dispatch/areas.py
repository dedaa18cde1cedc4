"""The 96-period MPC by area on 1 worker and on N: what solving the areas in parallel buys.

Why this bench: the issue asks whether spreading the areas' LPs over worker processes
(or Dask workers) makes the 10,000-building plan fit a period. Both runs are in the same
process on the same problem and inputs, so the ratio is measured under the same machine
load; the anchor is the 1-worker run of the same execution (the same pickling and pipe
costs, only the parallelism differs). Engine options as the live planner's
(`planning_engine`: presolve + interior point cold, lazy grid rows, one area per station).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cloud_controller.dispatch import (
    DecomposedEngine,
    EngineOptions,
    ProcessAreas,
    area_execution,
    build_problem,
)
from gridflex.bench.dispatch.fleet import DT_H, fleet_inputs, initial_state, make_fleet, replicated_sites

__all__ = ["AreaScaling", "format_area_scaling", "run_area_scaling"]


@dataclass(frozen=True)
class AreaScaling:
    """One execution's figures for the same MPC: start-up, cold and warm solve."""

    execution: str
    workers: int
    n_sites: int
    horizon: int
    n_areas: int
    start_s: float  # the engine built: areas split, workers started, their engines built
    cold_s: float  # first solve (interior point from nothing in every area)
    warm_s: float  # the window moved one period, warm from each area's basis
    certified: bool  # the areas' answer was certified (no whole-LP fallback)
    objective: float
    largest_share: float  # the largest area's share of the sites: a bound on the speed-up (1 / share)
    #: CPU seconds of each worker process in the cold solve (processes only; empty otherwise).
    #: On a shared machine the wall time says how much CPU the others left; the busiest
    #: worker's CPU is the critical path the workers would take on cores of their own.
    worker_cpu_s: tuple[float, ...] = ()
    #: the same for the warm solve
    warm_cpu_s: tuple[float, ...] = ()
    #: CPU seconds of this (the calling) process in the cold solve: the split, the pipes,
    #: the lazy grid rows and the certificate are its share
    caller_cpu_s: float = 0.0


def _cpu_s(pids: list[int]) -> list[float]:
    """User + system CPU seconds of each process (Linux /proc; empty where unreadable)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = []
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return []
        out.append((int(fields[11]) + int(fields[12])) / tick)
    return out


def run_area_scaling(
    n_sites: int,
    horizon: int,
    execution: str,
    workers: tuple[int, ...],
    *,
    seed: int = 0,
    progress: Callable[[AreaScaling], None] | None = None,
) -> list[AreaScaling]:
    """The same MPC by area once per worker count in `workers`, on the station-level network.

    `progress` gets each run's figures as soon as it has them (a run cut short by a time
    limit still leaves the earlier ones).
    """
    from cloud_controller.grid import build_schutterwald_region, station_grid

    stations, station_bus = station_grid(build_schutterwald_region())
    grid, site_bus = replicated_sites(stations, station_bus, n_sites)
    rng = np.random.default_rng(seed)
    fleet = make_fleet(n_sites, rng)
    problem = build_problem(grid, site_bus, fleet.assets, horizon=horizon, dt_h=DT_H)
    state = initial_state(fleet, rng)
    x0 = fleet_inputs(fleet, 64, horizon, rng)  # 16:00: the evening peak and next day's PV
    x1 = fleet_inputs(fleet, 65, horizon, rng)
    options = EngineOptions(presolve_first=True, cold_solver="ipm", lazy_grid=True)
    out: list[AreaScaling] = []
    for w in workers:
        t0 = time.perf_counter()
        ex = area_execution(execution, w, threads=w)
        with DecomposedEngine(problem, options, max_sites=0, execution=ex) as engine:
            pids = ex.pids if isinstance(ex, ProcessAreas) else []
            c1, own1 = _cpu_s(pids), time.process_time()
            t1 = time.perf_counter()
            sched = engine.solve(x0, state)
            t2 = time.perf_counter()
            c2, own2 = _cpu_s(pids), time.process_time()
            cpu = tuple(b - a for a, b in zip(c1, c2, strict=False))
            engine.solve(x1, sched.next_state())
            t3 = time.perf_counter()
            warm_cpu = tuple(b - a for a, b in zip(c2, _cpu_s(pids), strict=False))
            out.append(
                AreaScaling(
                    execution, w, n_sites, horizon, engine.n_areas, t1 - t0, t2 - t1, t3 - t2,
                    engine.last_by_area, sched.objective,
                    max(len(a.sites) for a in engine.areas) / n_sites, cpu, warm_cpu, own2 - own1,
                )
            )  # fmt: skip
        if progress is not None:
            progress(out[-1])
    return out


def format_area_scaling(rows: list[AreaScaling], loadavg: str) -> str:
    """A table of the runs and each one's speed-up over the last 1-worker run before it (its anchor), with the load.

    "cpu max s" / "warm cpu max s": the busiest worker's CPU seconds in the cold / warm
    solve; "caller cpu s": this process's in the cold solve (processes only).
    """
    first = rows[0]
    anchor = first
    lines = [
        f"MPC by area, {first.n_sites} buildings x {first.horizon} periods, {first.n_areas} areas, "
        f"execution {first.execution}; largest area {100 * first.largest_share:.0f} % of the sites; "
        f"load average {loadavg}",
        f"{'workers':>7} {'start s':>8} {'cold s':>8} {'warm s':>8} {'cold x':>7} {'warm x':>7} "
        f"{'per worker':>10} {'cpu max s':>9} {'cpu x':>6} {'warm cpu max s':>14} {'caller cpu s':>12} "
        f"{'certified':>9} {'objective':>14}",
    ]
    for r in rows:
        anchor = r if r.workers == 1 else anchor
        sp_cold = anchor.cold_s / r.cold_s
        sp_warm = anchor.warm_s / r.warm_s
        cpu_max = max(r.worker_cpu_s, default=float("nan"))
        sp_cpu = max(anchor.worker_cpu_s, default=float("nan")) / cpu_max if cpu_max else float("nan")
        lines.append(
            f"{r.workers:>7} {r.start_s:>8.2f} {r.cold_s:>8.2f} {r.warm_s:>8.2f} {sp_cold:>7.2f} "
            f"{sp_warm:>7.2f} {sp_cold / r.workers:>10.2f} {cpu_max:>9.2f} {sp_cpu:>6.2f} "
            f"{max(r.warm_cpu_s, default=float('nan')):>14.2f} {r.caller_cpu_s:>12.2f} {r.certified!s:>9} "
            f"{r.objective:>14.6f}"
        )
    same = all(abs(r.objective - first.objective) <= 1e-9 * max(1.0, abs(first.objective)) for r in rows)
    lines.append(f"objectives equal within 1e-9 relative: {same}")
    return "\n".join(lines)
