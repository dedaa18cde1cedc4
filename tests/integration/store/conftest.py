"""A real PostgreSQL (Debian's `postgresql`) on a free loopback port, once per test session.

`gridflex.ops.postgres.LoopbackPostgres` runs it (initdb in a fresh folder, `postgres` as
our child, stopped by its PID with a bound; as root through `setpriv` as user postgres).
Each test gets its own schema (`search_path` in its DSN), much cheaper than a database.
`make test` installs `postgresql` with apt-get; its absence fails, it does not skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
