"""Simulator figures: physics steps/s and Modbus reads/s served, 10 and 100 buildings in one process.

Run: .venv/bin/pytest tests/bench/test_simulators_bench.py -m bench -s
The measuring code is `gridflex.bench.simulators.measure_simulators`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gridflex.bench.simulators import LOAD_S, measure_simulators

pytestmark = [pytest.mark.bench, pytest.mark.integration]


@pytest.mark.parametrize(
    ("n_sites", "bacnet"), [(10, True), (100, False), (100, True)], ids=["10", "100", "100-bacnet"]
)
async def test_simulator_throughput(n_sites: int, bacnet: bool, tmp_path: Path) -> None:
    async with asyncio.timeout(240):
        r = await measure_simulators(n_sites, bacnet, tmp_path)
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
