"""The fencing check: a token below the highest seen is refused, equal or higher accepted, remembered across restarts."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from edge_agent.commands import CommandExecutor
from edge_agent.config import PointConfig, SiteConfig, load_config
from edge_agent.decision import decide
from edge_agent.drivers.base import PointRef, Reading
from edge_agent.fence import FenceGuard, StaleFenceError, check_fence
from edge_agent.replay import PersistentReplayGuard
from protocols.messages import Ack, Command
from protocols.signing import Keyring, ReplayGuard, SigningKey, canonical_bytes, sign, verify

EXAMPLE = Path(__file__).parents[3] / "examples" / "site.yaml"
NOW = datetime(2030, 1, 15, 12, tzinfo=UTC)
KEY = b"f" * 32


@pytest.fixture(scope="module")
def cfg() -> SiteConfig:
    return load_config(EXAMPLE)


def _strict(cfg: SiteConfig) -> SiteConfig:
    return cfg.model_copy(update={"commands": cfg.commands.model_copy(update={"require_fence": True})})


def _cmd(cmd_id: str, fence: int | None, *, value: float = 5.0) -> Command:
    return Command.model_validate(
        {
            "site": "b001",
            "ts": NOW,
            "cmd_id": cmd_id,
            "asset": "hp1",
            "kind": "p_limit_kw",
            "value": value,
            "valid_from": NOW,
            "valid_until": NOW + timedelta(minutes=20),
            "fence": fence,
        }
    )


def _decide(
    cfg: SiteConfig, cmd: Command, fence: FenceGuard | PersistentReplayGuard, key: bytes | None = None
) -> tuple[str, str | None]:
    guard = fence if isinstance(fence, PersistentReplayGuard) else ReplayGuard()
    memory = fence.fence if isinstance(fence, PersistentReplayGuard) else fence
    d = decide(cmd, config=cfg, key=key, guard=guard, now=NOW, ramp=None, now_mono=0.0, fence=memory)
    return d.status, d.reason


def test_lower_token_is_refused_equal_and_higher_accepted(cfg: SiteConfig) -> None:
    fence = FenceGuard()
    steps = [  # (token, expected status, expected reason, highest after)
        (3, "applied", None, 3),  # the first token seen sets the floor
        (3, "applied", None, 3),  # the same dispatcher's next command
        (4, "applied", None, 4),  # a new dispatcher took the lease
        (3, "rejected", "stale fencing token 3 < 4", 4),  # the old one came back
        (0, "rejected", "stale fencing token 0 < 4", 4),
        (None, "applied", None, 4),  # un-fenced, allowed by default (commands.require_fence: false)
        (2**63 - 1, "applied", None, 2**63 - 1),
    ]
    for i, (token, status, reason, highest) in enumerate(steps):
        assert _decide(cfg, _cmd(f"c{i}", token), fence) == (status, reason), token
        assert fence.highest == highest


def test_require_fence_refuses_a_command_without_a_token(cfg: SiteConfig) -> None:
    strict = _strict(cfg)
    status, reason = _decide(strict, _cmd("c1", None), FenceGuard())
    assert status == "rejected"
    assert (
        reason == "command without a fencing token refused: this site requires one (commands.require_fence)"
    )
    assert _decide(strict, _cmd("c2", 0), FenceGuard()) == ("applied", None)
    # without any fence memory (the twin) the rule for a missing token still holds
    d = decide(
        _cmd("c3", None), config=strict, key=None, guard=ReplayGuard(), now=NOW, ramp=None, now_mono=0.0
    )
    assert d.status == "rejected" and d.fenced


def test_highest_token_survives_a_restart_of_the_guard(cfg: SiteConfig, tmp_path: Path) -> None:
    path = tmp_path / "q.replay.sqlite"
    guard = PersistentReplayGuard(path, now=NOW)
    assert guard.fence.highest is None
    assert _decide(cfg, _cmd("b1", 4), guard) == ("applied", None)
    guard.close()
    guard = PersistentReplayGuard(path, now=NOW)  # the agent restarted
    assert guard.fence.highest == 4
    assert _decide(cfg, _cmd("a1", 3), guard) == ("rejected", "stale fencing token 3 < 4")
    assert len(guard) == 1  # the stale command burnt no cmd_id: only b1 is remembered
    assert _decide(cfg, _cmd("b2", 5), guard) == ("applied", None)
    guard.close()
    guard = PersistentReplayGuard(path, now=NOW)
    assert guard.fence.highest == 5
    guard.close()


def test_stale_reason_wins_over_a_replay(cfg: SiteConfig, tmp_path: Path) -> None:
    guard = PersistentReplayGuard(tmp_path / "r.sqlite", now=NOW)
    assert _decide(cfg, _cmd("a1", 3), guard) == ("applied", None)
    assert _decide(cfg, _cmd("b1", 4), guard) == ("applied", None)
    assert _decide(cfg, _cmd("a1", 3), guard) == ("rejected", "stale fencing token 3 < 4")
    guard.close()


def test_forged_command_cannot_raise_the_token(cfg: SiteConfig) -> None:
    fence = FenceGuard(3)
    forged = _cmd("x1", 99).model_copy(update={"sig": "0" * 64})
    status, reason = _decide(cfg, forged, fence, key=KEY)
    assert status == "rejected" and reason is not None and "invalid signature" in reason
    assert fence.highest == 3
    tampered = sign(_cmd("x2", 3), KEY).model_copy(update={"fence": 99})  # raised in transit
    assert not verify(tampered, KEY)
    assert _decide(cfg, tampered, fence, key=KEY)[0] == "rejected" and fence.highest == 3
    assert _decide(cfg, sign(_cmd("x3", 7), KEY), fence, key=KEY) == ("applied", None)
    assert fence.highest == 7


def test_a_command_without_fence_signs_as_before_the_field_existed() -> None:
    cmd = sign(_cmd("c1", None), SigningKey(KEY, "k1"))
    old_body = json.loads(cmd.model_dump_json(exclude={"sig", "fence"}))  # what an old controller signed
    old_mac = hmac.new(
        KEY, json.dumps(old_body, sort_keys=True, separators=(",", ":")).encode(), hashlib.sha256
    )
    assert cmd.sig == old_mac.hexdigest()
    assert b"fence" not in canonical_bytes(cmd)
    assert b'"fence":5' in canonical_bytes(_cmd("c2", 5))
    Keyring([SigningKey(KEY, "k1")]).check(cmd)


@pytest.mark.parametrize(
    ("fence", "match"),
    [
        (-1, "greater than or equal to 0"),
        (2**63, "less than or equal to"),
        (True, "valid integer"),
        ("4", "valid integer"),
    ],
    ids=["negative", "above_int64", "bool", "string"],
)
def test_contract_bounds_the_token(fence: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Command.model_validate(_cmd("c1", None).model_dump() | {"fence": fence})


def test_check_fence_is_pure() -> None:
    assert check_fence(_cmd("c1", 2), None, require=False) == 2
    assert check_fence(_cmd("c1", 6), 5, require=False) == 6
    with pytest.raises(StaleFenceError, match="stale fencing token 2 < 5"):
        check_fence(_cmd("c1", 2), 5, require=False)
    assert check_fence(_cmd("c1", None), 5, require=False) == 5


class _Driver:
    """A small fake device: records writes, answers reads with the last written value."""

    def __init__(self) -> None:
        self.writes: list[float] = []

    async def read(self, points: Sequence[PointRef]) -> dict[str, Reading]:
        return {r.key: Reading(self.writes[-1] if self.writes else 0.0) for r in points}

    async def write(self, point: PointConfig, value: float, *, priority: int | None = None) -> None:
        self.writes.append(value)

    async def relinquish(self, point: PointConfig) -> None:
        self.writes.append(float("nan"))

    async def close(self) -> None:
        return None


class _Clock:
    def now(self) -> datetime:
        return NOW

    def monotonic(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


def test_executor_acks_stale_commands_rejected_writes_nothing_counts_and_tells_once(cfg: SiteConfig) -> None:
    driver, events = _Driver(), list[tuple[str, str, str]]()
    signed = cfg.model_copy(update={"signing": cfg.signing.model_copy(update={"key": SecretStr(KEY.hex())})})

    async def publish(ack: Ack) -> None:
        return None

    executor = CommandExecutor(
        config=signed,
        clock=_Clock(),
        drivers={"inverter": driver, "bms": driver},
        latest={},
        publish_ack=publish,
        events=lambda kind, severity, message, asset: events.append((kind, severity, message)),
    )

    async def run() -> list[Ack]:
        sent = [("b1", 4, 6.0), ("a1", 3, 7.0), ("a2", 3, 8.0), ("b2", 4, 5.0)]
        return [await executor.execute(sign(_cmd(i, token, value=v), KEY)) for i, token, v in sent]

    acks = asyncio.run(run())
    assert driver.writes == [6.0, 5.0]  # B's two commands; A's never reach the device
    assert [(a.cmd_id, a.status, a.reason) for a in acks] == [
        ("b1", "applied", None),
        ("a1", "rejected", "stale fencing token 3 < 4"),
        ("a2", "rejected", "stale fencing token 3 < 4"),
        ("b2", "applied", None),
    ]
    assert executor.counts == {"applied": 2, "rejected": 2, "fence_refused": 2}
    assert events == [  # one event for the stale token, not one per command
        (
            "command_fence_refused",
            "warning",
            "command a1 refused: stale fencing token 3 < 4 (a dispatcher that lost its lease is still sending)",
        )
    ]
