"""Embedded store: one SQLite file (WAL) for samples, events, acks and each site's watermark.

The watermark (highest contiguous `seq` stored per site) is what the controller publishes
as retained `stored`, and what lets agents delete queued samples; it is therefore only
advanced inside the same transaction that made the samples durable, and rebuilt from
the file on restart. Samples are keyed by (site, seq): a resent sample is a no-op.
The newest good value of every point is kept in `latest` too, in the same transaction:
a dispatch worker that does not ingest reads the fleet's state from there.

Several ingest workers may share one file (MQTT `$share` splits a site's batches between
them): each write takes SQLite's write lock (`BEGIN IMMEDIATE`) and advances the
watermark from the value in the file, not from a per-process copy, so the workers
agree on it.

The series index covers the values (`samples_series_cover`: site, asset, point, ts,
quality, value), so `read_series` and `read_bucket_means` read the index alone; a file
made before it gets it built (and the narrower `samples_series` dropped) once when opened.

The ISP rollups (`sqlite_rollups.py`, `rollups.py`) are kept in every write's transaction
from the rows the insert really added; ISP-aligned `read_bucket_means` reads them.

This module owns the file, its lock and the writes; the reads are `sqlite_reads.py`, the
leases and period claims `sqlite_leases.py`, the result types `results.py`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cloud_controller.store import sqlite_leases, sqlite_reads, sqlite_rollups
from cloud_controller.store.batch import SiteSamples, fresh_good, newest_good
from cloud_controller.store.buckets import FloatArray
from cloud_controller.store.results import LeaseState, WriteResult
from cloud_controller.store.rollups import ISPS_PER_DAY, aligned_isps, means_from_days
from protocols.assets import PointKey
from protocols.messages import Ack, Event, Sample

__all__ = ["LeaseState", "SqliteStore", "WriteResult"]  # the result types re-exported (results.py)

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    site TEXT NOT NULL, seq INTEGER NOT NULL, asset TEXT NOT NULL, point TEXT NOT NULL,
    ts REAL NOT NULL, value REAL, unit TEXT NOT NULL, quality TEXT NOT NULL,
    PRIMARY KEY (site, seq)
) WITHOUT ROWID;
-- covering (quality, value in the index): a series or bucket read never visits the table
CREATE INDEX IF NOT EXISTS samples_series_cover ON samples (site, asset, point, ts, quality, value);
DROP INDEX IF EXISTS samples_series;
CREATE TABLE IF NOT EXISTS watermark (site TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS latest (
    site TEXT NOT NULL, asset TEXT NOT NULL, point TEXT NOT NULL, ts REAL NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (site, asset, point)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    site TEXT NOT NULL, ts REAL NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL, json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE TABLE IF NOT EXISTS acks (
    site TEXT NOT NULL, cmd_id TEXT NOT NULL, ts REAL NOT NULL, status TEXT NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (site, cmd_id)
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, token INTEGER NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS probes (name TEXT PRIMARY KEY, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dispatch_periods (name TEXT PRIMARY KEY, period_s REAL NOT NULL, token INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS grid_envelopes (pos INTEGER PRIMARY KEY, until REAL NOT NULL, json TEXT NOT NULL);
"""


class SqliteStore:
    """Thread-safe (one lock): the service calls it from a worker thread to keep the loop free."""

    #: Keep the ISP rollups on write (`sqlite_rollups.py`). Only a benchmark's subclass turns it
    #: off, on a file of its own, to measure what they cost: a file written so has stale rollups.
    KEEP_ROLLUPS = True

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=10000")  # other workers on the same file
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(SCHEMA)
        sqlite_rollups.migrate(self._db)
        self._watermark: dict[str, int] = dict(self._db.execute("SELECT site, seq FROM watermark").fetchall())

    # -- telemetry -------------------------------------------------------------------

    def _stored_watermark(self, site: str) -> int:
        row = self._db.execute("SELECT seq FROM watermark WHERE site = ?", (site,)).fetchone()
        return int(row[0]) if row is not None else -1

    def _advance(self, site: str) -> int:
        wm = max(self._watermark.get(site, -1), self._stored_watermark(site))
        rows = self._db.execute(
            "SELECT seq FROM samples WHERE site = ? AND seq > ? ORDER BY seq LIMIT 100000", (site, wm)
        ).fetchall()
        for (seq,) in rows:
            if seq != wm + 1:
                break
            wm = seq
        return wm

    def write_samples(self, site: str, samples: Sequence[Sample]) -> WriteResult:
        """Insert (idempotent), then advance and persist the watermark in the same transaction."""
        return self.write_batches([(site, samples)])[0]

    def write_batches(self, batches: Sequence[SiteSamples]) -> list[WriteResult]:
        """Several messages (of one or many sites) in ONE transaction: one write lock, one commit.

        One result per message, in order; a seq already stored, or sent twice in the batch,
        is a duplicate of the message that came later. Each site's watermark is advanced
        once, after all its rows are in, inside the same transaction.
        """
        rows = [
            [(site, s.seq, s.asset, s.point, s.ts.timestamp(), s.value, s.unit, s.quality) for s in samples]
            for site, samples in batches
        ]
        latest = [(site, a, p, ts.timestamp(), v) for (site, a, p), (ts, v) in newest_good(batches).items()]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                stored = sqlite_rollups.stored_seqs(self._db, batches) if self.KEEP_ROLLUPS else {}
                previous: dict[str, int] = {}
                inserted: list[int] = []
                for (site, _), message_rows in zip(batches, rows, strict=True):
                    if site not in previous:
                        previous[site] = max(self._watermark.get(site, -1), self._stored_watermark(site))
                    before = self._db.total_changes
                    self._db.executemany(
                        "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)", message_rows
                    )
                    inserted.append(self._db.total_changes - before)
                self._db.executemany(
                    "INSERT INTO latest VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, asset, point) DO UPDATE "
                    "SET ts = excluded.ts, value = excluded.value WHERE excluded.ts >= latest.ts",
                    latest,
                )
                if self.KEEP_ROLLUPS:
                    sqlite_rollups.update(self._db, fresh_good(batches, stored))
                after: dict[str, int] = {}
                for site in previous:
                    after[site] = wm = self._advance(site)
                    if wm != self._stored_watermark(site):
                        self._db.execute("INSERT OR REPLACE INTO watermark VALUES (?, ?)", (site, wm))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._watermark.update(after)
        return [
            WriteResult(n, len(r) - n, after[site], previous[site])
            for (site, _), r, n in zip(batches, rows, inserted, strict=True)
        ]

    def rebuild_rollups(self) -> int:
        """Rebuild the ISP rollups from the stored samples (what the migration does); rows written.

        For a file that a writer without rollups touched (a controller from before them
        sharing the file during an upgrade): one write transaction, the samples in index order.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = sqlite_rollups.backfill(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return rows

    def raise_floor(self, site: str, seq: int) -> int:
        """The agent dropped everything below `seq` (queue_floor): the watermark is at least seq − 1."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                wm = max(self._watermark.get(site, -1), self._stored_watermark(site), seq - 1)
                self._watermark[site] = wm
                wm = self._advance(site)
                self._db.execute("INSERT OR REPLACE INTO watermark VALUES (?, ?)", (site, wm))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._watermark[site] = wm
            return wm

    def highest_contiguous_seq(self, site: str) -> int:
        """From the file: another worker on it may have advanced it since our last write."""
        with self._lock:
            wm = max(self._watermark.get(site, -1), self._stored_watermark(site))
            self._watermark[site] = wm
            return wm

    def latest(self) -> dict[str, dict[str, tuple[datetime, float]]]:
        """Newest good value of every point: site -> "asset/point" -> (ts, value)."""
        return sqlite_reads.latest(self._query)

    def watermarks(self) -> dict[str, int]:
        """Each site's watermark: the highest contiguous `seq` stored (what its agent may delete up to)."""
        with self._lock:
            return dict(self._db.execute("SELECT site, seq FROM watermark").fetchall())

    def count_samples(self, site: str | None = None) -> int:
        """Number of stored samples, of one site or of all."""
        with self._lock:
            if site is None:
                return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
            return int(self._db.execute("SELECT COUNT(*) FROM samples WHERE site = ?", (site,)).fetchone()[0])

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """Good, non-null values of one point in [start, end), oldest first."""
        return sqlite_reads.read_series(self._query, site, asset, point, start, end)

    def read_bucket_means(
        self,
        sites: Sequence[str],
        point: PointKey,
        start: datetime,
        end: datetime,
        step_s: float,
        *,
        rollups: bool = True,
    ) -> FloatArray:
        """(sites x buckets) mean of the good, non-null values per bucket of `step_s` from `start`, NaN if none.

        With `start` and `end` on ISP boundaries and `step_s` a whole number of ISPs the
        ISP rollups answer (`rollups.py`: one row per site, point and day; for 900 s the
        same floats as the samples give); otherwise, or with `rollups=False`, the samples.
        """
        isps = aligned_isps(start, end, step_s) if rollups else None
        if isps is None:
            return sqlite_reads.raw_bucket_means(self._query, sites, point, start, end, step_s)
        d0, d1 = isps[0] // ISPS_PER_DAY, (isps[1] - 1) // ISPS_PER_DAY
        rows: list[tuple[int, int, bytes, bytes]] = []
        for i, site in enumerate(sites):
            with self._lock:
                got = sqlite_rollups.read_rows(self._db, site, point.asset, point.point, d0, d1)
            rows.extend((i, day, n, total) for day, n, total in got)
        return means_from_days(len(sites), rows, isps, start, end)

    def read_history(
        self,
        site: str,
        start: datetime,
        end: datetime,
        points: Sequence[PointKey] | None = None,
        *,
        max_rows: int = 200_000,
    ) -> dict[PointKey, list[tuple[datetime, float]]]:
        """Good, non-null values of several points of one site in [start, end), oldest first.

        `points=None` means every point the site reported in the window. `max_rows` bounds
        what one dashboard request can pull out of the file (the newest rows are dropped).
        """
        return sqlite_reads.read_history(self._query, site, start, end, points, max_rows)

    def _query(self, sql: str, args: Sequence[object]) -> list[Any]:
        """One statement under the lock (`sqlite_reads.py`): a long read lets writes in between its statements."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- events and acks -------------------------------------------------------------

    def write_event(self, event: Event) -> None:
        """Store an agent's event."""
        with self._lock:
            self._db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                (event.site, event.ts.timestamp(), event.kind, event.severity, event.model_dump_json()),
            )

    def write_ack(self, ack: Ack) -> None:
        """Store a command's ack (a repeated ack replaces the earlier one)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO acks VALUES (?, ?, ?, ?, ?)",
                (ack.site, ack.cmd_id, ack.ts.timestamp(), ack.status, ack.model_dump_json()),
            )

    def count_events(self, kind: str | None = None) -> int:
        """Number of stored events, of one kind or of all."""
        with self._lock:
            if kind is None:
                return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
            return int(self._db.execute("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0])

    def read_events(
        self,
        *,
        site: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[Event]:
        """The newest events first (at most `limit`), optionally of one site / kind / after `since`."""
        sql, args = "SELECT json FROM events WHERE 1 = 1", list[object]()
        if site is not None:
            sql, args = sql + " AND site = ?", [*args, site]
        if kind is not None:
            sql, args = sql + " AND kind = ?", [*args, kind]
        if since is not None:
            sql, args = sql + " AND ts >= ?", [*args, since.timestamp()]
        sql += " ORDER BY ts DESC, rowid DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, [*args, limit]).fetchall()
        return [Event.model_validate_json(js) for (js,) in rows]

    # -- leases and health --------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, now_s: float, ttl_s: float) -> LeaseState:
        """Take or renew lease `name` for `holder` until `now_s + ttl_s`, unless another holds it unexpired.

        One transaction under SQLite's write lock (`sqlite_leases.py`): a later holder always
        has a larger fencing token.
        """
        with self._lock:
            return sqlite_leases.acquire_lease(self._db, name, holder, now_s, ttl_s)

    def release_lease(self, name: str, holder: str) -> bool:
        """End `holder`'s lease now (the token is kept, so the next holder's is larger); False if not held."""
        with self._lock:
            return sqlite_leases.release_lease(self._db, name, holder)

    def read_lease(self, name: str) -> tuple[str, int, float] | None:
        """(holder, token, expires_at) of lease `name` as stored, or None if never taken."""
        with self._lock:
            return sqlite_leases.read_lease(self._db, name)

    def claim_period(self, name: str, holder: str, token: int, period_s: float, now_s: float) -> bool:
        """Claim the period starting at `period_s` for lease `name`'s holder (see `Store.claim_period`)."""
        with self._lock:
            return sqlite_leases.claim_period(self._db, name, holder, token, period_s, now_s)

    def probe_write(self, name: str, now_s: float) -> None:
        """A real write (under the write lock) the readiness check makes: raises if the file is not writable."""
        with self._lock:
            sqlite_leases.probe_write(self._db, name, now_s)

    # -- grid operating envelopes (cloud_controller/web/limits_api.py) ---------------

    def replace_envelopes(self, rows: Sequence[tuple[float, str]]) -> None:
        """Store the operator's envelopes (until as epoch s, the envelope as JSON), replacing the last set."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM grid_envelopes")
                self._db.executemany(
                    "INSERT INTO grid_envelopes VALUES (?, ?, ?)",
                    [(i, until, js) for i, (until, js) in enumerate(rows)],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def read_envelopes(self, now_s: float) -> list[str]:
        """The stored envelopes (JSON) not expired by `now_s`, in the order given; expired ones are deleted."""
        with self._lock:
            self._db.execute("DELETE FROM grid_envelopes WHERE until <= ?", (now_s,))
            rows = self._db.execute("SELECT json FROM grid_envelopes ORDER BY pos").fetchall()
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
