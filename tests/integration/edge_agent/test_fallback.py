"""Fallback: a silent cloud puts every asset in its safe state within one poll interval; commands resume."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gridflex.ops.broker import MosquittoBroker
from protocols.messages import Command

from .cloud import Cloud
from .helpers import make_config, running_agent
from .servers import BacnetServer, ModbusServer

pytestmark = pytest.mark.integration

AFTER_S = 1.5
INTERVAL_S = 0.2


async def _holding_becomes(
    modbus: ModbusServer, address: int, expected: list[int], timeout_s: float = 5.0
) -> bool:
    """True once holding register `address` reads `expected` (the agent's write lands after its event)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while await modbus.get_holding(address) != expected:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _cmd(cmd_id: str, asset: str, value: float, ttl_s: float = 30) -> Command:
    now = datetime.now(UTC)
    return Command.model_validate(
        {
            "site": "t1",
            "ts": now,
            "cmd_id": cmd_id,
            "asset": asset,
            "kind": "p_limit_kw",
            "value": value,
            "valid_from": now,
            "valid_until": now + timedelta(seconds=ttl_s),
        }
    )


async def test_fallback_safe_state_guaranteed_minimum_and_resume(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    modbus = await ModbusServer().start()
    bms = await BacnetServer(analog_values={3: 9.0}).start()

    def add_hp(data: dict[str, Any]) -> None:
        data["fallback"]["after_s"] = AFTER_S
        data["devices"].append(
            {
                "id": "bms",
                "driver": "bacnet",
                "address": bms.address,
                "device_id": bms.device_id,
                "timeout_s": 1.0,
            }
        )
        data["assets"].append(
            {
                "id": "hp1",
                "kind": "hp",
                "points": [
                    {
                        "name": "p_limit_kw",
                        "device": "bms",
                        "object": "analogValue:3",
                        "unit": "kW",
                        "writable": True,
                        "priority": 8,
                        "min": 0,
                        "max": 9,
                    }
                ],
                "controls": {"p_limit_kw": {"point": "p_limit_kw"}},
                "limits": {"p_min_kw": 0.0, "p_max_kw": 9.0},
                "safe_state": [{"point": "p_limit_kw", "relinquish": True}],
            }
        )

    try:
        cfg = make_config(
            tmp_path,
            broker_port=mosquitto.port,
            modbus_port=modbus.port,
            interval_s=INTERVAL_S,
            overrides=add_hp,
        )
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg) as agent:
            await cloud.wait_for(lambda: cloud.states)
            await modbus.set_holding(400, [3])  # someone left the EV at 3 A
            # 1. Nothing from the cloud: fallback after AFTER_S, within one poll interval.
            await cloud.wait_for(lambda: agent.stats.state == "fallback", timeout_s=AFTER_S + 5)
            await cloud.wait_for(lambda: any(s.status == "fallback" for s in cloud.states))
            await cloud.wait_for(lambda: any(e.kind == "fallback_entered" for e in cloud.events))
            entered = next(e for e in cloud.events if e.kind == "fallback_entered")
            online_ts = cloud.states[0].ts
            assert (
                AFTER_S - 0.2 <= (entered.ts - online_ts).total_seconds() <= AFTER_S + 2.0
            )  # slack for a loaded machine
            assert await modbus.get_holding(400) == [16]  # EV safe state: full 16 A, never below 4.2 kW
            assert await modbus.get_holding(165) == [0]  # PV limit disabled
            # 2. A valid command: normal again; the HP is limited, but not below 4.2 kW.
            await cloud.send(_cmd("h1", "hp1", 2.0))
            await cloud.wait_for(lambda: cloud.acks and agent.stats.state == "online")
            assert cloud.acks[0].status == "clamped" and cloud.acks[0].applied_value == 4.2
            assert bms.present_value("av3") == pytest.approx(4.2)
            await cloud.wait_for(lambda: cloud.states[-1].status == "online")
            await cloud.wait_for(lambda: any(e.kind == "fallback_left" for e in cloud.events))
            # 3. A command whose validity ends without a successor: that asset goes safe.
            await cloud.send(_cmd("e1", "ev1", 7 * 0.69, ttl_s=0.4))
            await cloud.wait_for(lambda: len(cloud.acks) == 2)
            assert await modbus.get_holding(400) == [7]
            # `command_expired` is the online path's event (fallback would say `fallback_entered`)
            await cloud.wait_for(
                lambda: any(e.kind == "command_expired" and "e1" in e.message for e in cloud.events),
                timeout_s=5,
            )
            assert await _holding_becomes(modbus, 400, [16])
            # 4. Silence again: fallback relinquishes the BMS priority (BMS default 9 kW rules).
            await cloud.wait_for(lambda: agent.stats.state == "fallback", timeout_s=AFTER_S + 5)
            await cloud.wait_for(lambda: bms.present_value("av3") == pytest.approx(9.0), timeout_s=5)
    finally:
        await bms.stop()
        await modbus.stop()
