"""DR requests with their status and selection on SQLite or the shared PostgreSQL, so a restart keeps them.

A table of its own (`dr_requests`) in the DR store's record database
(`cloud_controller.store.records`), beside `dr_contracts` and
`dr_events` (`cloud_controller.dr.store`). The request is stored as its wire JSON (the
strict model validates it again when read back), the selection and refusals as JSON.
A request's activation state (commands sent per step, acks, baseline, delivery report)
is a JSON row of `dr_runs`, written after every change so a restart resumes it.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cloud_controller.store.records import RecordDb, SqliteRecords
from protocols.messages import DRRequest

__all__ = ["DrRecord", "DrRequestStore", "RequestStatus"]

RequestStatus = Literal["selected", "partial", "active", "completed", "refused", "cancelled"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS dr_requests (
    request_id TEXT PRIMARY KEY, received REAL NOT NULL, status TEXT NOT NULL,
    request TEXT NOT NULL, selection TEXT NOT NULL, refusals TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dr_runs (request_id TEXT PRIMARY KEY, run TEXT NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class DrRecord:
    """One request as the controller answered it: status, selection (JSON-ready) and refused sites."""

    request: DRRequest
    received_ts: float
    status: RequestStatus
    selection: dict[str, Any]
    refusals: list[dict[str, str]]

    def summary(self) -> dict[str, Any]:
        """The request and its status, without the per-source selection."""
        return {
            "request": self.request.model_dump(mode="json"),
            "status": self.status,
            "unmet_kw": self.selection.get("unmet_kw", []),
            "refusals": self.refusals,
        }


class DrRequestStore:
    """Thread-safe (the RecordDb's lock); read-modify-writes go inside `write()`."""

    def __init__(self, db: RecordDb | Path) -> None:
        self.db: RecordDb = SqliteRecords(db) if isinstance(db, Path) else db
        self.db.apply_schema(SCHEMA)

    def write(self) -> AbstractContextManager[None]:
        """The DR area's write section (one writer across controllers; `RecordDb.write`)."""
        return self.db.write()

    def put(self, record: DrRecord) -> None:
        """Insert or replace the record of its request id."""
        self.db.execute(
            "INSERT INTO dr_requests VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET "
            "received = excluded.received, status = excluded.status, request = excluded.request, "
            "selection = excluded.selection, refusals = excluded.refusals",
            (
                record.request.request_id,
                record.received_ts,
                record.status,
                record.request.model_dump_json(),
                json.dumps(record.selection),
                json.dumps(record.refusals),
            ),
        )

    def get(self, request_id: str) -> DrRecord | None:
        """The record of `request_id`, or None."""
        rows = self.db.query(
            "SELECT received, status, request, selection, refusals FROM dr_requests WHERE request_id = ?",
            (request_id,),
        )
        return _record(rows[0]) if rows else None

    def all(self) -> list[DrRecord]:
        """Every record, oldest first (then by id)."""
        rows = self.db.query(
            "SELECT received, status, request, selection, refusals FROM dr_requests ORDER BY received, request_id"
        )
        return [_record(r) for r in rows]

    def put_run(self, request_id: str, run: dict[str, Any]) -> None:
        """Insert or replace a request's activation state (`cloud_controller.dr.activator`)."""
        self.db.execute(
            "INSERT INTO dr_runs VALUES (?, ?) ON CONFLICT (request_id) DO UPDATE SET run = excluded.run",
            (request_id, json.dumps(run)),
        )

    def create_run(self, request_id: str, run: dict[str, Any]) -> dict[str, Any]:
        """Store a request's first activation state unless one is stored already; the stored one.

        Two controllers preparing the same request at once (the API's and the dispatcher's)
        keep the first, so a run that has sent steps is never reset by a late preparation.
        """
        with self.db.write():
            self.db.execute(
                "INSERT INTO dr_runs VALUES (?, ?) ON CONFLICT (request_id) DO NOTHING",
                (request_id, json.dumps(run)),
            )
            stored = self.get_run(request_id)
        assert stored is not None  # inserted or already there, in this section
        return stored

    def get_run(self, request_id: str) -> dict[str, Any] | None:
        """A request's activation state, or None before it was prepared."""
        rows = self.db.query("SELECT run FROM dr_runs WHERE request_id = ?", (request_id,))
        return dict(json.loads(rows[0][0])) if rows else None

    def close(self) -> None:
        """Close the database (idempotent: the contract store may share it)."""
        self.db.close()


def _record(row: tuple[Any, ...]) -> DrRecord:
    received, status, request, selection, refusals = row
    return DrRecord(
        request=DRRequest.model_validate_json(request),
        received_ts=float(received),
        status=status,
        selection=json.loads(selection),
        refusals=json.loads(refusals),
    )
