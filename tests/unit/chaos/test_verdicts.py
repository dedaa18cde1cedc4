"""Pure parts of the kill and isolation scenarios: time to fallback vs its bound, what crossed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridflex.chaos.controller_kill import POLL_S, fallback_times
from gridflex.chaos.isolation import tally

KILL = datetime(2030, 1, 15, 12, tzinfo=UTC)


def test_fallback_time_is_measured_from_the_kill_and_bounded_by_the_last_ttl_plus_a_poll() -> None:
    until = {"b001": KILL + timedelta(seconds=40), "b002": KILL + timedelta(seconds=50), "b003": KILL}
    events = [
        ("b001", "command_expired", KILL + timedelta(seconds=40.5)),
        ("b001", "command_expired", KILL - timedelta(seconds=5)),  # before the kill: not this one
        ("b002", "queue_dropped", KILL + timedelta(seconds=51)),  # not a fallback
        ("b003", "fallback_entered", KILL + timedelta(seconds=2)),
    ]
    got = fallback_times(KILL, until, events)
    assert got["b001"] == (40.5, 40 + POLL_S)
    assert got["b002"] == (float("inf"), 50 + POLL_S)  # never fell back: over any bound
    assert got["b003"][0] > got["b003"][1]  # late


def test_tally_counts_foreign_reads_and_spoofed_writes_as_crossed() -> None:
    sites = ["b001", "b002"]
    received = {
        "cloud": [
            ("gridflex/v1/site/b001/telemetry", b"from:b001:0"),  # own: fine
            ("gridflex/v1/site/b002/telemetry", b"from:b001:0"),  # b001 wrote as b002: crossed
        ],
        "b001": [
            ("gridflex/v1/site/b001/cmd", b"cloud:b001:0"),
            ("gridflex/v1/site/b002/cmd", b"cloud:b002:0"),
        ],
        "b002": [],
    }
    assert tally(received, sites) == (2, 1, 1)
