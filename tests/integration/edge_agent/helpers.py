"""Site configs for the agent's integration tests, and running an agent in the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from edge_agent.agent import EdgeAgent
from edge_agent.config import SiteConfig, load_config
from protocols.clock import Clock, RealClock


def site_dict(
    tmp_path: Path, *, broker_port: int, modbus_port: int, site: str = "t1", interval_s: float = 0.1
) -> dict[str, Any]:
    """A PV inverter (SunSpec-like registers) and a battery on one Modbus server."""
    return {
        "site": site,
        "broker": {"host": "127.0.0.1", "port": broker_port, "keepalive_s": 5},
        "buffer": {"path": str(tmp_path / "buf.sqlite"), "batch_max": 500},
        "fallback": {"after_s": 300},
        "health": {"port": None},
        "poll": {"interval_s": interval_s, "max_age_s": 60},
        "devices": [
            {
                "id": "inv",
                "driver": "modbus",
                "host": "127.0.0.1",
                "port": modbus_port,
                "unit_id": 1,
                "timeout_s": 1.0,  # generous: a loaded 2-core CI machine has had reads > 0.3 s
            }
        ],
        "assets": [
            {
                "id": "pv1",
                "kind": "pv",
                "p_nominal_kw": 8.0,
                "points": [
                    # Inverter reports W with W_SF, generation positive.
                    {
                        "name": "p_kw",
                        "device": "inv",
                        "table": "holding",
                        "address": 83,
                        "type": "int16",
                        "scale": 0.001,
                        "sf_address": 84,
                        "sign": -1.0,
                        "unit": "kW",
                    },
                    {
                        "name": "wmaxlim_pct",
                        "device": "inv",
                        "table": "holding",
                        "address": 152,
                        "type": "uint16",
                        "unit": "%",
                        "writable": True,
                        "min": 0,
                        "max": 100,
                    },
                    {
                        "name": "wmaxlim_ena",
                        "device": "inv",
                        "table": "holding",
                        "address": 165,
                        "type": "uint16",
                        "unit": "",
                        "writable": True,
                        "min": 0,
                        "max": 1,
                    },
                    {
                        "name": "counter",
                        "device": "inv",
                        "table": "holding",
                        "address": 300,
                        "type": "uint32",
                        "unit": "",
                    },
                ],
                "controls": {
                    "p_limit_kw": {
                        "point": "wmaxlim_pct",
                        "factor": 12.5,
                        "enable": {"point": "wmaxlim_ena", "value": 1},
                    }
                },
                "limits": {"p_min_kw": 0.0, "p_max_kw": 8.0},
                "safe_state": [{"point": "wmaxlim_ena", "write": 0}],
            },
            {
                "id": "bat1",
                "kind": "battery",
                "points": [
                    {
                        "name": "p_kw",
                        "device": "inv",
                        "table": "holding",
                        "address": 200,
                        "type": "float32",
                        "unit": "kW",
                    },
                    {
                        "name": "soc_pct",
                        "device": "inv",
                        "table": "holding",
                        "address": 202,
                        "type": "uint16",
                        "scale": 0.1,
                        "unit": "pct",
                    },
                    {
                        "name": "setpoint_kw",
                        "device": "inv",
                        "table": "holding",
                        "address": 204,
                        "type": "float32",
                        "unit": "kW",
                        "writable": True,
                        "min": -5,
                        "max": 5,
                    },
                ],
                "controls": {"p_setpoint_kw": {"point": "setpoint_kw"}},
                "limits": {"p_min_kw": -5.0, "p_max_kw": 5.0, "ramp_kw_per_s": None},
                "safe_state": [{"point": "setpoint_kw", "write": 0.0}],
                "model": {
                    "capacity_kwh": 10.0,
                    "soc_min_pct": 10,
                    "soc_max_pct": 90,
                    "eta_charge": 0.95,
                    "eta_discharge": 0.95,
                },
            },
            {
                "id": "ev1",
                "kind": "ev",
                "points": [
                    {
                        "name": "limit_a",
                        "device": "inv",
                        "table": "holding",
                        "address": 400,
                        "type": "uint16",
                        "unit": "A",
                        "writable": True,
                        "min": 0,
                        "max": 16,
                    },
                ],
                # 3 x 230 V: 1 A = 0.69 kW -> A = kW / 0.69
                "controls": {"p_limit_kw": {"point": "limit_a", "factor": 1.4492753623188406}},
                "limits": {"p_min_kw": 0.0, "p_max_kw": 11.0},
                "safe_state": [{"point": "limit_a", "write": 16}],
            },
        ],
    }


def write_site(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def make_config(tmp_path: Path, **kw: Any) -> SiteConfig:
    overrides = kw.pop("overrides", None)
    data = site_dict(tmp_path, **kw)
    if overrides:
        overrides(data)
    return load_config(write_site(tmp_path, data))


@contextlib.asynccontextmanager
async def running_agent(
    config: SiteConfig, clock: Clock | None = None, **kw: Any
) -> AsyncIterator[EdgeAgent]:
    agent = EdgeAgent(config, clock=clock or RealClock(), **kw)
    task = asyncio.create_task(agent.run(), name="edge-agent")
    try:
        yield agent
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=15)
        if not done:  # a stop that hangs is a bug: show where, then fail
            for other in asyncio.all_tasks():
                other.print_stack()
            raise AssertionError("the agent did not stop within 15 s of cancellation")
        with contextlib.suppress(asyncio.CancelledError):
            await task
