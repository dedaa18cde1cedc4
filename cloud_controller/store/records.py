"""The record stores' database (DR, market, OpenADR): one SQLite file, or the shared PostgreSQL.

The four record stores (`dr/store.py`, `dr/requests_store.py`, `market/store.py`,
`openadr/store.py`) speak SQL through `RecordDb`, so the same store code runs on the
controller's embedded SQLite file and on the PostgreSQL that several controller machines
share (`store.kind: postgres`). Their SQL is the dialect both accept: `?` placeholders,
`INSERT … ON CONFLICT … DO UPDATE/NOTHING` (SQLite ≥ 3.24), no `INSERT OR REPLACE`.

**The write section.** A read-modify-write (a request id checked then inserted, a
clearing numbered from the clearings so far, an OpenADR name checked unique) is correct
across processes and machines only if the writers of one *area* (`dr`, `market`,
`openadr`) take turns. `RecordDb.write()` is that section: on SQLite `BEGIN IMMEDIATE`
(the file's write lock, taken before the first read, so the reads see the last writer's
commit); on PostgreSQL a transaction that first takes `pg_advisory_xact_lock(class,
hashtext(area))` under a `lock_timeout` (READ COMMITTED: each statement after the lock
sees every commit of the previous holder; the lock ends with the transaction, so a
crashed controller holds nothing). Inside a section, `execute`/`query` of the same thread
run in its transaction; sections nest (the inner one joins the outer). Outside one,
each statement commits on its own. Threads of one process take turns on one lock.

A unique key violated is a `RecordConflict` on both back ends (the stores' backstop
behind their checks).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cloud_controller.store.base import StoreError
from cloud_controller.store.sqlite_file import open_sqlite

if TYPE_CHECKING:
    from cloud_controller.config import CloudConfig

__all__ = ["AREAS", "Area", "RecordConflict", "RecordDb", "SqliteRecords", "records_of"]

Area = Literal["dr", "market", "openadr"]
AREAS: tuple[Area, ...] = ("dr", "market", "openadr")
Dialect = Literal["sqlite", "postgres"]


class RecordConflict(StoreError):
    """A record with that key exists already (a unique key refused the insert)."""


class RecordDb(Protocol):
    """What a record store needs: statements, queries, a write section serialising the area's writers."""

    @property
    def where(self) -> str:
        """The SQLite file or the PostgreSQL DSN (never with a password), for messages."""
        ...

    @property
    def dialect(self) -> Dialect:
        """Which back end: the stores only use it where SQL differs (insertion order: rowid vs pos)."""
        ...

    def apply_schema(self, sqlite_schema: str) -> None:
        """SQLite: run the store's CREATE … IF NOT EXISTS script. PostgreSQL: migrations own the schema."""
        ...

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row (in one transaction when inside a write section)."""
        ...

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one query."""
        ...

    def write(self) -> AbstractContextManager[None]:
        """The area's write section: one writer at a time across processes and machines, one transaction."""
        ...

    def close(self) -> None:
        """Close the connection (idempotent: several stores may share one RecordDb)."""
        ...


class SqliteRecords:
    """`RecordDb` on one SQLite file (WAL, busy timeout; `open_sqlite`), thread-safe with one re-entrant lock."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = open_sqlite(path, "")
        self._depth = 0
        self._closed = False

    @property
    def where(self) -> str:
        """Where the records are, for messages."""
        return str(self.path)

    def apply_schema(self, sqlite_schema: str) -> None:
        """Run the store's CREATE … IF NOT EXISTS script on the file."""
        with self._lock:
            self._db.executescript(sqlite_schema)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """One statement; rows changed (a unique key violated: RecordConflict)."""
        with self._lock:
            try:
                return self._db.execute(sql, tuple(args)).rowcount
            except sqlite3.IntegrityError as exc:
                raise RecordConflict(f"{self.path}: {exc}") from exc

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement per row."""
        with self._lock:
            try:
                self._db.executemany(sql, [tuple(r) for r in rows])
            except sqlite3.IntegrityError as exc:
                raise RecordConflict(f"{self.path}: {exc}") from exc

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one query."""
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

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
            self._db.execute("BEGIN IMMEDIATE")  # the write lock now: reads below see the last commit
            self._depth = 1
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
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
                self._db.close()


def records_of(config: CloudConfig, area: Area, path: Path) -> RecordDb:
    """The record database of `area`: the shared PostgreSQL for `store.kind: postgres`, else the SQLite file `path`."""
    if config.store.kind != "postgres":
        return SqliteRecords(path)
    from cloud_controller.service_setup import read_secret  # the one reader of secret files
    from cloud_controller.store.records_pg import PostgresRecords  # psycopg only where asked for

    assert config.store.dsn is not None  # StoreConfig requires it for kind postgres
    password = read_secret(config.store.password_file, "PostgreSQL password")
    return PostgresRecords(config.store.dsn, area, password=password)
