"""The skew estimate (smallest recent lead), its events, and which refusals it explains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge_agent.clock_skew import SkewMonitor
from protocols.messages import Command

T0 = datetime(2030, 1, 15, 12, tzinfo=UTC)


def _cmd(valid_from: datetime, ttl_s: float = 600) -> Command:
    return Command.model_validate(
        {
            "site": "s1",
            "ts": valid_from,
            "cmd_id": "c1",
            "asset": "ev1",
            "kind": "p_limit_kw",
            "value": 5.0,
            "valid_from": valid_from,
            "valid_until": valid_from + timedelta(seconds=ttl_s),
        }
    )


def test_late_deliveries_do_not_fake_a_skew_the_smallest_lead_wins() -> None:
    m = SkewMonitor(tolerance_s=5.0)
    assert m.observe(T0, T0 + timedelta(seconds=0.05)) is None
    assert m.observe(T0, T0 + timedelta(seconds=300)) is None  # a command queued in the broker for 5 min
    assert m.lead_s == 0.05 and not m.exceeded


def test_skew_beyond_tolerance_is_announced_once_and_cleared_with_hysteresis() -> None:
    m = SkewMonitor(tolerance_s=5.0)
    m.leads_s.extend([900.0] * 15)
    assert m.observe(T0, T0 + timedelta(seconds=900)) == "exceeded"
    assert m.observe(T0, T0 + timedelta(seconds=900)) is None
    assert m.observe(T0, T0 + timedelta(seconds=4)) is None  # within tolerance, not yet half of it
    assert m.observe(T0, T0 + timedelta(seconds=1)) == "cleared"


def test_explain_names_skew_only_when_the_cloud_clock_would_accept() -> None:
    m = SkewMonitor(tolerance_s=5.0)
    m.observe(T0, T0 + timedelta(seconds=900))  # agent 15 min ahead
    local = T0 + timedelta(seconds=900)
    reason = m.explain(_cmd(T0), local)
    assert reason is not None and reason.startswith("clock_skew:") and "900.0 s ahead of" in reason
    assert m.explain(_cmd(T0 - timedelta(hours=1)), local) is None  # expired by cloud time too
    behind = SkewMonitor(tolerance_s=5.0)
    behind.observe(T0, T0 - timedelta(seconds=60))
    assert "60.0 s behind" in (behind.explain(_cmd(T0), T0 - timedelta(seconds=60)) or "")
    assert SkewMonitor(tolerance_s=5.0).explain(_cmd(T0), local) is None  # nothing measured yet
