"""An agent whose clock is off: an event names the skew, and commands are refused as `clock_skew`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gridflex.ops.broker import MosquittoBroker
from protocols.assets import BATTERY
from protocols.clock import RealClock
from protocols.messages import Command

from .cloud import Cloud
from .helpers import make_config, running_agent
from .servers import ModbusServer

pytestmark = pytest.mark.integration


class OffsetClock(RealClock):
    """Wall time shifted by `offset`: a gateway whose NTP is broken."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return super().now() + self.offset


def _cmd(cmd_id: str) -> Command:
    now = datetime.now(UTC)
    return Command.model_validate(
        {
            "site": "t1",
            "ts": now,
            "cmd_id": cmd_id,
            "asset": BATTERY,
            "kind": "p_setpoint_kw",
            "value": 2.0,
            "valid_from": now,
            "valid_until": now + timedelta(seconds=600),
        }
    )


@pytest.mark.parametrize(
    ("offset_s", "side"), [(900.0, "ahead of"), (-60.0, "behind")], ids=["15_min_ahead", "60_s_behind"]
)
async def test_skewed_agent_says_clock_skew_and_refuses_commands_for_it(
    mosquitto: MosquittoBroker, tmp_path: Path, offset_s: float, side: str
) -> None:
    server = await ModbusServer().start()
    try:
        cfg = make_config(tmp_path, broker_port=mosquitto.port, modbus_port=server.port)
        clock = OffsetClock(timedelta(seconds=offset_s))
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg, clock) as agent:
            # live `stored` watermarks (the cloud's time) arrive as telemetry is stored
            await cloud.wait_for(lambda: any(e.kind == "clock_skew" for e in cloud.events))
            event = next(e for e in cloud.events if e.kind == "clock_skew")
            assert side in event.message and "NTP" in event.message
            await cloud.send(_cmd("c1"))
            await cloud.wait_for(lambda: cloud.acks)
            ack = cloud.acks[0]
            assert ack.status == "rejected" and (ack.reason or "").startswith("clock_skew:"), ack.reason
            assert agent.stats.commands == {"rejected": 1}
    finally:
        await server.stop()
