"""The dispatch lease in the store: one holder per file, a growing fencing token, expiry and release.

Two `SqliteStore`s on one file stand for two controller processes (two connections, the
file's write lock between them); time is a manually stepped SimClock.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud_controller.commands import CommandTracker
from cloud_controller.lease import DispatchLease, LeaseLostError
from cloud_controller.store import SqliteStore
from protocols.clock import SimClock
from protocols.messages import Ack, Command

T0 = datetime(2030, 1, 15, tzinfo=UTC).timestamp()


def test_second_holder_waits_until_expiry_and_gets_a_larger_token(tmp_path: Path) -> None:
    a, b = SqliteStore(tmp_path / "s.sqlite"), SqliteStore(tmp_path / "s.sqlite")
    first = a.acquire_lease("dispatch", "A", T0, 30)
    assert first.held and first.token == 1
    refused = b.acquire_lease("dispatch", "B", T0 + 10, 30)
    assert not refused.held and refused.holder == "A" and refused.expires_at == T0 + 30
    renewed = a.acquire_lease("dispatch", "A", T0 + 20, 30)
    assert renewed.held and renewed.token == 1 and renewed.expires_at == T0 + 50  # a renewal keeps the token
    assert not b.acquire_lease("dispatch", "B", T0 + 49, 30).held
    late = a.acquire_lease("dispatch", "A", T0 + 55, 30)  # late, but nobody took it: same token
    assert late.held and late.token == 1 and late.expires_at == T0 + 85
    taken = b.acquire_lease("dispatch", "B", T0 + 85, 30)  # A stopped renewing: expired
    assert taken.held and taken.token == 2
    assert not a.acquire_lease("dispatch", "A", T0 + 86, 30).held  # the old holder is fenced off


def test_release_hands_over_at_once_and_the_token_still_grows(tmp_path: Path) -> None:
    a, b = SqliteStore(tmp_path / "s.sqlite"), SqliteStore(tmp_path / "s.sqlite")
    assert a.acquire_lease("dispatch", "A", T0, 30).token == 1
    assert a.release_lease("dispatch", "A") and not a.release_lease("dispatch", "A")
    taken = b.acquire_lease("dispatch", "B", T0 + 1, 30)
    assert taken.held and taken.token == 2
    assert b.read_lease("dispatch") == ("B", 2, T0 + 31)


async def test_standby_waits_logs_and_takes_over_after_expiry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the logger's own level: an earlier in-process CLI test may have raised the root's
    caplog.set_level(logging.INFO, logger="cloud_controller.lease")
    clock = SimClock(datetime(2030, 1, 15, tzinfo=UTC), speed=200.0)  # 10 s of lease time = 50 host ms
    holder = DispatchLease(SqliteStore(tmp_path / "s.sqlite"), holder="A", clock=clock, ttl_s=30, renew_s=10)
    standby = DispatchLease(SqliteStore(tmp_path / "s.sqlite"), holder="B", clock=clock, ttl_s=30, renew_s=10)
    await holder.acquire()
    assert holder.token == 1 and holder.status.expires_at is not None
    expires = holder.status.expires_at
    waiting = asyncio.create_task(standby.acquire())
    async with asyncio.timeout(10):
        while standby.status.state != "standby":
            await asyncio.sleep(0.005)
    assert standby.status.holder == "A"
    assert standby.status.describe() == f"standby: lease held by A until {expires.isoformat()}"
    assert "standby: lease held by A" in caplog.text
    await asyncio.wait_for(waiting, 10)  # A never renews
    assert clock.now() >= expires and standby.token == 2
    with pytest.raises(LeaseLostError, match="lost to B"):
        await asyncio.wait_for(holder.keep(), 10)


def _cmd(cmd_id: str) -> Command:
    t = datetime(2030, 1, 15, tzinfo=UTC)
    return Command(
        site="b1",
        ts=t,
        cmd_id=cmd_id,
        asset="bat1",
        kind="p_setpoint_kw",
        value=1.0,
        valid_from=t,
        valid_until=t.replace(hour=1),
    )


def test_tracker_rolls_back_an_unpublished_command_but_keeps_one_already_acked() -> None:
    tracker = CommandTracker()
    tracker.on_sent(_cmd("c1"))
    assert tracker.on_publish_failed(_cmd("c1"))
    assert "c1" not in tracker.sent and tracker.counts == {"sent": 0, "publish_failed": 1}
    tracker.on_sent(_cmd("c2"))
    ack = Ack(site="b1", ts=datetime(2030, 1, 15, tzinfo=UTC), cmd_id="c2", asset="bat1", status="applied")
    assert tracker.on_ack(ack)  # answered before the publisher saw its PUBACK fail
    assert not tracker.on_publish_failed(_cmd("c2"))
    assert tracker.sent["c2"].status == "applied" and tracker.counts["applied"] == 1
