"""Broker SIGKILL N times while an agent streams at >= 100 samples/s: polled vs stored, duplicates, order."""

from __future__ import annotations

import asyncio
import time

from gridflex.chaos.context import Ctx
from gridflex.chaos.result import Result

__all__ = ["run"]

SITE = "b001"
POLL_S = 0.05


async def run(ctx: Ctx) -> Result:
    """Kill Mosquitto `kills` times, evenly over the run, each outage a few seconds; then compare."""
    kills, span_s, outage_s = (2, 12.0, 1.5) if ctx.short else (5, 600.0, 5.0)
    stack = await ctx.stack()
    agent, poll_log = stack.start_agent(SITE, poll_s=POLL_S)
    t0 = time.monotonic()
    try:
        await stack.wait_stored(SITE, 20, timeout_s=120)
        every_s = span_s / kills
        for _ in range(kills):
            await asyncio.sleep(max(0.0, every_s - outage_s))
            await asyncio.to_thread(stack.broker.kill)  # by PID: in-flight messages are gone
            await asyncio.sleep(outage_s)
            await asyncio.to_thread(stack.broker.start)
        await asyncio.sleep(3.0 if ctx.short else 20.0)  # streaming again after the last restart
        check, cut = await stack.verdict(SITE, poll_log, drain_s=60.0 if ctx.short else 180.0)
    finally:
        await asyncio.to_thread(agent.stop)
    span = (max(p.ts for p in cut) - min(p.ts for p in cut)) if cut else 0.0
    rate = check.polled / span if span > 0 else 0.0
    return Result(
        "broker_kill",
        f"Mosquitto SIGKILL {kills}x in {span_s:g} s, {outage_s:g} s down each",
        {
            "polled": check.polled,
            "samples/s": round(rate, 1),
            "stored": check.stored,
            "lost": check.lost,
            "duplicates": check.duplicates,
            "out of order": check.out_of_order,
        },
        ok=check.ok and rate >= 100.0,
        wall_s=time.monotonic() - t0,
    )
