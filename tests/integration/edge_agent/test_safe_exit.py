"""`gridflex edge safe-state`: what systemd runs after any stop, so a killed agent leaves nothing capped."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gridflex.ops.broker import free_port

from .helpers import site_dict, write_site
from .servers import ModbusServer

pytestmark = pytest.mark.integration


def _safe_state(config: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gridflex", "edge", "safe-state", str(config), "--timeout-s", "10"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


async def test_safe_state_command_lifts_what_a_killed_agent_left_capped(tmp_path: Path) -> None:
    server = await ModbusServer().start()
    try:
        await server.set_holding(400, [3])  # EV charger left at 3 A (2.07 kW, under the floor)
        await server.set_holding(165, [1])  # PV export limit left enabled
        data: dict[str, Any] = site_dict(tmp_path, broker_port=free_port(), modbus_port=server.port)
        r = await asyncio.to_thread(_safe_state, write_site(tmp_path, data))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "safe state written" in r.stdout
        assert await server.get_holding(400) == [16]  # EV back to its full 16 A
        assert await server.get_holding(165) == [0]  # PV limit disabled
    finally:
        await server.stop()


async def test_safe_state_command_says_so_and_exits_1_when_a_device_is_gone(tmp_path: Path) -> None:
    data: dict[str, Any] = site_dict(tmp_path, broker_port=free_port(), modbus_port=free_port())
    r = await asyncio.to_thread(_safe_state, write_site(tmp_path, data))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "critical: safe_state_failed" in r.stderr and "NOT fully written" in r.stdout
