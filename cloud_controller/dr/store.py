"""DR contracts and accepted events on SQLite or the shared PostgreSQL, so they survive a restart.

Own tables (`dr_contracts`, `dr_events`) in the record database it is given
(`cloud_controller.store.records`: a SQLite file, or PostgreSQL's migration 4 for
`store.kind: postgres`); a path opens that SQLite file. A contract is stored as its JSON (the pydantic
model validates it again when read back); events are rows, counted per site, programme
and UTC day for the contract's `events_per_day` rule.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud_controller.dr.contracts import Contract
from cloud_controller.store.records import RecordDb, SqliteRecords

__all__ = ["DrStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS dr_contracts (
    site TEXT NOT NULL, program TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY (site, program)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dr_events (
    request_id TEXT NOT NULL, site TEXT NOT NULL, program TEXT NOT NULL,
    start REAL NOT NULL, end_ts REAL NOT NULL, PRIMARY KEY (request_id, site)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dr_events_day ON dr_events (site, program, start);
"""


class DrStore:
    """Thread-safe (the RecordDb's lock); read-modify-writes go inside `write()`."""

    def __init__(self, db: RecordDb | Path) -> None:
        self.db: RecordDb = SqliteRecords(db) if isinstance(db, Path) else db
        self.path = self.db.where
        self.db.apply_schema(SCHEMA)

    def write(self) -> AbstractContextManager[None]:
        """The DR area's write section (one writer across controllers; `RecordDb.write`)."""
        return self.db.write()

    def put_contract(self, contract: Contract) -> None:
        """Insert or replace the contract of (site, program)."""
        self.db.execute(
            "INSERT INTO dr_contracts VALUES (?, ?, ?) "
            "ON CONFLICT (site, program) DO UPDATE SET json = excluded.json",
            (contract.site, contract.program, contract.model_dump_json()),
        )

    def delete_contract(self, site: str, program: str) -> bool:
        """Remove a contract; True if there was one."""
        n = self.db.execute("DELETE FROM dr_contracts WHERE site = ? AND program = ?", (site, program))
        return n > 0

    def contracts(self, program: str | None = None) -> list[Contract]:
        """Every contract (of one programme if given), by site."""
        if program is None:
            rows = self.db.query("SELECT json FROM dr_contracts ORDER BY site, program")
        else:
            rows = self.db.query("SELECT json FROM dr_contracts WHERE program = ? ORDER BY site", (program,))
        return [Contract.model_validate_json(j) for (j,) in rows]

    def record_event(self, request_id: str, site: str, program: str, start: datetime, end: datetime) -> None:
        """Remember that `site` takes part in `request_id` (idempotent: a repeat is a no-op)."""
        self.db.execute(
            "INSERT INTO dr_events VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (request_id, site, program, start.timestamp(), end.timestamp()),
        )

    def events_on_day(self, program: str, day: datetime) -> dict[str, int]:
        """Accepted events per site under `program` starting on `day`'s UTC date."""
        d = day.astimezone(UTC)
        t0 = datetime(d.year, d.month, d.day, tzinfo=UTC)
        t1 = t0 + timedelta(days=1)
        rows = self.db.query(
            "SELECT site, COUNT(*) FROM dr_events WHERE program = ? AND start >= ? AND start < ? GROUP BY site",
            (program, t0.timestamp(), t1.timestamp()),
        )
        return {str(site): int(n) for site, n in rows}

    def close(self) -> None:
        """Close the database (idempotent: the request store may share it)."""
        self.db.close()
