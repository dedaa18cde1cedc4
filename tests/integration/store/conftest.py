"""A real PostgreSQL (Debian's `postgresql`) on a free loopback port, once per test session.

`gridflex.ops.postgres.LoopbackPostgres` runs it (initdb in a fresh folder, `postgres` as
our child, stopped by its PID with a bound; as root through `setpriv` as user postgres).
Each test gets its own schema (`search_path` in its DSN), much cheaper than a database.
`records` runs a record-store test on both back ends (SQLite files, that PostgreSQL).
`make test` installs `postgresql` with apt-get; its absence fails, it does not skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud_controller.store.records import Area, RecordDb, SqliteRecords
from gridflex.ops.postgres import LoopbackPostgres, PostgresServerError


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LoopbackPostgres]:
    """Start PostgreSQL once for the session; stopped and its folder removed at the end."""
    try:
        server = LoopbackPostgres().start()
    except PostgresServerError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.close()


TABLES = (
    "sample_keys",
    "samples",
    "watermark",
    "latest",
    "events",
    "acks",
    "leases",
    "probes",
    "grid_envelopes",
    "isp_rollups",
)


@pytest.fixture(scope="session")
def pg_schema(pg_server: LoopbackPostgres) -> str:
    """One schema for the session's Postgres cases, migrated once (a migration costs ~0.2 s a test)."""
    from cloud_controller.store.postgres import PostgresStore

    schema = pg_server.fresh_schema()
    PostgresStore(pg_server.dsn(schema), password=pg_server.password).close()
    return schema


@pytest.fixture
def pg_dsn(pg_server: LoopbackPostgres, pg_schema: str) -> str:
    """The session's migrated schema with every table emptied (DELETE: cheaper than TRUNCATE here)."""
    import psycopg

    dsn = pg_server.dsn(pg_schema)
    with psycopg.connect(dsn, password=pg_server.password, autocommit=True) as db:
        db.execute("; ".join(f"DELETE FROM {t}" for t in TABLES))
    return dsn


RECORD_TABLES = (
    "dr_contracts",
    "dr_events",
    "dr_requests",
    "dr_runs",
    "market_requests",
    "market_offers",
    "market_clearings",
    "market_orders",
    "market_settlements",
    "oa3_objects",
)


@dataclass(frozen=True)
class Records:
    """One back end of the record stores: `open(area)` gives a fresh RecordDb (its own connection)."""

    kind: str
    open: Callable[[Area], RecordDb]


@pytest.fixture(params=["sqlite", "postgres"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> Records:
    """The record stores on SQLite files in tmp_path, or on the session's PostgreSQL with its record tables empty."""
    if request.param == "sqlite":
        return Records("sqlite", lambda area: SqliteRecords(tmp_path / f"{area}.sqlite"))
    import psycopg

    from cloud_controller.store.records_pg import PostgresRecords

    server: LoopbackPostgres = request.getfixturevalue("pg_server")
    dsn = server.dsn(request.getfixturevalue("pg_schema"))
    with psycopg.connect(dsn, password=server.password, autocommit=True) as db:
        db.execute("; ".join(f"DELETE FROM {t}" for t in RECORD_TABLES))
    return Records("postgres", lambda area: PostgresRecords(dsn, area, password=server.password))
