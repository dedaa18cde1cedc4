"""A captured signed command replayed after the agent restarts is refused and never reaches the device."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gridflex.ops.broker import MosquittoBroker
from protocols.assets import EV
from protocols.codec import encode
from protocols.messages import Command
from protocols.signing import sign

from .cloud import Cloud
from .helpers import make_config, running_agent
from .servers import ModbusServer

pytestmark = pytest.mark.integration

KEY = bytes.fromhex("22" * 32)
EV_LIMIT_A = 400  # the EV charger's current-limit register in helpers.site_dict


def _captured(cmd_id: str, value_kw: float) -> bytes:
    now = datetime.now(UTC)
    cmd = Command.model_validate(
        {
            "site": "t1",
            "ts": now,
            "cmd_id": cmd_id,
            "asset": EV,
            "kind": "p_limit_kw",
            "value": value_kw,
            "valid_from": now,
            "valid_until": now + timedelta(seconds=600),
        }
    )
    return encode(sign(cmd, KEY))  # the exact bytes an attacker would record from the wire


async def test_signed_command_replayed_after_restart_is_rejected_and_never_written(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    (tmp_path / "key.hex").write_text(KEY.hex())

    def with_key(data: dict[str, Any]) -> None:
        data["signing"] = {"key_file": str(tmp_path / "key.hex")}

    server = await ModbusServer().start()
    try:
        cfg = make_config(tmp_path, broker_port=mosquitto.port, modbus_port=server.port, overrides=with_key)
        payload = _captured("limit-1", 6.9)  # 10 A
        async with Cloud("t1", mosquitto.port).running() as cloud:
            async with running_agent(cfg):
                await cloud.wait_for(lambda: cloud.states)
                await cloud.send(payload)
                await cloud.wait_for(lambda: len(cloud.acks) == 1)
                assert cloud.acks[0].status == "applied"
                assert await server.get_holding(EV_LIMIT_A) == [10]
            await server.set_holding(EV_LIMIT_A, [16])  # the charger moved on meanwhile
            async with running_agent(cfg) as agent:  # same config, same state directory
                n_states = len(cloud.states)
                await cloud.wait_for(lambda: len(cloud.states) > n_states)
                await cloud.send(payload)  # the replay, well inside the command's 600 s validity
                await cloud.send(_captured("limit-2", 8.28))  # a fresh command still works
                await cloud.wait_for(lambda: len(cloud.acks) == 3)
                replay, fresh = cloud.acks[1], cloud.acks[2]
                assert (replay.cmd_id, replay.status) == ("limit-1", "rejected")
                assert "replay" in (replay.reason or "")
                assert (fresh.cmd_id, fresh.status) == ("limit-2", "applied")
                assert agent.stats.commands == {"rejected": 1, "applied": 1}
            assert await server.get_holding(EV_LIMIT_A) == [12]  # 16 A was never set back to 10 A
    finally:
        await server.stop()
