"""Simulator figures: physics steps/s and Modbus reads/s served by one process of N buildings.

The Modbus load comes from a separate client process (one connection per device, each
reading the meter/inverter power block in a loop), so the figure is what one server
process serves while its physics keeps stepping at 1 s of simulated time per step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

from gridflex.ops import children
from protocols.clock import SimClock
from simulators.testbed import TestBed, TestBedConfig

__all__ = ["LOAD_S", "START", "measure_simulators"]

START = datetime(2030, 1, 15, 17, tzinfo=UTC)
LOAD_S = 5.0

CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pymodbus.client import AsyncModbusTcpClient
    eps = json.loads(sys.argv[1]); dur = float(sys.argv[2])
    async def worker(host, port, addr, count, stop, out):
        c = AsyncModbusTcpClient(host, port=port, timeout=5.0, retries=0)
        await c.connect()
        n = 0
        while time.monotonic() < stop:
            rr = await c.read_holding_registers(addr, count=count, device_id=1)
            if not rr.isError():
                n += 1
        c.close()
        out.append(n)
    async def main():
        out = []
        stop = time.monotonic() + dur
        await asyncio.gather(*(worker(h, p, a, n, stop, out) for h, p, a, n in eps))
        print(sum(out))
    asyncio.run(main())
    """
)

BLOCK = {"meter": (40072, 21), "pv": (40072, 14), "battery": (0, 16), "ev": (0, 12), "hp": (0, 12)}


async def measure_simulators(
    n_sites: int, bacnet: bool, workdir: Path, *, load_s: float = LOAD_S
) -> dict[str, float]:
    """Start `n_sites` buildings, step the physics alone for 2 s, then under `load_s` of Modbus load.

    The load comes from another process. Returns steps/s, reads/s served, worst step under
    load, start-up time.
    """
    clock = SimClock(START)
    t0 = time.perf_counter()
    cfg = TestBedConfig(n_sites=n_sites, seed=7, start=START, bacnet=bacnet)
    async with TestBed(cfg, clock, workdir / f"bed{n_sites}{int(bacnet)}") as bed:
        startup_s = time.perf_counter() - t0
        n_dev = sum(len(s) for s in bed.modbus.values())
        # 1. Physics alone: steps/s of the whole fleet (each step = every building + registers + BMS).
        steps = 0
        t = time.perf_counter()
        while time.perf_counter() - t < 2.0:
            clock.advance(1.0)
            bed.step(1.0)
            steps += 1
        fleet_steps_s = steps / (time.perf_counter() - t)
        # 2. Modbus load from another process while the physics steps once per wall second.
        eps = [(e.host, e.port, *BLOCK[e.device]) for s in bed.manifest.sites for e in s.modbus]
        proc = await children.spawn_async(
            sys.executable, "-c", CLIENT, json.dumps(eps), str(load_s), stdout=asyncio.subprocess.PIPE
        )
        step_ms: list[float] = []
        reads0 = bed.modbus_reads
        t = time.perf_counter()
        while proc.returncode is None and time.perf_counter() - t < load_s + 30.0:  # bounded
            s0 = time.perf_counter()
            clock.advance(1.0)
            bed.step(1.0)
            step_ms.append((time.perf_counter() - s0) * 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 1.0)
        try:
            async with asyncio.timeout(10.0):  # the client has ended (or is stopped below)
                out, _ = await proc.communicate()
        finally:
            await children.stop_async(proc)
        client_reads = int(out.decode().strip() or 0)
        served = bed.modbus_reads - reads0
        elapsed = time.perf_counter() - t
    return {
        "sites": n_sites,
        "devices": n_dev,
        "bacnet": bacnet,
        "startup_s": startup_s,
        "fleet_steps_s": fleet_steps_s,
        "building_steps_s": fleet_steps_s * n_sites,
        "reads_s": served / elapsed,
        "client_reads": client_reads,
        "step_ms_under_load_max": max(step_ms),
    }
