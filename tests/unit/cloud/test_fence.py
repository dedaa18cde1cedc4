"""The dispatcher stamps its lease's fencing token on every command, and sends nothing without a held lease.

Two `CloudController`s on one store file stand for two dispatcher processes (separate
connections, the file's write lock between them); time is a manually stepped SimClock,
so "A paused past its lease" is a clock step without a renewal. Publishing is recorded
at the MQTT session (no broker here: the agent side runs against a real one in
tests/integration/edge_agent/test_fence_restart.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.live.commands import CommandBuilder, fence_commands, lease_fence
from cloud_controller.live.types import AssetRef, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from protocols.clock import SimClock
from protocols.codec import decode
from protocols.messages import Command
from protocols.signing import Keyring, SigningKey, sign

T0 = datetime(2030, 1, 15, 12, tzinfo=UTC)
KEY = b"s" * 32


def _cmd(cmd_id: str, site: str = "b001") -> Command:
    return Command(
        site=site,
        ts=T0,
        cmd_id=cmd_id,
        asset="bat1",
        kind="p_setpoint_kw",
        value=1.0,
        valid_from=T0,
        valid_until=T0 + timedelta(minutes=20),
    )


class _Recorder:
    """Stands in for `MqttSession.publish`: what would have gone to the broker."""

    def __init__(self) -> None:
        self.sent: list[Command] = []

    async def publish(self, topic: str, payload: bytes, **_: object) -> None:
        msg = decode(topic, payload)
        assert isinstance(msg, Command)
        self.sent.append(msg)


def _controller(tmp_path: Path, clock: SimClock) -> tuple[CloudController, _Recorder]:
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "b001.k1.key").write_text(KEY.hex())
    cfg = CloudConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "shared.sqlite")},
            "api": {"enabled": False},
            "lease": {"ttl_s": 30, "renew_s": 10},
            "signing_keys_dir": str(keys),
        }
    )
    registry = Registry(sites=(SiteRef("b001", 0, (AssetRef("bat1", "battery"),)),))
    ctl = CloudController(cfg, registry, clock=clock, role="dispatch")
    recorder = _Recorder()
    ctl.session.publish = recorder.publish  # type: ignore[method-assign]
    return ctl, recorder


async def test_commands_carry_the_lease_token_and_a_lapsed_holder_sends_nothing(tmp_path: Path) -> None:
    clock = SimClock(T0)  # manual: time moves only when the test steps it
    a, sent_a = _controller(tmp_path, clock)
    b, sent_b = _controller(tmp_path, clock)
    assert a.lease is not None and b.lease is not None
    try:
        await a._publish_commands([_cmd("early")])  # still acquiring: no lease, nothing sent
        assert sent_a.sent == [] and a.stats.commands_without_lease == 1
        await a.lease.acquire()
        assert a.lease.token == 1
        await a._publish_commands([_cmd("a1"), _cmd("a2")])
        assert [(c.cmd_id, c.fence) for c in sent_a.sent] == [("a1", 1), ("a2", 1)]
        keyring = Keyring([SigningKey(KEY, "k1")])
        for cmd in sent_a.sent:
            keyring.check(cmd)  # signed after the token was stamped: the signature covers it
        assert {k: t.command.fence for k, t in a.tracker.sent.items()} == {"a1": 1, "a2": 1}

        clock.advance(31)  # A is paused past its lease without renewing; B takes over
        await b.lease.acquire()
        assert b.lease.token == 2
        await b._publish_commands([_cmd("b1")])
        assert [(c.cmd_id, c.fence) for c in sent_b.sent] == [("b1", 2)]
        keyring.check(sent_b.sent[0])

        # A wakes up before its renewal notices: it still believes it holds token 1, but its
        # lease has expired, so it sends nothing (and agents would refuse token 1 anyway)
        assert a.lease.status.state == "held" and a.lease.token == 1
        await a._publish_commands([_cmd("a3")])
        assert [c.cmd_id for c in sent_a.sent] == ["a1", "a2"]
        assert a.stats.commands_without_lease == 2 and "a3" not in a.tracker.sent
    finally:
        a.store.close()
        b.store.close()


async def test_a_standby_starts_neither_mqtt_nor_dispatch(tmp_path: Path) -> None:
    """Already so before fencing: `_start` waits for the lease before it connects or plans."""
    clock = SimClock(T0)
    a, _ = _controller(tmp_path, clock)
    b, sent_b = _controller(tmp_path, clock)
    assert a.lease is not None and b.lease is not None
    await a.lease.acquire()
    try:
        async with asyncio.TaskGroup() as tg:

            def spawn(coro: Coroutine[Any, Any, None], name: str) -> None:
                tg.create_task(coro, name=name)

            starting = tg.create_task(b._start(spawn), name="start")
            for _ in range(5):  # A renews every 10 s; B retries as standby
                await clock.step(10, tick_s=1)
                a.store.acquire_lease("dispatch", a.lease.holder, clock.now().timestamp(), 30)
                await asyncio.sleep(0.01)  # B's attempt runs in a thread
            names = {t.get_name() for t in asyncio.all_tasks()}
            assert b.lease.status.state == "standby" and not starting.done()
            assert not names & {"mqtt", "dispatch", "guard"}, names
            starting.cancel()
        assert sent_b.sent == []
    finally:
        a.store.close()
        b.store.close()


def test_lease_fence_only_while_held_and_unexpired() -> None:
    later = T0 + timedelta(seconds=30)
    assert lease_fence("held", 3, later, T0) == 3
    assert lease_fence("held", 3, later, later) is None  # expired at its own deadline
    assert lease_fence("standby", 3, later, T0) is None
    assert lease_fence("acquiring", None, None, T0) is None
    assert lease_fence("released", 3, None, T0) is None


def test_fence_commands_re_signs_and_keeps_unsigned_unsigned() -> None:
    key = SigningKey(KEY, "k1")
    signed, unsigned = sign(_cmd("c1"), key), _cmd("c2", site="b002")
    out = fence_commands([signed, unsigned], 7, {"b001": key})
    assert [c.fence for c in out] == [7, 7]
    Keyring([key]).check(out[0])
    assert out[0].kid == "k1" and out[1].sig is None
    assert fence_commands(out, 7, {"b001": key})[0] is out[0]  # already carrying it: as it is
    with pytest.raises(ValueError, match="no key to re-sign"):
        fence_commands([sign(_cmd("c3", site="b003"), key)], 7, {})


def test_builder_stamps_the_token_before_signing_so_publishing_signs_nothing_again() -> None:
    key = SigningKey(KEY, "k1")
    builder = CommandBuilder(period_s=900, margin_s=60, signing_keys={"b001": key})
    tokens = iter([5, None])
    builder.fence = lambda: next(tokens)
    stamped = builder.one(T0, "b001", "bat1", "p_setpoint_kw", 2.0, T0 + timedelta(minutes=20))
    assert stamped.fence == 5
    Keyring([key]).check(stamped)
    assert fence_commands([stamped], 5, {"b001": key})[0] is stamped
    lapsed = builder.one(T0, "b001", "bat1", "p_setpoint_kw", 2.0, T0 + timedelta(minutes=20))
    assert lapsed.fence is None  # no lease at build time: the publish step decides (none sent)
