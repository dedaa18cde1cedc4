"""Command round trip at fleet scale: plan decision → Mosquitto → agent → Modbus write → ack.

Runs the real closed loop (`ClosedLoop`: simulated buildings on Modbus TCP, one edge agent
per building, Mosquitto, the controller) in real time (clock speed 1) with a 60 s control
period, and reads from the controller's tracker how long each command took from the
moment the plan decided it to the moment its `applied` ack arrived (host time). Every
plan sends a burst (a command per battery, EV charger and heat pump of every site), so
the tail is the burst's queueing through one broker and many agents on this machine.
"""

from __future__ import annotations

import asyncio
import resource
import tempfile
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from cloud_controller import build_schutterwald_region
from gridflex.loop.closed_loop import ClosedLoop
from gridflex.loop.scenario import LoopSettings, build_scenario

__all__ = ["LoopLatency", "bench_command_latency"]


@dataclass(frozen=True)
class LoopLatency:
    """Command-to-ack latency of one closed-loop run, with the plans made, last solve time and memory."""

    sites: int
    commands: int
    answered: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    plans: int
    last_solve_ms: float
    rss_mb: float  # the whole process: buildings, agents and controller


def _quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[int(q * (len(sorted_values) - 1))] if sorted_values else float("nan")


async def _run(n_sites: int, minutes: float, workdir: Path) -> LoopLatency:
    settings = replace(
        # the constructed threshold, as before: a physical scenario imports yesterday's meter
        # readings, a power flow per 60-s period (1,440) before the latency is measured
        LoopSettings(n_sites=n_sites, seed=1, bacnet=False, congestion="threshold"),
        start_h=17.0,
        end_h=17.0 + max(1.0, minutes / 60.0),  # the scenario's window; the run stops earlier
        speed=1.0,
        period_s=60.0,
        poll_s=10.0,
        physics_step_s=5.0,
        horizon_steps=16,
        margin_s=30.0,
    )
    scenario = build_scenario(settings, build_schutterwald_region())
    async with ClosedLoop(scenario, workdir) as loop:
        await loop.run_until(settings.start + timedelta(minutes=minutes))
        assert loop.controller is not None
        await asyncio.sleep(2.0)  # the last burst's acks
        tracker = loop.controller.tracker
        latencies = tracker.ack_latencies_ms()
        stats = loop.controller.stats
        sent = len(tracker.sent)
        await loop.finish()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return LoopLatency(
        sites=n_sites,
        commands=sent,
        answered=len(latencies),
        p50_ms=_quantile(latencies, 0.5),
        p99_ms=_quantile(latencies, 0.99),
        max_ms=latencies[-1] if latencies else float("nan"),
        plans=stats.dispatch_count,
        last_solve_ms=stats.last_solve_ms,
        rss_mb=rss_mb,
    )


def bench_command_latency(n_sites: int = 100, minutes: float = 3.0) -> LoopLatency:
    """The closed loop for `minutes` of real time with `n_sites` buildings and agents."""
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_run(n_sites, minutes, Path(tmp)))
