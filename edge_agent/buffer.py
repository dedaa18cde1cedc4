"""Store-and-forward queue: every sample is committed to SQLite (WAL) before anything is sent.

Rows are appended with the site's next `seq` and only ever removed from the oldest
end (cloud watermark, PUBACK in edge-only installs, or the drop-oldest bound), so
the live seqs always form one contiguous range and the depth is `max - min + 1`.
`next_seq` is stored in the same transaction as the rows, so it survives restarts
even when the queue is empty.

Durability (fsync policy): WAL with `synchronous=NORMAL` (default) makes every
committed insert survive a crash or SIGKILL of the agent; a power cut may lose the
transactions since the last WAL checkpoint sync. `synchronous: full` fsyncs every
commit (about one poll cycle of samples per fsync) and survives power cuts too.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import TypeAdapter

from edge_agent.poller import PendingSample
from edge_agent.sqlite_files import is_corruption, move_aside
from protocols.messages import Sample

__all__ = ["Batch", "SampleBuffer", "open_buffer"]

_SAMPLE_JSON = TypeAdapter(Sample)


@dataclass(frozen=True, slots=True)
class Batch:
    """Stored samples, ready to publish: seq range and the JSON of each sample."""

    first_seq: int
    last_seq: int
    samples_json: list[bytes]


class SampleBuffer:
    """A bounded, ordered, durable queue of samples with per-site `seq`."""

    def __init__(self, path: Path, *, max_rows: int, max_age_s: float, synchronous: str = "NORMAL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            self._open(synchronous)
        except BaseException:
            self._db.close()
            raise
        self.dropped = 0

    def _open(self, synchronous: str) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS sample (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, body BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            INSERT OR IGNORE INTO meta VALUES ('next_seq', 0);
            """
        )
        self.next_seq = int(self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0])
        top = self._db.execute("SELECT MAX(seq) FROM sample").fetchone()[0]
        if top is not None and top >= self.next_seq:  # defensive: never reuse a seq
            self.next_seq = int(top) + 1
        low = self._db.execute("SELECT MIN(seq) FROM sample").fetchone()[0]
        self.min_seq = int(low) if low is not None else self.next_seq

    @property
    def depth(self) -> int:
        """How many samples the queue holds: the seq span from its oldest row to the next seq."""
        return self.next_seq - self.min_seq

    def append(self, samples: Sequence[PendingSample]) -> tuple[int, int]:
        """Store samples in one transaction; return (first_seq, dropped_now)."""
        first = self.next_seq
        rows = []
        for i, s in enumerate(samples):
            sample = Sample(
                seq=first + i,
                asset=s.asset,
                point=s.point,
                value=s.value,
                unit=s.unit,
                ts=s.ts,
                quality=s.quality,
                reason=s.reason,
            )
            rows.append((first + i, s.ts.timestamp(), _SAMPLE_JSON.dump_json(sample)))
        nxt = first + len(rows)
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT INTO sample VALUES (?, ?, ?)", rows)
            db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (nxt,))
            dropped = self._enforce_bounds(samples[-1].ts if samples else None, nxt)
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        self.next_seq = nxt
        self.dropped += dropped
        return first, dropped

    def _enforce_bounds(self, now: datetime | None, nxt: int) -> int:
        """Drop oldest rows beyond max_rows or older than max_age_s (inside the caller's transaction)."""
        floor = max(self.min_seq, nxt - self.max_rows)
        if now is not None:
            row = self._db.execute(
                "SELECT MIN(seq) FROM sample WHERE ts >= ?", (now.timestamp() - self.max_age_s,)
            ).fetchone()
            if row[0] is not None:
                floor = max(floor, int(row[0]))
        if floor <= self.min_seq:
            return 0
        self._db.execute("DELETE FROM sample WHERE seq < ?", (floor,))
        dropped = floor - self.min_seq
        self.min_seq = floor
        return dropped

    def read(self, after_seq: int, limit: int) -> Batch | None:
        """The next up to `limit` samples with seq > after_seq, in order."""
        rows = self._db.execute(
            "SELECT seq, body FROM sample WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        ).fetchall()
        if not rows:
            return None
        return Batch(int(rows[0][0]), int(rows[-1][0]), [bytes(r[1]) for r in rows])

    def release_upto(self, seq: int) -> int:
        """Delete every row with seq <= `seq` (the cloud stored them); return how many."""
        if seq < self.min_seq:
            return 0
        floor = min(seq + 1, self.next_seq)
        self._db.execute("DELETE FROM sample WHERE seq < ?", (floor,))
        freed = floor - self.min_seq
        self.min_seq = floor
        return freed

    def renumber_after(self, stored_seq: int) -> int:
        """Move every queued seq (and next_seq) above `stored_seq`; return the shift.

        For a cloud watermark at or beyond our next seq: the gateway lost its queue file
        (replaced SD card, new install under the same site id). Without the shift the
        cloud would drop every new sample as a duplicate of one it already has.
        """
        shift = stored_seq + 1 - self.min_seq
        if stored_seq < self.next_seq or shift <= 0:
            return 0
        db = self._db
        db.execute("BEGIN")
        try:
            rows = db.execute("SELECT seq, ts, body FROM sample ORDER BY seq").fetchall()
            db.execute("DELETE FROM sample")
            db.executemany(
                "INSERT INTO sample VALUES (?, ?, ?)",
                [(seq + shift, ts, _with_seq(bytes(body), seq + shift)) for seq, ts, body in rows],
            )
            db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (self.next_seq + shift,))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        self.min_seq += shift
        self.next_seq += shift
        return shift

    def close(self) -> None:
        """Close the SQLite connection."""
        self._db.close()


def _rollback(db: sqlite3.Connection) -> None:
    """Undo an open transaction without hiding the error that caused it.

    SQLite rolls a transaction back by itself on some errors (SQLITE_FULL among them);
    a second ROLLBACK then fails with "cannot rollback - no transaction is active", and
    that message used to replace the real cause.
    """
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def open_buffer(
    path: Path, *, max_rows: int, max_age_s: float, synchronous: str, now: datetime
) -> tuple[SampleBuffer, Path | None]:
    """Open the queue; a corrupt file is moved aside (kept) and a new queue opened in its place.

    Returns the queue and, if the file was corrupt, where it was moved. Any other error
    (permissions, a full disk at creation) is raised: nothing sensible can replace it.
    """
    try:
        return SampleBuffer(path, max_rows=max_rows, max_age_s=max_age_s, synchronous=synchronous), None
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc):
            raise
    moved = move_aside(path, now)
    return SampleBuffer(path, max_rows=max_rows, max_age_s=max_age_s, synchronous=synchronous), moved


def _with_seq(body: bytes, seq: int) -> bytes:
    """Stored sample JSON starts with its seq (`{"seq":N,`, the model's first field)."""
    return b'{"seq":%d,' % seq + body[body.index(b",") + 1 :]


def batch_payload(site: str, ts: datetime, msg_id: str, batch: Batch) -> bytes:
    """A `TelemetryBatch` JSON built from stored sample JSON without re-validating each sample.

    Field order and encoding match `TelemetryBatch.model_dump_json()`; a unit test holds
    the two to the same bytes, so the cloud's strict decoder accepts it.
    """
    ts_json = ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
    head = f'{{"v":1,"site":"{site}","ts":"{ts_json}","msg_id":"{msg_id}","samples":['.encode()
    return head + b",".join(batch.samples_json) + b"]}"
