"""Commands through the real broker to a real Modbus device: every ack status, and what reaches the device."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent.drivers.registers import decode
from gridflex.ops.broker import MosquittoBroker
from protocols.messages import Command
from protocols.signing import sign

from .cloud import Cloud
from .helpers import make_config, running_agent
from .servers import ModbusServer

pytestmark = pytest.mark.integration

KEY = bytes.fromhex("11" * 32)


def _cmd(
    cmd_id: str,
    asset: str,
    kind: str,
    value: float | str,
    *,
    site: str = "t1",
    ttl_s: float = 60,
    age_s: float = 0,
) -> Command:
    now = datetime.now(UTC) - timedelta(seconds=age_s)
    return Command.model_validate(
        {
            "site": site,
            "ts": now,
            "cmd_id": cmd_id,
            "asset": asset,
            "kind": kind,
            "value": value,
            "valid_from": now,
            "valid_until": now + timedelta(seconds=ttl_s),
        }
    )


def _signed(*args: Any, **kw: Any) -> Command:
    return sign(_cmd(*args, **kw), KEY)


async def test_command_outcomes(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    (tmp_path / "key.hex").write_text(KEY.hex())

    def with_key(data: dict[str, Any]) -> None:
        data["signing"] = {"key_file": str(tmp_path / "key.hex")}

    server = await ModbusServer().start()
    try:
        cfg = make_config(tmp_path, broker_port=mosquitto.port, modbus_port=server.port, overrides=with_key)
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg) as agent:
            await cloud.wait_for(lambda: cloud.states)

            async def ack(payload: Command | bytes, n: int) -> Any:
                await cloud.send(payload)
                await cloud.wait_for(lambda: len(cloud.acks) >= n)
                return cloud.acks[n - 1]

            a = await ack(_signed("c1", "pv1", "p_limit_kw", 4.0), 1)
            assert (a.status, a.applied_value, a.read_back) == ("applied", 4.0, pytest.approx(4.0))
            assert await server.get_holding(152) == [50] and await server.get_holding(165) == [1]

            a = await ack(_signed("c2", "pv1", "p_limit_kw", 10.0), 2)
            assert (a.status, a.applied_value, a.requested) == ("clamped", 8.0, 10.0)
            assert await server.get_holding(152) == [100]

            a = await ack(_signed("c3", "pv1", "p_limit_kw", 1.0, ttl_s=5, age_s=30), 3)
            assert a.status == "expired"
            a = await ack(sign(_cmd("c4", "pv1", "p_limit_kw", 1.0), bytes(32)), 4)
            assert a.status == "rejected" and "signature" in (a.reason or "")
            a = await ack(_cmd("c5", "pv1", "p_limit_kw", 1.0), 5)  # unsigned
            assert a.status == "rejected"
            a = await ack(_signed("c6", "pv1", "p_limit_kw", 1.0, site="other"), 6)
            assert a.status == "rejected" and "site" in (a.reason or "")
            a = await ack(b'{"cmd_id": "c7", "asset": "pv1", "kind": "p_limit_kw", "value": "lots"}', 7)
            assert a.status == "rejected" and a.cmd_id == "c7"
            a = await ack(_signed("c2", "pv1", "p_limit_kw", 1.0), 8)  # replayed id
            assert a.status == "rejected" and "replay" in (a.reason or "")
            a = await ack(_signed("c9", "nope", "p_limit_kw", 1.0), 9)
            assert a.status == "rejected" and "unknown asset" in (a.reason or "")
            assert await server.get_holding(152) == [100], "a refused command reached the device"

            await cloud.send(b"\xff\x00 not json")
            await cloud.wait_for(lambda: any(e.kind == "command_rejected" for e in cloud.events))

            # §14a: an EV limit below 4.2 kW is raised to it (whole amps: 7 A = 4.83 kW >= 4.2)
            a = await ack(_signed("c10", "ev1", "p_limit_kw", 1.0), 10)
            assert a.status == "clamped" and a.applied_value >= 4.2
            assert await server.get_holding(400) == [7]

            a = await ack(_signed("c11", "bat1", "p_setpoint_kw", -3.0), 11)
            assert a.status == "applied"
            assert decode(await server.get_holding(204, 2), "float32") == -3.0

            await server.stop()  # device gone: the command fails, the agent stays
            a = await ack(_signed("c12", "bat1", "p_setpoint_kw", 1.0), 12)
            assert a.status == "failed"
            assert agent.stats.commands == {
                "applied": 2,
                "clamped": 2,
                "expired": 1,
                "rejected": 7,
                "failed": 1,
            }
    finally:
        await server.stop()


FUZZ_N = 400
WINDOW = 50


async def test_unsigned_fuzzed_commands_through_the_clamp_path_never_write_unsafe_values(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Signing off, so every well-formed command reaches the clamp path; after every window the
    real device's registers are read: PV limit 0..100 %, EV 7..16 A (the 4.2 kW floor in whole
    amps), battery setpoint -5..5 kW; every read-back in an ack is inside the asset's limits."""
    import random

    from gridflex.chaos.fuzz import unsafe_ack
    from gridflex.chaos.inputs import random_command

    rng = random.Random(2030)
    server = await ModbusServer().start()
    try:
        cfg = make_config(tmp_path, broker_port=mosquitto.port, modbus_port=server.port)
        controlled = [a for a in cfg.assets if a.controls]
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg):
            await cloud.wait_for(lambda: cloud.states)
            kinds: dict[str, str] = {}
            sent = 0
            for start in range(0, FUZZ_N, WINDOW):
                now = datetime.now(UTC)
                for i in range(start, start + WINDOW):
                    asset = rng.choice(controlled)
                    cmd = random_command(rng, "t1", [asset.id], now, i, kinds=tuple(sorted(asset.controls)))
                    if cmd is None:  # the contract refused the value before it was sent
                        continue
                    kinds[cmd.cmd_id] = cmd.kind
                    await cloud.send(cmd)
                    sent += 1
                await cloud.wait_for(lambda n=sent: len(cloud.acks) >= n, timeout_s=60)
                pv_pct, ev_a = (await server.get_holding(152))[0], (await server.get_holding(400))[0]
                bat_kw = decode(await server.get_holding(204, 2), "float32")
                assert 0 <= pv_pct <= 100 and (ev_a == 0 or 7 <= ev_a <= 16) and -5.0 <= bat_kw <= 5.0, (
                    pv_pct,
                    ev_a,
                    bat_kw,
                )
        written = [a for a in cloud.acks if a.status in ("applied", "clamped")]
        assert len(cloud.acks) == sent and len(written) > FUZZ_N // 4
        assert not [a for a in cloud.acks if unsafe_ack(a, kinds.get(a.cmd_id), cfg)]
    finally:
        await server.stop()
