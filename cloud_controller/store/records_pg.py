"""`RecordDb` on PostgreSQL (psycopg 3): the record stores shared by several controller machines.

One connection per RecordDb (reconnected when broken), autocommit outside a write
section, READ COMMITTED inside. The write section is a transaction whose first statement
takes `pg_advisory_xact_lock(RECORDS_LOCK_CLASS, hashtext(area))` under `lock_timeout`,
so the writers of one area take turns and a statement after the lock sees the previous
holder's commit (see `cloud_controller.store.records`). The stores' `?` placeholders
become psycopg's `%s` here; the schema is migration 4 of `postgres_schema`, applied on
connect by whichever process comes first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from cloud_controller.store.base import StoreError
from cloud_controller.store.postgres import CONNECT_TIMEOUT_S, public_dsn
from cloud_controller.store.postgres_schema import RECORDS_LOCK_CLASS, migrate
from cloud_controller.store.records import Area, Dialect, RecordConflict

__all__ = ["LOCK_TIMEOUT_MS", "PostgresRecords"]

#: How long a write section waits for another controller's section of the same area (ms):
#: the same bound as SQLite's busy timeout.
LOCK_TIMEOUT_MS = 10_000


def _pg_sql(sql: str) -> str:
    """The stores' `?` placeholders as psycopg's `%s` (their SQL holds no other `?` or `%`)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresRecords:
    """The record tables of one area in a shared PostgreSQL; thread-safe with one re-entrant lock."""

    dialect: Dialect = "postgres"

    def __init__(
        self, dsn: str, area: Area, *, password: str | None = None, lock_timeout_ms: int = LOCK_TIMEOUT_MS
    ) -> None:
        self.area = area
        self._where = public_dsn(dsn)
        self._dsn = dsn
        self._password = password
        self._lock_timeout_ms = int(lock_timeout_ms)
        self._lock = threading.RLock()
        self._db: psycopg.Connection[TupleRow] | None = None
        self._depth = 0
        self._closed = False
        with self._errors(), self._conn().transaction(), self._conn().cursor() as cur:
            migrate(cur, self._where)

    @property
    def where(self) -> str:
        """Where the records are, for messages."""
        return self._where

    def _conn(self) -> psycopg.Connection[TupleRow]:
        if self._closed:
            raise StoreError(f"PostgreSQL records {self._where} are closed")
        if self._db is None or self._db.closed or self._db.broken:
            extra: dict[str, Any] = {"password": self._password} if self._password is not None else {}
            db = psycopg.connect(self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, **extra)
            db.isolation_level = psycopg.IsolationLevel.READ_COMMITTED  # what makes the area lock correct
            self._db = db
        return self._db

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Database failures as StoreError naming the database; a unique key violated as RecordConflict."""
        try:
            yield
        except psycopg.errors.UniqueViolation as exc:
            raise RecordConflict(f"PostgreSQL records {self._where}: {exc}") from exc
        except psycopg.errors.LockNotAvailable as exc:
            raise StoreError(
                f"PostgreSQL records {self._where}: another controller held the {self.area!r} write "
                f"section longer than {self._lock_timeout_ms} ms"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL records {self._where}: {exc}") from exc

    def apply_schema(self, sqlite_schema: str) -> None:
        """Nothing: migration 4 created the tables when this object connected."""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """One statement; rows changed (a unique key violated: RecordConflict)."""
        with self._lock, self._errors(), self._conn().cursor() as cur:
            cur.execute(_pg_sql(sql), tuple(args))
            return int(cur.rowcount)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement per row."""
        if not rows:
            return
        with self._lock, self._errors(), self._conn().cursor() as cur:
            cur.executemany(_pg_sql(sql), [tuple(r) for r in rows])

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one query."""
        with self._lock, self._errors(), self._conn().cursor() as cur:
            cur.execute(_pg_sql(sql), tuple(args))
            return list(cur.fetchall())

    @contextmanager
    def _section(self) -> Iterator[None]:
        with self._lock:
            if self._depth:  # nested: part of the outer transaction
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with self._errors():
                db = self._conn()
                self._depth = 1
                try:
                    with db.transaction(), db.cursor() as cur:
                        cur.execute(f"SET LOCAL lock_timeout = {self._lock_timeout_ms}")
                        cur.execute(
                            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (RECORDS_LOCK_CLASS, self.area)
                        )
                        yield
                finally:
                    self._depth = 0

    def write(self) -> AbstractContextManager[None]:
        """The area's write section (see the module docstring)."""
        return self._section()

    def close(self) -> None:
        """Close the connection once."""
        with self._lock:
            if not self._closed:
                self._closed = True
                if self._db is not None:
                    self._db.close()
