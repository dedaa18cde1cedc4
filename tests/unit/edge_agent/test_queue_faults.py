"""Queue faults: a corrupt file is kept and replaced, a full disk is reported and counted, never raised."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent.buffer import SampleBuffer, open_buffer
from edge_agent.config import SiteConfig
from edge_agent.health import AgentStats
from edge_agent.poller import PendingSample
from edge_agent.telemetry import TelemetryPipe
from protocols.clock import SimClock

T0 = datetime(2030, 1, 15, tzinfo=UTC)


def _samples(n: int) -> list[PendingSample]:
    return [
        PendingSample("pv1", "p_kw", float(i), "kW", T0 + timedelta(milliseconds=i), "good", None)
        for i in range(n)
    ]


def _fill_limit(buf: SampleBuffer) -> None:
    """Make the queue "full": SQLite refuses to grow the file beyond its current pages."""
    pages = buf._db.execute("PRAGMA page_count").fetchone()[0]
    buf._db.execute(f"PRAGMA max_page_count={pages}")


def test_corrupt_queue_file_is_moved_aside_and_a_new_queue_opened(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    path.write_bytes(b"\x00garbage, not SQLite\x00" * 500)
    buf, moved = open_buffer(path, max_rows=100, max_age_s=60, synchronous="normal", now=T0)
    assert moved is not None and moved.name == "queue.sqlite.corrupt-20300115T000000000000Z"
    assert moved.read_bytes().startswith(b"\x00garbage")  # kept for forensics
    assert buf.append(_samples(3)) == (0, 0)
    buf.close()


def test_a_full_queue_raises_sqlite_full_not_cannot_rollback(tmp_path: Path) -> None:
    buf = SampleBuffer(tmp_path / "q.sqlite", max_rows=1_000_000, max_age_s=3600)
    _fill_limit(buf)
    with pytest.raises(sqlite3.OperationalError) as info:
        for _ in range(100):
            buf.append(_samples(50))
    assert info.value.sqlite_errorname == "SQLITE_FULL" and "full" in str(info.value)
    buf.close()


def test_pipe_counts_reports_and_recovers_from_a_full_queue(tmp_path: Path) -> None:
    cfg = SiteConfig.model_validate({"site": "s1", "buffer": {"path": str(tmp_path / "q.sqlite")}})
    events: list[tuple[str, dict[str, Any]]] = []
    stats = AgentStats()
    pipe = TelemetryPipe(
        cfg,
        SimClock(T0),
        stats,
        lambda kind, sev, msg, asset, details=None: events.append((kind, details or {})),
    )
    _fill_limit(pipe.buffer)
    stored_before = pipe.buffer.next_seq
    for _ in range(100):
        pipe.store(_samples(50))  # never raises
    assert stats.write_dropped > 0 and stats.degraded is not None and "SQLITE_FULL" in stats.degraded
    failed = [d for k, d in events if k == "queue_write_failed"]
    assert len(failed) == 1  # at most one event per 5 s
    assert failed[0]["error"] == "SQLITE_FULL" and failed[0]["dropped"] > 0
    accepted = pipe.buffer.next_seq - stored_before
    assert accepted + stats.write_dropped == 100 * 50  # every sample is stored or counted
    pipe.buffer._db.execute("PRAGMA max_page_count=1073741823")
    pipe.store(_samples(5))
    assert stats.degraded is None and events[-1][0] == "queue_write_recovered"
    assert events[-1][1]["dropped_total"] == stats.write_dropped
    pipe.close()
