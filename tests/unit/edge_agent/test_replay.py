"""The persistent replay guard: ids survive a reopen, expire after valid_until, lookups are indexed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.replay import PersistentReplayGuard, replay_path
from protocols.messages import Command
from protocols.signing import ExpiredCommandError, ReplayedCommandError

NOW = datetime(2030, 1, 15, 12, tzinfo=UTC)


def _cmd(cmd_id: str, *, start: datetime = NOW, ttl_s: float = 600) -> Command:
    return Command.model_validate(
        {
            "site": "s1",
            "ts": start,
            "cmd_id": cmd_id,
            "asset": "ev1",
            "kind": "p_limit_kw",
            "value": 5.0,
            "valid_from": start,
            "valid_until": start + timedelta(seconds=ttl_s),
        }
    )


def test_replay_path_sits_beside_the_queue() -> None:
    assert replay_path(Path("/var/lib/g/queue.sqlite")) == Path("/var/lib/g/queue.replay.sqlite")


def test_seen_id_is_refused_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    guard = PersistentReplayGuard(path, now=NOW)
    guard.check(_cmd("c1"), NOW)
    guard.close()
    again = PersistentReplayGuard(path, now=NOW + timedelta(seconds=30))
    with pytest.raises(ReplayedCommandError):
        again.check(_cmd("c1"), NOW + timedelta(seconds=30))
    again.check(_cmd("c2"), NOW + timedelta(seconds=30))
    assert len(again) == 2
    again.close()


def test_ids_are_forgotten_after_valid_until_plus_skew(tmp_path: Path) -> None:
    guard = PersistentReplayGuard(tmp_path / "r.sqlite", now=NOW, max_clock_skew=timedelta(seconds=5))
    guard.check(_cmd("short", ttl_s=60), NOW)
    guard.check(_cmd("long", ttl_s=3600), NOW)
    assert guard.purge(NOW + timedelta(seconds=64)) == 0  # inside valid_until + skew
    assert guard.purge(NOW + timedelta(seconds=66)) == 1
    assert len(guard) == 1
    # a forgotten id is expired anyway: it can never be applied again
    with pytest.raises(ExpiredCommandError):
        guard.check(_cmd("short", ttl_s=60), NOW + timedelta(seconds=66))
    guard.close()


def test_check_purges_on_its_own_at_most_once_a_minute(tmp_path: Path) -> None:
    guard = PersistentReplayGuard(tmp_path / "r.sqlite", now=NOW)
    for i in range(100):
        guard.check(_cmd(f"c{i}", ttl_s=10), NOW)
    later = NOW + timedelta(seconds=61)
    guard.check(_cmd("fresh", start=later), later)
    assert len(guard) == 1
    guard.close()


def test_lookup_and_purge_use_indexes_not_scans(tmp_path: Path) -> None:
    guard = PersistentReplayGuard(tmp_path / "r.sqlite", now=NOW)
    db = guard._db
    lookup = " ".join(
        str(r[-1]) for r in db.execute("EXPLAIN QUERY PLAN SELECT 1 FROM seen_cmd WHERE cmd_id = ?", ("x",))
    )
    purge = " ".join(
        str(r[-1])
        for r in db.execute("EXPLAIN QUERY PLAN DELETE FROM seen_cmd WHERE valid_until < ?", (1.0,))
    )
    assert "PRIMARY KEY" in lookup and "SCAN" not in lookup
    assert "seen_cmd_valid_until" in purge and "SCAN" not in purge
    guard.close()


def test_corrupt_file_is_kept_and_older_commands_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    path.write_bytes(b"this is not a database at all" * 200)
    guard = PersistentReplayGuard(path, now=NOW)
    assert guard.moved_aside is not None and guard.moved_aside.read_bytes().startswith(b"this is not")
    assert guard.moved_aside.name.startswith("r.sqlite.corrupt-")
    with pytest.raises(ReplayedCommandError, match="replay memory was rebuilt"):
        guard.check(_cmd("old", start=NOW - timedelta(seconds=60)), NOW)
    guard.check(_cmd("new", start=NOW + timedelta(seconds=1)), NOW + timedelta(seconds=1))
    guard.close()
