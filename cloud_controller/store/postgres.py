"""Shared store: PostgreSQL, for several controller processes on several machines writing at once.

Same methods and meaning as `SqliteStore` (`cloud_controller.store.base.Store`); what
changes is how concurrent writers agree:

- **Duplicates.** The key (site, seq) lives in `sample_keys`; a batch inserts its keys
  `ON CONFLICT DO NOTHING RETURNING seq` and only the returned rows go into `samples`,
  so a resend, or the same seq from two workers at once, is stored once and counted as a
  duplicate by the one that lost (a conflicting insert waits for the other's commit).
  `samples` itself has no unique key, which lets it be a TimescaleDB hypertable on `ts`.
- **Watermark.** Every write to a site first takes `pg_advisory_xact_lock(GF, hashtext(site))`:
  writers of one site take turns, writers of different sites do not wait for each other,
  and the lock ends with the transaction (a crashed worker leaves nothing held). The
  connection runs READ COMMITTED, so each statement after the lock sees every sample the
  previous holder committed (its commit is visible before its locks are released); the
  highest contiguous seq is computed from what is in the table, not from a per-process
  copy. Two workers with interleaved seqs therefore end at the right watermark. (The
  `latest` upsert's row lock happens to serialize batches of the same points too, but
  batches split by the broker need not share points; without this lock a probe left 37 of
  100 concurrent rounds at a stale watermark.)
- **Batches.** `write_batches` (ingest's write-behind queue) stores many messages of many
  sites in one transaction with the same rules: every site's lock, taken in hash order
  so two workers never deadlock, then one statement each for the keys and rows, `latest`,
  and the watermarks (`postgres_batch.py`); `write_samples` is a batch of one.
- **Lease.** One statement, `INSERT … ON CONFLICT (name) DO UPDATE … WHERE holder = me OR
  expires_at <= now RETURNING token`: Postgres locks the row and evaluates the WHERE on
  its newest version, so of two contenders exactly one wins, and the token is bumped in
  the same statement whenever the holder changes (never on a renewal). A row (not an
  advisory lock) because the lease must outlive the session that took it and be
  readable by others (`read_lease`, `/readyz`). `now_s` is the caller's clock, as with
  SQLite: the TTL must exceed the clock skew between machines.
- **Schema.** Versioned migrations under an advisory lock (`schema_version`); migration 1
  creates the tables, and turns `samples` into a hypertable where TimescaleDB can be
  created in the database (a plain table otherwise). `postgres_schema.migrate` is shared
  with the record stores (`records_pg.py`; their tables are migration 4).

This module owns the connection, its transactions and the writes; the reads are
`postgres_reads.py`, the leases and period claims `postgres_leases.py`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from cloud_controller.store import postgres_leases, postgres_reads, postgres_rollups
from cloud_controller.store.base import StoreError
from cloud_controller.store.batch import SiteSamples
from cloud_controller.store.buckets import FloatArray
from cloud_controller.store.postgres_batch import LOCK_SITES, write_batches
from cloud_controller.store.postgres_reads import utc as _ts
from cloud_controller.store.postgres_schema import LOCK_CLASS, SCHEMA_VERSION, Cursor, migrate
from cloud_controller.store.results import LeaseState, WriteResult
from cloud_controller.store.rollups import ISPS_PER_DAY, aligned_isps, means_from_days
from protocols.assets import PointKey
from protocols.messages import Ack, Event, Sample

__all__ = ["SCHEMA_VERSION", "PostgresStore", "public_dsn"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10


def public_dsn(dsn: str) -> str:
    """The DSN without any password in it: what messages and /readyz may show."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"store.dsn is not a PostgreSQL connection string: {exc}") from None
    parts.pop("password", None)
    return make_conninfo("", **parts)


class PostgresStore:
    """One connection, thread-safe (one lock): the service calls it from worker threads like SqliteStore."""

    #: Keep the ISP rollups on write (`postgres_rollups.py`). Only a benchmark's subclass turns it
    #: off, on a schema of its own, to measure what they cost: a schema written so has stale rollups.
    KEEP_ROLLUPS = True

    def __init__(self, dsn: str, *, password: str | None = None) -> None:
        self.path = public_dsn(dsn)
        self._dsn = dsn
        self._password = password
        self._lock = threading.Lock()
        self._db: psycopg.Connection[TupleRow] | None = None
        self._closed = False
        self.schema_note = ""
        self._migrate()

    # -- connection, transactions, migrations -----------------------------------------

    def _connect(self) -> psycopg.Connection[TupleRow]:
        extra: dict[str, Any] = {"password": self._password} if self._password is not None else {}
        db = psycopg.connect(self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, **extra)
        # READ COMMITTED is what makes the per-site lock correct (see the module docstring)
        db.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        db.execute("SET TIME ZONE 'UTC'")
        return db

    @contextmanager
    def _tx(self) -> Iterator[Cursor]:
        """One transaction on the (re)connected connection; database failures become StoreError."""
        with self._lock:
            if self._closed:
                raise StoreError(f"PostgreSQL store {self.path} is closed")
            try:
                if self._db is None or self._db.closed or self._db.broken:
                    self._db = self._connect()
                with self._db.transaction(), self._db.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL store {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        """Apply the migrations this database lacks, one process at a time (advisory lock)."""
        with self._tx() as cur:
            self.schema_note = migrate(cur, self.path)

    @staticmethod
    def _lock_site(cur: Cursor, site: str) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, site))

    @staticmethod
    def _stored_watermark(cur: Cursor, site: str) -> int:
        cur.execute("SELECT seq FROM watermark WHERE site = %s", (site,))
        row = cur.fetchone()
        return int(row[0]) if row is not None else -1

    @staticmethod
    def _advance(cur: Cursor, site: str, wm: int) -> int:
        cur.execute(
            "SELECT seq FROM sample_keys WHERE site = %s AND seq > %s ORDER BY seq LIMIT 100000", (site, wm)
        )
        for (seq,) in cur.fetchall():
            if seq != wm + 1:
                break
            wm = int(seq)
        return wm

    @staticmethod
    def _put_watermark(cur: Cursor, site: str, wm: int) -> None:
        cur.execute(
            "INSERT INTO watermark (site, seq) VALUES (%s, %s) ON CONFLICT (site) DO UPDATE SET seq = excluded.seq",
            (site, wm),
        )

    # -- telemetry -------------------------------------------------------------------

    def write_samples(self, site: str, samples: Sequence[Sample]) -> WriteResult:
        """Insert (a seq already stored is a duplicate), then advance the watermark, in one transaction."""
        return self.write_batches([(site, samples)])[0]

    def write_batches(self, batches: Sequence[SiteSamples]) -> list[WriteResult]:
        """Several messages (of one or many sites) in ONE transaction, in a fixed number of statements.

        The sites' locks are taken in one statement in hash order (two workers with
        overlapping sites cannot deadlock); one insert, one `latest` upsert, one watermark
        read and one advance serve every site. A seq sent twice in the batch counts for
        the first message that holds it (a duplicate of the later).
        """
        with self._tx() as cur:
            return write_batches(cur, batches, keep_rollups=self.KEEP_ROLLUPS)

    def rebuild_rollups(self) -> int:
        """Rebuild the ISP rollups from the stored samples (what migration 6 does); rows written.

        Takes the lock of every site with samples first (in hash order, as writers do), so
        none of their writes interleaves; for a schema a writer without rollups touched.
        """
        with self._tx() as cur:
            cur.execute("SELECT DISTINCT site FROM sample_keys")
            sites = sorted(str(r[0]) for r in cur.fetchall())
            cur.execute(LOCK_SITES, {"cls": LOCK_CLASS, "sites": sites})
            cur.execute("DELETE FROM isp_rollups")
            return postgres_rollups.backfill(cur)

    def raise_floor(self, site: str, seq: int) -> int:
        """The agent dropped everything below `seq` (queue_floor): the watermark is at least seq − 1."""
        with self._tx() as cur:
            self._lock_site(cur, site)
            wm = self._advance(cur, site, max(self._stored_watermark(cur, site), seq - 1))
            self._put_watermark(cur, site, wm)
        return wm

    def highest_contiguous_seq(self, site: str) -> int:
        """From the database: another worker may have advanced it since our last write."""
        with self._tx() as cur:
            return self._stored_watermark(cur, site)

    def latest(self) -> dict[str, dict[str, tuple[datetime, float]]]:
        """Newest good value of every point: site -> "asset/point" -> (ts, value)."""
        return postgres_reads.latest(self._query)

    def watermarks(self) -> dict[str, int]:
        """Each site's watermark: the highest contiguous `seq` stored (what its agent may delete up to)."""
        with self._tx() as cur:
            cur.execute("SELECT site, seq FROM watermark")
            return {str(site): int(seq) for site, seq in cur.fetchall()}

    def count_samples(self, site: str | None = None) -> int:
        """Number of stored samples, of one site or of all."""
        with self._tx() as cur:
            if site is None:
                cur.execute("SELECT count(*) FROM sample_keys")
            else:
                cur.execute("SELECT count(*) FROM sample_keys WHERE site = %s", (site,))
            row = cur.fetchone()
        return int(row[0]) if row is not None else 0

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """Good, non-null values of one point in [start, end), oldest first."""
        return postgres_reads.read_series(self._query, site, asset, point, start, end)

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

        ISP-aligned (start, end on ISP boundaries, `step_s` whole ISPs): one statement over
        the ISP rollups (`postgres_rollups.py`, one row per site, point and day); otherwise,
        or with `rollups=False`, the samples (`_raw_bucket_means`).
        """
        isps = aligned_isps(start, end, step_s) if rollups else None
        if isps is None:
            return postgres_reads.raw_bucket_means(self._query, sites, point, start, end, step_s)
        d0, d1 = isps[0] // ISPS_PER_DAY, (isps[1] - 1) // ISPS_PER_DAY
        rows: list[tuple[int, int, bytes, bytes]] = []
        if sites:
            with self._tx() as cur:
                rows = postgres_rollups.read_rows(cur, sites, point.asset, point.point, d0, d1)
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

        `points=None` means every point the site reported in the window; `max_rows` bounds
        one request (the newest rows are dropped), as in SqliteStore.
        """
        return postgres_reads.read_history(self._query, site, start, end, points, max_rows)

    def _query(self, sql: str, args: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
        """One statement in its own transaction (`postgres_reads.py`): every row it returns."""
        with self._tx() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    # -- events and acks -------------------------------------------------------------

    def write_event(self, event: Event) -> None:
        """Store an agent's event."""
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO events (site, ts, kind, severity, json) VALUES (%s, %s, %s, %s, %s)",
                (event.site, _ts(event.ts), event.kind, event.severity, event.model_dump_json()),
            )

    def write_ack(self, ack: Ack) -> None:
        """Store a command's ack (a repeated ack replaces the earlier one)."""
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO acks (site, cmd_id, ts, status, json) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (site, cmd_id) DO UPDATE SET ts = excluded.ts, status = excluded.status, "
                "json = excluded.json",
                (ack.site, ack.cmd_id, _ts(ack.ts), ack.status, ack.model_dump_json()),
            )

    def count_events(self, kind: str | None = None) -> int:
        """Number of stored events, of one kind or of all."""
        with self._tx() as cur:
            if kind is None:
                cur.execute("SELECT count(*) FROM events")
            else:
                cur.execute("SELECT count(*) FROM events WHERE kind = %s", (kind,))
            row = cur.fetchone()
        return int(row[0]) if row is not None else 0

    def read_events(
        self,
        *,
        site: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[Event]:
        """The newest events first (at most `limit`), optionally of one site / kind / after `since`."""
        sql, args = "SELECT json FROM events WHERE true", list[object]()
        if site is not None:
            sql, args = sql + " AND site = %s", [*args, site]
        if kind is not None:
            sql, args = sql + " AND kind = %s", [*args, kind]
        if since is not None:
            sql, args = sql + " AND ts >= %s", [*args, _ts(since)]
        sql += " ORDER BY ts DESC, id DESC LIMIT %s"
        with self._tx() as cur:
            cur.execute(sql, [*args, limit])
            rows = cur.fetchall()
        return [Event.model_validate_json(js) for (js,) in rows]

    # -- leases and health --------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, now_s: float, ttl_s: float) -> LeaseState:
        """Take or renew lease `name` for `holder` until `now_s + ttl_s`, unless another holds it unexpired.

        One upsert whose WHERE Postgres evaluates on the locked newest row (`postgres_leases.py`):
        of two contenders one wins, and a later holder has a larger fencing token.
        """
        with self._tx() as cur:
            return postgres_leases.acquire_lease(cur, self.path, name, holder, now_s, ttl_s)

    def release_lease(self, name: str, holder: str) -> bool:
        """End `holder`'s lease now (the token is kept, so the next holder's is larger); False if not held."""
        with self._tx() as cur:
            return postgres_leases.release_lease(cur, name, holder)

    def read_lease(self, name: str) -> tuple[str, int, float] | None:
        """(holder, token, expires_at) of lease `name` as stored, or None if never taken."""
        with self._tx() as cur:
            return postgres_leases.read_lease(cur, name)

    def claim_period(self, name: str, holder: str, token: int, period_s: float, now_s: float) -> bool:
        """Claim the period starting at `period_s` for lease `name`'s holder (see `Store.claim_period`)."""
        with self._tx() as cur:
            return postgres_leases.claim_period(cur, name, holder, token, period_s, now_s)

    def probe_write(self, name: str, now_s: float) -> None:
        """A real write the readiness check makes: raises StoreError if the database does not take it."""
        with self._tx() as cur:
            postgres_leases.probe_write(cur, name, now_s)

    def replace_envelopes(self, rows: Sequence[tuple[float, str]]) -> None:
        """Store the operator's envelopes (until as epoch s, the envelope as JSON), replacing the last set."""
        with self._tx() as cur:
            cur.execute("DELETE FROM grid_envelopes")
            cur.executemany(
                "INSERT INTO grid_envelopes (pos, until, json) VALUES (%s, %s, %s)",
                [(i, until, js) for i, (until, js) in enumerate(rows)],
            )

    def read_envelopes(self, now_s: float) -> list[str]:
        """The stored envelopes (JSON) not expired by `now_s`, in the order given; expired ones are deleted."""
        with self._tx() as cur:
            cur.execute("DELETE FROM grid_envelopes WHERE until <= %s", (now_s,))
            cur.execute("SELECT json FROM grid_envelopes ORDER BY pos")
            rows = cur.fetchall()
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        """Close the connection; later calls raise StoreError."""
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None
