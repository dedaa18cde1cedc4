"""The PostgreSQL store's schema: versioned migrations and the statements its hot paths run.

Kept apart from `postgres.py` (the store's behaviour) so a migration is read and reviewed
on its own. Migrations are append-only: version -> step, each returning the note kept in
`schema_version`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg
from psycopg.rows import TupleRow

from cloud_controller.store import postgres_rollups
from cloud_controller.store.base import StoreError

__all__ = [
    "ACQUIRE_LEASE",
    "BUCKET_MEANS",
    "CLAIM_PERIOD",
    "LOCK_CLASS",
    "MIGRATIONS",
    "RECORDS_LOCK_CLASS",
    "SCHEMA_VERSION",
    "Cursor",
    "migrate",
]

log = logging.getLogger(__name__)

Cursor = psycopg.Cursor[TupleRow]

LOCK_CLASS = 0x6766  # first key of GridFlex's advisory locks ("gf"); the second is per site
MIGRATION_LOCK = 0  # second key of the migration lock (hashtext never collides with it on purpose)
#: First key of the record stores' write sections ("gr"); the second is hashtext(area). A class
#: of its own, so an area never shares a lock with a site of the same name.
RECORDS_LOCK_CLASS = 0x6772

MIGRATION_1 = """
CREATE TABLE sample_keys (site text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (site, seq));
CREATE TABLE samples (
    site text NOT NULL, seq bigint NOT NULL, asset text NOT NULL, point text NOT NULL,
    ts timestamptz NOT NULL, value double precision, unit text NOT NULL, quality text NOT NULL
);
CREATE INDEX samples_series ON samples (site, asset, point, ts);
CREATE INDEX samples_site_ts ON samples (site, ts);
CREATE TABLE watermark (site text PRIMARY KEY, seq bigint NOT NULL);
CREATE TABLE latest (
    site text NOT NULL, asset text NOT NULL, point text NOT NULL,
    ts timestamptz NOT NULL, value double precision NOT NULL, PRIMARY KEY (site, asset, point)
);
CREATE TABLE events (
    id bigserial PRIMARY KEY, site text NOT NULL, ts timestamptz NOT NULL,
    kind text NOT NULL, severity text NOT NULL, json text NOT NULL
);
CREATE INDEX events_ts ON events (ts);
CREATE TABLE acks (
    site text NOT NULL, cmd_id text NOT NULL, ts timestamptz NOT NULL, status text NOT NULL,
    json text NOT NULL, PRIMARY KEY (site, cmd_id)
);
CREATE TABLE leases (
    name text PRIMARY KEY, holder text NOT NULL, token bigint NOT NULL, expires_at double precision NOT NULL
);
CREATE TABLE probes (name text PRIMARY KEY, ts double precision NOT NULL);
"""


def _hypertable(cur: Cursor) -> str:
    """Make `samples` a TimescaleDB hypertable if the extension can be had here; says what it did."""
    cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    if cur.fetchone() is None:
        return "plain samples table (timescaledb not available)"
    try:
        with cur.connection.transaction():  # a savepoint: a refusal leaves migration 1 intact
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            cur.execute("SELECT create_hypertable('samples', 'ts', if_not_exists => TRUE)")
    except psycopg.Error as exc:
        log.warning("store: timescaledb is available but not usable (%s); samples stay a plain table", exc)
        return f"plain samples table (timescaledb refused: {exc})"
    return "samples is a timescaledb hypertable on ts"


def _migration_1(cur: Cursor) -> str:
    cur.execute(MIGRATION_1)
    return _hypertable(cur)


def _migration_2(cur: Cursor) -> str:
    cur.execute(
        "CREATE TABLE grid_envelopes (pos integer PRIMARY KEY, until double precision NOT NULL, json text NOT NULL)"
    )
    return "grid_envelopes: the operator's operating envelopes (web/limits_api.py)"


def _migration_3(cur: Cursor) -> str:
    cur.execute(
        "CREATE TABLE dispatch_periods (name text PRIMARY KEY, period_s double precision NOT NULL, token bigint NOT NULL)"
    )
    return "dispatch_periods: the last period each lease's holder dispatched (no period sent twice)"


#: The record stores' tables (cloud_controller/store/records.py): the SQLite stores' columns,
#: REAL as double precision, JSON as text (kept byte for byte; the models validate it when read).
#: `pos` stands in for SQLite's rowid where a store lists rows in insertion order.
MIGRATION_4 = """
CREATE TABLE dr_contracts (
    site text NOT NULL, program text NOT NULL, json text NOT NULL, PRIMARY KEY (site, program)
);
CREATE TABLE dr_events (
    request_id text NOT NULL, site text NOT NULL, program text NOT NULL,
    start double precision NOT NULL, end_ts double precision NOT NULL, PRIMARY KEY (request_id, site)
);
CREATE INDEX dr_events_day ON dr_events (site, program, start);
CREATE TABLE dr_requests (
    request_id text PRIMARY KEY, received double precision NOT NULL, status text NOT NULL,
    request text NOT NULL, selection text NOT NULL, refusals text NOT NULL
);
CREATE TABLE dr_runs (request_id text PRIMARY KEY, run text NOT NULL);
CREATE TABLE market_requests (
    request_id text PRIMARY KEY, congestion_point text NOT NULL, status text NOT NULL,
    received double precision NOT NULL, json text NOT NULL
);
CREATE TABLE market_offers (
    offer_id text PRIMARY KEY, fsp text NOT NULL, congestion_point text NOT NULL,
    status text NOT NULL, received double precision NOT NULL, json text NOT NULL
);
CREATE TABLE market_clearings (clearing_id text PRIMARY KEY, at double precision NOT NULL, json text NOT NULL);
CREATE TABLE market_orders (
    order_id text PRIMARY KEY, fsp text NOT NULL, clearing_id text NOT NULL, json text NOT NULL,
    pos bigserial NOT NULL
);
CREATE TABLE market_settlements (
    order_id text PRIMARY KEY, fsp text NOT NULL, json text NOT NULL, pos bigserial NOT NULL
);
CREATE TABLE oa3_objects (
    kind text NOT NULL, id text NOT NULL, seq bigint NOT NULL, json text NOT NULL,
    PRIMARY KEY (kind, id), UNIQUE (kind, seq)
);
"""


def _migration_4(cur: Cursor) -> str:
    cur.execute(MIGRATION_4)
    return "dr_*, market_*, oa3_objects: the DR, market and OpenADR record stores (store/records.py)"


MIGRATION_5 = """
CREATE TABLE market_prognoses (
    offer_id text PRIMARY KEY, fsp text NOT NULL, received double precision NOT NULL, json text NOT NULL
);
CREATE TABLE market_frozen_forecasts (offer_id text PRIMARY KEY, at double precision NOT NULL, json text NOT NULL);
CREATE TABLE market_disputes (
    order_id text PRIMARY KEY, fsp text NOT NULL, status text NOT NULL, json text NOT NULL,
    pos bigserial NOT NULL
);
"""


def _migration_5(cur: Cursor) -> str:
    cur.execute(MIGRATION_5)
    return (
        "market_prognoses, market_frozen_forecasts, market_disputes: the settlement's baselines and disputes"
    )


def _migration_6(cur: Cursor) -> str:
    cur.execute(postgres_rollups.CREATE)
    rows = postgres_rollups.backfill(cur)
    return f"isp_rollups: per site, point and day the ISPs' count and sum (store/rollups.py); {rows} rows backfilled"


#: Ordered migrations: version -> step (returns a note kept in schema_version). Append only.
MIGRATIONS: dict[int, Callable[[Cursor], str]] = {
    1: _migration_1,
    2: _migration_2,
    3: _migration_3,
    4: _migration_4,
    5: _migration_5,
    6: _migration_6,
}
SCHEMA_VERSION = max(MIGRATIONS)


def migrate(cur: Cursor, where: str) -> str:
    """Apply the migrations this database lacks, one process at a time (advisory lock); migration 1's note.

    Run in the caller's transaction by every kind of connection that needs the schema
    (the time-series store and the record stores alike), so whichever opens first migrates.
    """
    cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, MIGRATION_LOCK))
    cur.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), note text NOT NULL)"
    )
    cur.execute("SELECT coalesce(max(version), 0) FROM schema_version")
    row = cur.fetchone()
    current = int(row[0]) if row is not None else 0
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"PostgreSQL store {where}: schema version {current} is newer than this "
            f"program's {SCHEMA_VERSION}; upgrade the controller"
        )
    for version in sorted(v for v in MIGRATIONS if v > current):
        note = MIGRATIONS[version](cur)
        cur.execute("INSERT INTO schema_version (version, note) VALUES (%s, %s)", (version, note))
        log.info("store: migration %d applied (%s)", version, note)
    cur.execute("SELECT note FROM schema_version WHERE version = 1")
    noted = cur.fetchone()
    return str(noted[0]) if noted is not None else ""


#: The lease row is locked (FOR UPDATE) so a takeover's upsert waits for the claim or the
#: claim sees the new holder; a claim of a period not after the last one changes nothing.
CLAIM_PERIOD = """
WITH held AS (
    SELECT name FROM leases
    WHERE name = %(name)s AND holder = %(holder)s AND token = %(token)s AND expires_at > %(now)s
    FOR UPDATE
)
INSERT INTO dispatch_periods AS d (name, period_s, token) SELECT name, %(period)s, %(token)s FROM held
ON CONFLICT (name) DO UPDATE SET period_s = excluded.period_s, token = excluded.token
WHERE d.period_s < excluded.period_s
RETURNING period_s
"""

ACQUIRE_LEASE = """
INSERT INTO leases AS l (name, holder, token, expires_at) VALUES (%(name)s, %(holder)s, 1, %(expires)s)
ON CONFLICT (name) DO UPDATE SET
    token = CASE WHEN l.holder = excluded.holder AND l.expires_at > 0 THEN l.token ELSE l.token + 1 END,
    holder = excluded.holder, expires_at = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at <= %(now)s
RETURNING token
"""
#: `PostgresStore.read_bucket_means`: per site (its 1-based position in the list) and bucket, the mean.
#: The bucket is the exact (numeric) epoch offset from start over the step, floored.
BUCKET_MEANS = """
SELECT s.i, floor(extract(epoch FROM x.ts - %(start)s::timestamptz) / %(step)s::numeric)::bigint AS b,
       avg(x.value)
FROM unnest(%(sites)s::text[]) WITH ORDINALITY AS s(site, i)
JOIN samples x ON x.site = s.site
WHERE x.asset = %(asset)s AND x.point = %(point)s AND x.ts >= %(start)s AND x.ts < %(end)s
  AND x.value IS NOT NULL AND x.quality = 'good'
GROUP BY s.i, b
"""
