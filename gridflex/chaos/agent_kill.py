"""Agent SIGKILL N times mid-publish: samples polled (the agent's poll log) vs stored, after restarts."""

from __future__ import annotations

import asyncio
import time

from gridflex.chaos.context import Ctx
from gridflex.chaos.result import Result

__all__ = ["run"]

SITE = "b002"
POLL_S = 0.05


async def run(ctx: Ctx) -> Result:
    """SIGKILL `gridflex edge` at a random moment of its stream, restart it at once, `kills` times."""
    kills, every_s = (2, 4.0) if ctx.short else (5, 20.0)
    rng = ctx.rng("agent_kill")
    stack = await ctx.stack()
    agent, poll_log = stack.start_agent(SITE, poll_s=POLL_S)
    t0 = time.monotonic()
    try:
        await stack.wait_stored(SITE, 20, timeout_s=120)
        for _ in range(kills):
            # a random moment: with 20 polls/s and batches in flight, the kill lands mid-publish
            await asyncio.sleep(every_s * rng.uniform(0.5, 1.5))
            await asyncio.to_thread(agent.kill)
            agent.start()  # the same config, queue and poll log
        await asyncio.sleep(3.0 if ctx.short else 10.0)
        check, _ = await stack.verdict(SITE, poll_log, drain_s=60.0 if ctx.short else 120.0)
    finally:
        await asyncio.to_thread(agent.stop)
    return Result(
        "agent_kill",
        f"gridflex edge SIGKILL {agent.kills}x mid-publish, restarted each time",
        {
            "kills": agent.kills,
            "polled": check.polled,
            "stored": check.stored,
            "lost": check.lost,
            "duplicates": check.duplicates,
            "out of order": check.out_of_order,
        },
        ok=check.ok and agent.kills == kills,
        wall_s=time.monotonic() - t0,
    )
