"""When the site falls back: command silence, broker loss, and commands whose validity ended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.fallback import FallbackPolicy, release_delay_s
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


def test_release_slots_are_fixed_per_site_and_spread_a_fleet_over_the_interval() -> None:
    slots = [release_delay_s(f"b{i:03d}", 600.0) for i in range(1, 201)]
    assert all(0.0 <= s < 600.0 for s in slots)
    assert release_delay_s("b001", 600.0) == slots[0]  # the same slot at every restart
    assert release_delay_s("b001", 0.0) == 0.0
    # 200 sites over 10 min: every minute gets some; none holds more than a third of them
    per_minute = [sum(1 for s in slots if m * 60 <= s < (m + 1) * 60) for m in range(10)]
    assert min(per_minute) > 0 and max(per_minute) < 200 / 3


def test_a_release_slot_postpones_the_fallback_and_the_end_of_a_command() -> None:
    policy = FallbackPolicy(300.0, last_valid_mono=0.0, release_delay_s=42.0)
    policy.on_broker(True, 0.0)
    assert policy.reason(341.9) is None
    assert policy.reason(342.0) == "no valid command for 300 s (+42 s: this site's release slot)"
    policy.on_valid(_cmd("ev1", 60), 0.0)
    assert policy.pop_expired(T0 + timedelta(seconds=101)) == []  # valid until 60 s, + 42 s
    assert [c.asset for c in policy.pop_expired(T0 + timedelta(seconds=102))] == ["ev1"]


def test_the_agent_takes_its_slot_from_the_site_config(tmp_path: Path) -> None:
    from edge_agent.agent import EdgeAgent
    from protocols.clock import SimClock
    from tests.integration.edge_agent.helpers import make_config

    def spread(data: dict[str, Any]) -> None:
        data["fallback"]["release_spread_s"] = 600.0

    cfg = make_config(tmp_path, broker_port=1, modbus_port=1, overrides=spread)
    agent = EdgeAgent(cfg, clock=SimClock(T0))
    assert agent.fallback.release_delay_s == release_delay_s(cfg.site, 600.0) > 0
    assert (
        EdgeAgent(
            make_config(tmp_path, broker_port=1, modbus_port=1), clock=SimClock(T0)
        ).fallback.release_delay_s
        == 0
    )
