"""Replayed and expired commands across agent restarts: none may be applied, and no id twice.

Fresh commands (valid for 10 min, so that only the replay guard can refuse their resends)
are applied; the agent is SIGKILLed and restarted; the same bytes are sent again, then
commands already past their TTL; another SIGKILL and restart; the first batch once more.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from gridflex.chaos.compare import check_commands
from gridflex.chaos.context import Ctx
from gridflex.chaos.result import Result
from gridflex.chaos.world import Child, Observer
from protocols.codec import encode
from protocols.messages import Command
from protocols.topics import site_topic

__all__ = ["run"]

SITE = "b002"  # PV + battery


def _command(cmd_id: str, value: float, *, age_s: float = 0.0, ttl_s: float = 600.0) -> bytes:
    now = datetime.now(UTC) - timedelta(seconds=age_s)
    return encode(
        Command(
            site=SITE,
            ts=now,
            cmd_id=cmd_id,
            asset="bat1",
            kind="p_setpoint_kw",
            value=value,
            valid_from=now,
            valid_until=now + timedelta(seconds=ttl_s),
        )
    )


def _answered(obs: Observer) -> int:
    """Acks of everything but the readiness probes (those may be answered more than once)."""
    return sum(1 for a in obs.acks if not a.cmd_id.startswith("probe-"))


async def _send(obs: Observer, payloads: list[bytes], what: str) -> None:
    want = _answered(obs) + len(payloads)
    for p in payloads:
        await obs.session.publish(site_topic(SITE, "cmd"), p, qos=1)
    if not await obs.wait_until(lambda: _answered(obs) >= want, timeout_s=120.0):
        raise TimeoutError(f"{what}: {want - _answered(obs)} commands unanswered")


async def _restart(agent: Child, obs: Observer, n: int) -> None:
    """SIGKILL, start again, and wait until it answers."""
    await asyncio.to_thread(agent.kill)
    agent.start()
    await _ready(obs, n)


async def _ready(obs: Observer, n: int) -> None:
    """Until a fresh probe command is answered (the agent is up and subscribed)."""
    want = len(obs.acks) + 1
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # probes until one is answered: the agent is back
        await obs.session.publish(
            site_topic(SITE, "cmd"), _command(f"probe-{n}-{time.monotonic_ns()}", 0.0), qos=1
        )
        if await obs.wait_acks(want, timeout_s=2.0):
            return
    raise TimeoutError("the restarted agent answered no probe in 120 s")


async def run(ctx: Ctx) -> Result:
    """3 x `n` forbidden commands (replays, expired, replays) around two SIGKILLs of the agent."""
    n = 50 if ctx.short else 500
    stack = await ctx.stack()
    agent, _ = stack.start_agent(SITE, poll_s=0.5)
    t0 = time.monotonic()
    fresh = [_command(f"rp-{i}", (i % 9) - 4.0) for i in range(n)]
    expired = [_command(f"ex-{i}", 4.0, age_s=120.0, ttl_s=60.0) for i in range(n)]
    try:
        async with Observer(stack.broker.port, [site_topic(SITE, "ack")], client_id="chaos-replay") as obs:
            await _ready(obs, 0)
            await _send(obs, fresh, "fresh")
            await _restart(agent, obs, 1)
            await _send(obs, fresh, "replays after restart 1")
            await _send(obs, expired, "expired")
            await _restart(agent, obs, 2)
            await _send(obs, fresh, "replays after restart 2")
            acks = [(a.cmd_id, a.status) for a in obs.acks if not a.cmd_id.startswith("probe-")]
    finally:
        await asyncio.to_thread(agent.stop)
    check = check_commands(4 * n, [f"ex-{i}" for i in range(n)], acks)
    first_applied = sum(1 for cid, st in acks[:n] if st in ("applied", "clamped"))
    return Result(
        "replay",
        f"{3 * n:,} replayed/expired commands across {agent.kills} agent SIGKILLs",
        {
            "fresh applied": f"{first_applied}/{n}",
            "forbidden sent": 3 * n,
            "acked": check.acked,
            "replays applied": check.applied_twice,
            "expired applied": check.expired_applied,
        },
        ok=check.ok and first_applied == n,
        wall_s=time.monotonic() - t0,
    )
