"""A dispatcher that lost its lease is fenced off by the agent, also after the agent restarts.

Dispatcher A held the lease with fencing token 3; dispatcher B took it over with token 4.
Both sign with the site's key (they are the same controller software). Through a real
Mosquitto to a real agent on a real Modbus server: B's command is applied, A's later one
is refused as stale and never written; after the agent restarts A is still refused, B
still commands, and a command without a token is refused where the site requires one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gridflex.ops.broker import MosquittoBroker
from protocols.assets import EV
from protocols.messages import Command
from protocols.signing import sign

from .cloud import Cloud
from .helpers import make_config, running_agent
from .servers import ModbusServer

pytestmark = pytest.mark.integration

KEY = bytes.fromhex("33" * 32)
EV_LIMIT_A = 400  # the EV charger's current-limit register in helpers.site_dict
STALE = "stale fencing token 3 < 4"


def _command(cmd_id: str, value_kw: float, fence: int | None) -> Command:
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
            "fence": fence,
        }
    )
    return sign(cmd, KEY)


async def test_stale_dispatcher_is_refused_before_and_after_an_agent_restart(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    (tmp_path / "key.hex").write_text(KEY.hex())

    def signed_and_fenced(data: dict[str, Any]) -> None:
        data["signing"] = {"key_file": str(tmp_path / "key.hex")}
        data["commands"] = {"require_fence": True}

    server = await ModbusServer().start()
    try:
        cfg = make_config(
            tmp_path, broker_port=mosquitto.port, modbus_port=server.port, overrides=signed_and_fenced
        )
        async with Cloud("t1", mosquitto.port).running() as cloud:
            async with running_agent(cfg) as agent:
                await cloud.wait_for(lambda: cloud.states)
                await cloud.send(_command("b-1", 6.9, fence=4))  # B, the new holder: 10 A
                await cloud.wait_for(lambda: len(cloud.acks) == 1)
                await cloud.send(_command("a-1", 8.28, fence=3))  # A, back from a pause: 12 A
                await cloud.wait_for(lambda: len(cloud.acks) == 2)
                assert [(a.cmd_id, a.status, a.reason) for a in cloud.acks] == [
                    ("b-1", "applied", None),
                    ("a-1", "rejected", STALE),
                ]
                assert await server.get_holding(EV_LIMIT_A) == [10]  # A's 12 A never written
                await cloud.wait_for(lambda: any(e.kind == "command_fence_refused" for e in cloud.events))
                (event,) = [e for e in cloud.events if e.kind == "command_fence_refused"]
                assert event.severity == "warning" and event.asset == EV and STALE in event.message
                assert agent.stats.commands == {"applied": 1, "rejected": 1, "fence_refused": 1}
            async with running_agent(cfg) as agent:  # same config, same state directory
                n_states = len(cloud.states)
                await cloud.wait_for(lambda: len(cloud.states) > n_states)
                await cloud.send(_command("a-2", 11.04, fence=3))  # A again: 16 A
                await cloud.send(_command("x-1", 11.04, fence=None))  # no token at all
                await cloud.send(_command("b-2", 8.28, fence=4))  # B still commands: 12 A
                await cloud.wait_for(lambda: len(cloud.acks) == 5)
                assert [(a.cmd_id, a.status) for a in cloud.acks[2:]] == [
                    ("a-2", "rejected"),
                    ("x-1", "rejected"),
                    ("b-2", "applied"),
                ]
                assert cloud.acks[2].reason == STALE
                assert "requires one (commands.require_fence)" in (cloud.acks[3].reason or "")
                assert agent.stats.commands == {"applied": 1, "rejected": 2, "fence_refused": 2}
            assert await server.get_holding(EV_LIMIT_A) == [12]  # B's value; 16 A was never set
    finally:
        await server.stop()
