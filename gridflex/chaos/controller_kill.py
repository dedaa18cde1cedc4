"""Controller SIGKILL mid-plan: each site's time to fallback vs TTL + 1 poll, state rebuilt, no command twice.

Its own world: Mosquitto, `gridflex sim` (5 buildings), a dispatching `gridflex cloud` (60 s
period, no margin: a command's TTL is one period) and one `gridflex edge` per building.
Once every commanded site holds a command, the controller is SIGKILLed just after a period
boundary, while it plans. A site has fallen back when its agent reports `command_expired`
(safe state) or `fallback_entered`; the bound is the site's last command's `valid_until`
plus one poll. Then the controller restarts on the same store: it must resume planning,
with its watermarks where they were.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from gridflex.chaos.compare import check_commands
from gridflex.chaos.context import Ctx
from gridflex.chaos.result import Result
from gridflex.chaos.world import (
    Child,
    Observer,
    edge_config,
    start_cloud,
    start_edge,
    start_sim,
    store_watermark,
)
from gridflex.ops.broker import MosquittoBroker
from protocols.topics import site_topic

__all__ = ["fallback_times", "run"]

PERIOD_S = 60.0
POLL_S = 1.0
FALLBACK_KINDS = ("command_expired", "fallback_entered")


def fallback_times(
    killed_at: datetime, commands: dict[str, datetime], events: list[tuple[str, str, datetime]]
) -> dict[str, tuple[float, float]]:
    """Per commanded site: (seconds from the kill to its fallback, its bound: last valid_until + 1 poll - kill).

    `commands`: site -> the latest valid_until it received before the kill; `events`:
    (site, kind, ts) as the agents sent them. A site without a fallback event gets `inf`.
    """
    out: dict[str, tuple[float, float]] = {}
    for site, until in commands.items():
        when = [ts for s, kind, ts in events if s == site and kind in FALLBACK_KINDS and ts >= killed_at]
        took = (min(when) - killed_at).total_seconds() if when else float("inf")
        out[site] = (took, (until - killed_at).total_seconds() + POLL_S)
    return out


def _cloud_yaml(workdir: Path, port: int) -> Path:
    cfg = workdir / "cloud.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "broker": {"port": port, "client_id": "chaos-ctl"},
                "registry": str(workdir / "sim" / "manifest.json"),
                "store": {"path": str(workdir / "store.sqlite")},
                "control": {"period_s": PERIOD_S, "horizon_steps": 8, "margin_s": 0, "station_limit_kw": 5.0},
                "api": {"enabled": False},
            }
        )
    )
    return cfg


async def _restart(cloud: Child, obs: Observer, killed_at: datetime) -> tuple[bool, int]:
    """Start the controller again: (it published a new plan, cmd_ids acked applied more than once)."""
    n_before = len(obs.commands)
    cloud.start()
    await cloud.wait_log("MQTT connected", 300)
    resumed = await obs.wait_until(
        lambda: any(c.ts > killed_at for _, c in obs.commands[n_before:]), timeout_s=300
    )
    await asyncio.sleep(3.0)  # acks of the new plan
    acks = [(a.cmd_id, a.status) for a in obs.acks]
    return resumed, check_commands(len(acks), [], acks).applied_twice


async def run(ctx: Ctx) -> Result:
    """Start the world, wait for commands, SIGKILL the controller mid-plan, measure, restart, check."""
    workdir = ctx.workdir / "controller"
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    broker = MosquittoBroker(workdir=workdir / "mosquitto")
    await asyncio.to_thread(broker.start)
    children: list[Child] = []
    try:
        sim, manifest = await start_sim(workdir, sites=5, broker_port=broker.port)
        children.append(sim)
        sites = [s.site for s in manifest.sites]
        for s in manifest.sites:
            cfg = edge_config(
                Path(s.config),
                workdir / f"{s.site}.yaml",
                **{"poll.interval_s": POLL_S, "buffer.path": str(workdir / f"{s.site}.queue.sqlite")},
            )
            children.append(start_edge(cfg, workdir / f"{s.site}.edge.log", name=f"edge-{s.site}"))
        topics = [site_topic(s, k) for s in sites for k in ("cmd", "ack", "event")]
        async with Observer(broker.port, topics, client_id="chaos-ctl-observer") as obs:
            cloud_cfg = _cloud_yaml(workdir, broker.port)
            cloud = await start_cloud(cloud_cfg, workdir / "cloud.log", timeout_s=300)
            children.append(cloud)
            # until two plans went out (the second: every site that the planner commands has one)
            if not await obs.wait_until(lambda: len({c.ts for _, c in obs.commands}) >= 2, timeout_s=600):
                raise TimeoutError(f"the controller sent no two plans in 600 s: {cloud.log_tail()}")
            # just after the next period boundary the controller is planning: kill it there
            now = datetime.now(UTC)
            boundary = datetime.fromtimestamp((now.timestamp() // PERIOD_S + 1) * PERIOD_S, UTC)
            await asyncio.sleep((boundary - now).total_seconds() + 0.3)
            await asyncio.to_thread(cloud.kill)
            killed_at = datetime.now(UTC)
            watermarks = {s: store_watermark(workdir / "store.sqlite", s) for s in sites}
            last: dict[str, datetime] = {}
            for _, c in obs.commands:
                last[c.site] = max(last.get(c.site, c.valid_until), c.valid_until)
            # wait out every TTL plus slack, then judge
            latest = max(last.values()) if last else killed_at
            await asyncio.sleep(max(0.0, (latest - datetime.now(UTC)).total_seconds()) + 3 * POLL_S + 2.0)
            events = [(e.site, e.kind, e.ts) for _, e in obs.events]
            times = fallback_times(killed_at, last, events)
            mid_plan = sum(1 for _, c in obs.commands if c.ts >= boundary - timedelta(seconds=1))
            # restart on the same store: state rebuilt, planning resumes
            resumed, twice = await _restart(cloud, obs, killed_at)
            after = {s: store_watermark(workdir / "store.sqlite", s) for s in sites}
    finally:
        for child in reversed(children):
            await asyncio.to_thread(child.stop)
        await asyncio.to_thread(broker.close)
    within = {s: took <= bound for s, (took, bound) in times.items()}
    rebuilt = all(after[s] >= watermarks[s] for s in sites)
    worst = max((took - bound for took, bound in times.values()), default=float("nan"))
    return Result(
        "controller_kill",
        f"gridflex cloud SIGKILL just after a period boundary (mid-plan), TTL {PERIOD_S:g} s, poll {POLL_S:g} s",
        {
            "commanded sites": len(times),
            "fallback within TTL+1 poll": f"{sum(within.values())}/{len(times)}",
            "per site s (took/bound)": " ".join(
                f"{s}:{t:.1f}/{b:.1f}" for s, (t, b) in sorted(times.items())
            ),
            "worst margin s": round(-worst, 2),
            "commands of the killed period": mid_plan,
            "watermarks kept": rebuilt,
            "planning resumed": resumed,
            "applied twice": twice,
        },
        ok=bool(times) and all(within.values()) and rebuilt and resumed and twice == 0,
        wall_s=time.monotonic() - t0,
    )
