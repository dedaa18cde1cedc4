"""Running the bench by part, each size or MPC case in a spawned child with a wall-clock limit."""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import queue
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from cloud_controller.dispatch import IntArray
from cloud_controller.grid import RadialGrid
from gridflex.bench.dispatch.fleet import replicated_sites
from gridflex.bench.dispatch.mpc import (
    MPC_SOLVERS,
    run_mpc,
    run_mpc_binding,
    run_mpc_by_area,
    run_mpc_by_area_binding,
    run_mpc_by_area_lazy,
    run_mpc_by_area_lazy_binding,
)
from gridflex.bench.dispatch.report import format_result
from gridflex.bench.dispatch.results import TIME_LIMIT_S, DispatchBenchResult, MpcResult, SizeResult
from gridflex.bench.dispatch.rundcopp import compare_with_rundcopp
from gridflex.bench.dispatch.step import Report, run_size

PARTS = ("rundcopp", "step", "mpc")  # in the order they run and print

CASES: dict[str, Callable[[RadialGrid, IntArray, int, int, Report], None]] = {
    "size": run_size,
    "mpc": run_mpc,
    "mpc_by_area": run_mpc_by_area,
    "mpc_by_area_lazy": run_mpc_by_area_lazy,
    "mpc_binding": run_mpc_binding,
    "mpc_by_area_binding": run_mpc_by_area_binding,
    "mpc_by_area_lazy_binding": run_mpc_by_area_lazy_binding,
}


def _child(kind: str, grid: RadialGrid, site_bus: IntArray, *, n: int, seed: int, out: Any) -> None:
    """Entry point of the spawned process: run one case, stream partial results to the parent."""
    try:
        CASES[kind](grid, site_bus, n, seed, lambda tag, data: out.put((tag, data)))
        out.put(("done", {}))
    except BaseException as exc:  # reported to the parent, which records the size as skipped
        out.put(("error", {"error": f"{type(exc).__name__}: {exc}"}))


def run_limited(
    kind: str, grid: RadialGrid, site_bus: IntArray, *, n: int, seed: int, time_limit_s: float | None
) -> tuple[dict[str, Any], str | None]:
    """Run a case in a spawned child (or in-process if no limit); return its figures and skip reason.

    Why spawn, not fork: HiGHS keeps a worker-thread pool in the parent after its first solve,
    and a forked child inherits its state without the threads.
    """
    figures: dict[str, Any] = {}
    if time_limit_s is None:

        def keep(_tag: str, data: dict[str, Any]) -> None:
            figures.update(data)

        CASES[kind](grid, site_bus, n, seed, keep)
        return figures, None
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(
        target=_child, args=(kind, grid, site_bus), kwargs={"n": n, "seed": seed, "out": out}, daemon=True
    )
    deadline = time.monotonic() + time_limit_s
    proc.start()
    reason: str | None = None
    try:
        while True:
            try:
                tag, data = out.get(timeout=0.5)
            except queue.Empty:
                if time.monotonic() > deadline:
                    reason = f"over the {time_limit_s:.0f} s limit"
                    break
                if not proc.is_alive() and out.empty():
                    reason = f"child exited with code {proc.exitcode}"
                    break
                continue
            if tag == "done":
                break
            if tag == "error":
                reason = str(data["error"])
                break
            figures.update(data)
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=10)
        out.close()
    return figures, reason


# -- the bench --------------------------------------------------------------------------------


def _machine() -> dict[str, str]:
    import highspy
    import pyomo.version

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    return {
        "cpu": f"{cpu} x{os.cpu_count()}",
        "python": platform.python_version(),
        "highs": f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}",
        "pyomo": str(pyomo.version.version),
    }


def run_dispatch_bench(
    *,
    steps: int = 20,
    sizes: tuple[int, ...] = (100, 1000, 10000),
    mpc_sites: int = 1000,
    mpc_steps: int = 96,
    progress: bool = True,
    time_limit_s: float | None = TIME_LIMIT_S,
    seed: int = 0,
    only: Sequence[str] | None = None,
) -> DispatchBenchResult:
    """Run the parts named in `only` (every part of `PARTS` if None) and return the figures.

    `time_limit_s=None` runs sizes in-process.
    `steps` is both the number of rundcopp comparison steps and of warm re-solves per size.
    """
    parts = PARTS if only is None else tuple(only)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown bench part(s) {', '.join(unknown)}; parts are {', '.join(PARTS)}")
    from cloud_controller.grid import build_schutterwald_region

    t_all = time.perf_counter()

    def say(msg: str) -> None:
        if progress:
            print(f"[dispatch bench {time.perf_counter() - t_all:7.1f} s] {msg}", file=sys.stderr, flush=True)

    comparison = None
    if "rundcopp" in parts:
        say("engine vs rundcopp on the Schutterwald region")
        comparison = compare_with_rundcopp(steps, seed=seed, progress=say)
    region = build_schutterwald_region()
    from cloud_controller.grid import station_grid

    stations, station_bus = station_grid(region)
    networks = (
        ("full LV network", region.grid, region.site_bus),
        ("station-level network", stations, station_bus),
    )
    results: list[SizeResult] = []
    for network, base_grid, base_bus in networks if "step" in parts else ():
        for n in sizes:
            grid, site_bus = replicated_sites(base_grid, base_bus, n)
            copies = (grid.n_bus - 1) // (base_grid.n_bus - 1)
            say(f"single step, {n} buildings ({copies} feeder copies, {grid.n_bus} buses), {network}")
            figs, reason = run_limited("size", grid, site_bus, n=steps, seed=seed, time_limit_s=time_limit_s)
            res = SizeResult(n_sites=n, copies=copies, n_bus=grid.n_bus, network=network)
            for key, val in figs.items():
                setattr(res, key, val)
            res.skipped = reason
            results.append(res)

    mpcs: list[MpcResult] = []
    cases = [(net, kind, solver, False) for net in reversed(networks) for kind, solver in MPC_SOLVERS]
    # the congested case, where only the full LP is exact: the station-level network
    cases += [(networks[1], f"{kind}_binding", solver, True) for kind, solver in MPC_SOLVERS]
    # and on the full LV network, where only the lazy rows make the whole LP affordable
    cases += [(networks[0], f"{kind}_binding", solver, True) for kind, solver in MPC_SOLVERS[2:]]
    if "mpc" not in parts:
        cases = []
    for (network, base_grid, base_bus), kind, solver, binding in cases:
        grid, site_bus = replicated_sites(base_grid, base_bus, mpc_sites)
        copies = (grid.n_bus - 1) // (base_grid.n_bus - 1)
        what = ", HV/MV threshold binding" if binding else ""
        say(f"MPC, {mpc_sites} buildings x {mpc_steps} periods, {network}{what}, {solver}")
        figs, reason = run_limited(kind, grid, site_bus, n=mpc_steps, seed=seed, time_limit_s=time_limit_s)
        mpc = MpcResult(
            n_sites=mpc_sites,
            horizon=mpc_steps,
            copies=copies,
            n_bus=grid.n_bus,
            network=network,
            solver=solver,
            binding=binding,
        )
        for key, val in figs.items():
            setattr(mpc, key, val)
        mpc.skipped = reason
        mpcs.append(mpc)
    say("done")
    return DispatchBenchResult(
        comparison=comparison,
        sizes=results,
        mpc=mpcs,
        machine=_machine(),
        total_s=time.perf_counter() - t_all,
    )


def main() -> None:
    """`python -m gridflex.bench.dispatch.run`: run with the defaults and print the table."""
    print(format_result(run_dispatch_bench()))


if __name__ == "__main__":
    main()
