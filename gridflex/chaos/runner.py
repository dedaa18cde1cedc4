"""Run the chaos scenarios in a stated order, each under a time bound, and collect one row each.

A scenario that raises is a FAIL row with the error, not a crash of the run: the table is
the product. Every scenario's children are stopped by PID before the next starts.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from gridflex.chaos.context import Ctx
from gridflex.chaos.result import Result

__all__ = ["SCENARIOS", "run_chaos"]

log = logging.getLogger(__name__)

#: scenario name -> (module, bound on its wall time in short mode, in the full run), in run order
SCENARIOS: dict[str, tuple[str, float, float]] = {
    "floor": ("gridflex.chaos.floor", 60.0, 300.0),
    "fuzz": ("gridflex.chaos.fuzz", 120.0, 3000.0),
    "isolation": ("gridflex.chaos.isolation", 60.0, 120.0),
    "replay": ("gridflex.chaos.replay", 120.0, 600.0),
    "broker_kill": ("gridflex.chaos.broker_kill", 180.0, 1200.0),
    "agent_kill": ("gridflex.chaos.agent_kill", 180.0, 600.0),
    "controller_kill": ("gridflex.chaos.controller_kill", 300.0, 900.0),
}
#: too slow for the short mode: the controller's TTL alone is a minute
FULL_ONLY = frozenset({"controller_kill"})


async def _one(name: str, ctx: Ctx) -> Result:
    module, short_bound_s, full_bound_s = SCENARIOS[name]
    bound = short_bound_s if ctx.short else full_bound_s
    run: Callable[[Ctx], Awaitable[Result]] = importlib.import_module(module).run
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(bound):
            result = await run(ctx)
    except Exception as exc:  # a scenario's failure is a row of the table
        log.exception("chaos scenario %s failed", name)
        return Result(
            name, "(did not finish)", {}, ok=False, wall_s=time.monotonic() - t0, note=repr(exc)[:300]
        )
    result.wall_s = time.monotonic() - t0
    return result


async def run_chaos(
    names: Sequence[str] | None = None,
    *,
    short: bool,
    workdir: Path | None = None,
    seed: int = 17,
    progress: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run `names` (default: all; in short mode all but FULL_ONLY) and return their rows.

    The run passes when every row passes; SKIP rows (hooks not wired yet) do not fail it.
    """
    chosen = list(names) if names else [n for n in SCENARIOS if not (short and n in FULL_ONLY)]
    unknown = [n for n in chosen if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {list(SCENARIOS)}")
    with tempfile.TemporaryDirectory(prefix="gridflex-chaos-") as tmp:
        ctx = Ctx(workdir or Path(tmp), short=short, seed=seed)
        results: list[Result] = []
        try:
            for name in [n for n in SCENARIOS if n in chosen]:
                rows = [await _one(name, ctx)]
                if name == "isolation":  # the same rounds over mutual TLS, the deployment default
                    from gridflex.chaos.isolation import certificate_isolation

                    rows.append(await certificate_isolation(ctx))
                for row in rows:
                    results.append(row)
                    if progress is not None:
                        progress(row)
        finally:
            await ctx.close()
    return results
