"""Simulator figures: physics steps/s and Modbus reads/s served, 10 and 100 buildings in one process.

Run: .venv/bin/pytest tests/bench/test_simulators_bench.py -m bench -s
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

import pytest

from protocols.clock import SimClock
from simulators.testbed import TestBed, TestBedConfig

pytestmark = [pytest.mark.bench, pytest.mark.integration]

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


async def _measure(n_sites: int, bacnet: bool, tmp: Path) -> dict[str, float]:
    clock = SimClock(START)
    t0 = time.perf_counter()
    cfg = TestBedConfig(n_sites=n_sites, seed=7, start=START, bacnet=bacnet)
    async with TestBed(cfg, clock, tmp / f"bed{n_sites}{int(bacnet)}") as bed:
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
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, json.dumps(eps), str(LOAD_S), stdout=asyncio.subprocess.PIPE
        )
        step_ms: list[float] = []
        reads0 = bed.modbus_reads
        t = time.perf_counter()
        while proc.returncode is None:
            s0 = time.perf_counter()
            clock.advance(1.0)
            bed.step(1.0)
            step_ms.append((time.perf_counter() - s0) * 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 1.0)
        out, _ = await proc.communicate()
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


@pytest.mark.parametrize(
    ("n_sites", "bacnet"), [(10, True), (100, False), (100, True)], ids=["10", "100", "100-bacnet"]
)
async def test_simulator_throughput(n_sites: int, bacnet: bool, tmp_path: Path) -> None:
    async with asyncio.timeout(240):
        r = await _measure(n_sites, bacnet, tmp_path)
    print(
        f"\nsimulators: {r['sites']} buildings, {r['devices']} Modbus servers, BACnet {r['bacnet']}: "
        f"start {r['startup_s']:.1f} s | {r['fleet_steps_s']:.0f} fleet steps/s "
        f"({r['building_steps_s']:.0f} building steps/s) | {r['reads_s']:.0f} Modbus reads/s served "
        f"({r['client_reads']} client reads in {LOAD_S:.0f} s) | "
        f"worst step under load {r['step_ms_under_load_max']:.1f} ms"
    )
    # Real time at a 1 s step needs a fleet step well under a second, even under Modbus load.
    assert r["fleet_steps_s"] > 1.0
    assert r["step_ms_under_load_max"] < 1000.0
    assert r["reads_s"] > 0
