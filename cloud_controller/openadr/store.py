"""The VTN's objects on SQLite, so a restart of the controller keeps programs, events and reports.

One table, one row per object, its JSON as the API serves it; the conventions of the
controller's other SQLite stores (WAL, busy timeout, one lock, autocommit statements).
Filters (programID, eventID, clientName, targets) are applied in Python over one kind's
rows: a VTN of a DSO holds hundreds of objects, not millions.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from cloud_controller.store.sqlite_file import open_sqlite

__all__ = ["OpenAdrStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS oa3_objects (
    kind TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
"""


class OpenAdrStore:
    """Thread-safe (one lock): FastAPI runs the sync handlers in worker threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = open_sqlite(path, SCHEMA)

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        """Insert or replace; a new object goes to the end of its kind's order, a replaced one keeps its place."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq FROM oa3_objects WHERE kind = ? AND id = ?", (kind, obj["id"])
            ).fetchone()
            if row is None:
                top = self._db.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM oa3_objects WHERE kind = ?", (kind,)
                ).fetchone()
                seq = int(top[0]) + 1
            else:
                seq = int(row[0])
            self._db.execute(
                "INSERT OR REPLACE INTO oa3_objects VALUES (?, ?, ?, ?)",
                (kind, obj["id"], seq, json.dumps(obj)),
            )

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """One object's JSON, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT json FROM oa3_objects WHERE kind = ? AND id = ?", (kind, object_id)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every object of a kind in creation order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT json FROM oa3_objects WHERE kind = ? ORDER BY seq", (kind,)
            ).fetchall()
        return [dict(json.loads(r[0])) for r in rows]

    def delete(self, kind: str, object_id: str) -> bool:
        """True if there was one."""
        with self._lock:
            cur = self._db.execute("DELETE FROM oa3_objects WHERE kind = ? AND id = ?", (kind, object_id))
        return cur.rowcount > 0

    def close(self) -> None:
        """Close the connection (the controller's shutdown, a test's restart)."""
        with self._lock:
            self._db.close()
