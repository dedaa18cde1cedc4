"""Signed commands verify; tampering, wrong keys, replays and expired windows are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from protocols.messages import Command
from protocols.signing import (
    CommandNotYetValidError,
    ExpiredCommandError,
    ReplayedCommandError,
    ReplayGuard,
    sign,
    verify,
)

T0 = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
KEY_A = b"site-a-key-0123456789"
KEY_B = b"site-b-key-9876543210"


def _cmd(cmd_id: str = "c1", value: float = 3.0) -> Command:
    return Command(
        site="a",
        ts=T0,
        cmd_id=cmd_id,
        asset="bat1",
        kind="p_setpoint_kw",
        value=value,
        valid_from=T0,
        valid_until=T0 + timedelta(minutes=15),
    )


def test_signed_command_verifies() -> None:
    assert verify(sign(_cmd(), KEY_A), KEY_A)


def test_unsigned_command_does_not_verify() -> None:
    assert not verify(_cmd(), KEY_A)


@pytest.mark.parametrize(
    "update",
    [
        {"value": 4.0},
        {"asset": "bat2"},
        {"site": "b"},
        {"valid_until": T0 + timedelta(hours=5)},
        {"kind": "p_limit_kw"},
    ],
    ids=["value", "asset", "site", "valid_until", "kind"],
)
def test_tampered_field_breaks_signature(update: dict[str, object]) -> None:
    signed = sign(_cmd(), KEY_A)
    assert not verify(signed.model_copy(update=update), KEY_A)


def test_wrong_key_is_refused() -> None:
    assert not verify(sign(_cmd(), KEY_A), KEY_B)


def test_empty_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        sign(_cmd(), b"")


def test_replayed_cmd_id_is_refused() -> None:
    guard = ReplayGuard()
    guard.check(_cmd("c1"), T0 + timedelta(minutes=1))
    with pytest.raises(ReplayedCommandError):
        guard.check(_cmd("c1"), T0 + timedelta(minutes=2))
    guard.check(_cmd("c2"), T0 + timedelta(minutes=2))


def test_expired_and_future_windows_are_refused() -> None:
    guard = ReplayGuard(max_clock_skew=timedelta(seconds=5))
    with pytest.raises(ExpiredCommandError):
        guard.check(_cmd("late"), T0 + timedelta(minutes=15))
    with pytest.raises(CommandNotYetValidError):
        guard.check(_cmd("early"), T0 - timedelta(seconds=6))
    guard.check(_cmd("skewed"), T0 - timedelta(seconds=4))  # inside the allowed skew


def test_guard_forgets_ids_after_their_window() -> None:
    guard = ReplayGuard(max_clock_skew=timedelta(seconds=0))
    for i in range(100):
        guard.check(_cmd(f"c{i}"), T0)
    assert len(guard) == 100
    guard.check(
        _cmd("later").model_copy(update={"valid_until": T0 + timedelta(hours=1)}), T0 + timedelta(minutes=16)
    )
    assert len(guard) == 1
