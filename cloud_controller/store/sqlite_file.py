"""One way to open the controller's SQLite files (the DR, market and OpenADR stores beside the main one).

Autocommit (transactions are explicit), WAL so readers never block the writer, a busy timeout
for other workers on the same file, and the caller's schema applied idempotently. The
connection is shared between threads; the caller holds its own lock around every use.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["open_sqlite"]

#: How long a statement waits for another connection's write lock before it fails (ms).
BUSY_TIMEOUT_MS = 10_000


def open_sqlite(path: Path, schema: str) -> sqlite3.Connection:
    """The file at `path` (its folder made), with `schema` (CREATE … IF NOT EXISTS statements) applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(schema)
    return db
