"""`gridflex chaos` short mode: the scenarios that need no process stack run in the default suite.

The kill scenarios' default-run proofs are the agent's own tests (tests/integration/edge_agent:
test_outage kills the broker 5x, test_process SIGKILLs `gridflex edge` and judges by the poll
log); the whole short mode, stack included, is the slow test below; the full run is `make chaos`.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gridflex.chaos.fuzz import fuzz_modbus, fuzz_yaml
from gridflex.chaos.runner import run_chaos

pytestmark = pytest.mark.integration


async def test_short_floor_and_isolation_pass_with_their_figures(tmp_path: Path) -> None:
    rows = {r.scenario: r for r in await run_chaos(["floor", "isolation"], short=True, workdir=tmp_path)}
    assert set(rows) == {"floor", "isolation", "isolation_certs"}
    floor, iso, certs = rows["floor"], rows["isolation"], rows["isolation_certs"]
    assert floor.ok and floor.figures["below floor"] == 0 and int(floor.figures["floored writes"]) > 500
    assert iso.ok and iso.figures["messages crossed"] == 0 and int(iso.figures["foreign publishes tried"]) > 0
    # the same rounds over mutual TLS: nothing crosses, no certificate or another CA's is refused
    assert certs.ok and not certs.skipped and certs.figures["messages crossed"] == 0
    assert certs.figures["no certificate refused"] is True
    assert certs.figures["other CA's certificate refused"] is True


def test_yaml_fuzz_finds_no_crash() -> None:
    got = fuzz_yaml(100, random.Random(5))
    assert got["crashes"] == 0 and got["refused"] > 0 and got["inputs"] == 100


async def test_faulty_modbus_device_gives_bad_readings_never_a_crash_or_a_non_finite_good() -> None:
    got = await fuzz_modbus(500, random.Random(5))
    assert got["register values"] >= 500 and got["reads"] > 0
    assert (got["crashes"], got["unsafe"]) == (0, 0)
    assert got["bad"] > 0  # the fuzz reached the refusals (NaN, out-of-range scale factors)


@pytest.mark.slow
async def test_the_whole_short_mode_passes(tmp_path: Path) -> None:
    rows = await run_chaos(None, short=True, workdir=tmp_path)
    failed = [(r.scenario, r.figures, r.note) for r in rows if not (r.ok or r.skipped)]
    assert not failed
    assert {r.scenario for r in rows} >= {"broker_kill", "agent_kill", "fuzz", "replay", "floor", "isolation"}
