"""When the site falls back: command silence, broker loss, and commands whose validity ended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge_agent.fallback import FallbackPolicy
from protocols.messages import Command

T0 = datetime(2030, 1, 15, tzinfo=UTC)


def _cmd(asset: str, ttl_s: float) -> Command:
    return Command.model_validate(
        {
            "site": "s",
            "ts": T0,
            "cmd_id": f"c-{asset}-{ttl_s}",
            "asset": asset,
            "kind": "p_limit_kw",
            "value": 5.0,
            "valid_from": T0,
            "valid_until": T0 + timedelta(seconds=ttl_s),
        }
    )


def test_silence_and_broker_loss_trigger_after_exactly_after_s() -> None:
    policy = FallbackPolicy(300.0, last_valid_mono=0.0)
    policy.on_broker(True, 0.0)
    assert policy.reason(299.9) is None
    assert policy.reason(300.0) == "no valid command for 300 s"
    policy.on_broker(False, 260.0)
    policy.on_valid(_cmd("ev1", 900), 400.0)
    policy.on_broker(False, 400.0)  # still down since 260
    assert policy.reason(559.9) is None
    assert policy.reason(560.0) == "no broker connection for 300 s"
    policy.on_broker(True, 560.0)
    assert policy.reason(549.0) is None


def test_validity_end_without_successor() -> None:
    policy = FallbackPolicy(300.0, last_valid_mono=0.0)
    policy.on_valid(_cmd("ev1", 60), 0.0)
    policy.on_valid(_cmd("hp1", 60), 0.0)
    policy.on_valid(_cmd("hp1", 120), 1.0)  # successor for hp1
    assert policy.pop_expired(T0 + timedelta(seconds=59)) == []
    assert [c.asset for c in policy.pop_expired(T0 + timedelta(seconds=60))] == ["ev1"]
    assert policy.pop_expired(T0 + timedelta(seconds=61)) == []
    assert [c.asset for c in policy.pop_expired(T0 + timedelta(seconds=120))] == ["hp1"]
