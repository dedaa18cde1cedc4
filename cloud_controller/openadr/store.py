"""The VTN's objects on SQLite or the shared PostgreSQL, so a restart keeps programs, events and reports.

One table, one row per object, its JSON as the API serves it, in a record database
(`cloud_controller.store.records`); the VTN's check-then-write (a name unique, a new
object's place in its kind's order) runs inside `write()`, one writer across controllers.
Filters (programID, eventID, clientName, targets) are applied in Python over one kind's
rows: a VTN of a DSO holds hundreds of objects, not millions.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from cloud_controller.store.records import RecordDb, SqliteRecords

__all__ = ["OpenAdrStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS oa3_objects (
    kind TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
"""


class OpenAdrStore:
    """Thread-safe (the RecordDb's lock): FastAPI runs the sync handlers in worker threads."""

    def __init__(self, db: RecordDb | Path) -> None:
        self.db: RecordDb = SqliteRecords(db) if isinstance(db, Path) else db
        self.path = self.db.where
        self.db.apply_schema(SCHEMA)

    def write(self) -> AbstractContextManager[None]:
        """The OpenADR area's write section (one writer across controllers; `RecordDb.write`)."""
        return self.db.write()

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        """Insert or replace; a new object goes to the end of its kind's order, a replaced one keeps its place."""
        with self.db.write():
            rows = self.db.query("SELECT seq FROM oa3_objects WHERE kind = ? AND id = ?", (kind, obj["id"]))
            if rows:
                seq = int(rows[0][0])
            else:
                top = self.db.query("SELECT COALESCE(MAX(seq), 0) FROM oa3_objects WHERE kind = ?", (kind,))
                seq = int(top[0][0]) + 1
            self.db.execute(
                "INSERT INTO oa3_objects VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET seq = excluded.seq, json = excluded.json",
                (kind, obj["id"], seq, json.dumps(obj)),
            )

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """One object's JSON, or None."""
        rows = self.db.query("SELECT json FROM oa3_objects WHERE kind = ? AND id = ?", (kind, object_id))
        return dict(json.loads(rows[0][0])) if rows else None

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every object of a kind in creation order."""
        rows = self.db.query("SELECT json FROM oa3_objects WHERE kind = ? ORDER BY seq", (kind,))
        return [dict(json.loads(r[0])) for r in rows]

    def delete(self, kind: str, object_id: str) -> bool:
        """True if there was one."""
        return self.db.execute("DELETE FROM oa3_objects WHERE kind = ? AND id = ?", (kind, object_id)) > 0

    def close(self) -> None:
        """Close the database (the controller's shutdown, a test's restart)."""
        self.db.close()
