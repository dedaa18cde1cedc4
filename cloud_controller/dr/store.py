"""DR contracts and accepted events on SQLite, so they survive a restart of the controller.

Own tables (`dr_contracts`, `dr_events`) in the file it is given: the controller's own
database path (the tables sit beside `cloud_controller.store.sqlite`'s) or a file of its
own. The same conventions as that store: WAL, a busy timeout for other workers on the
file, one lock, explicit transactions. A contract is stored as its JSON (the pydantic
model validates it again when read back); events are rows, counted per site, programme
and UTC day for the contract's `events_per_day` rule.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud_controller.dr.contracts import Contract
from cloud_controller.store.sqlite_file import open_sqlite

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
    """Thread-safe (one lock), like the controller's `SqliteStore`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = open_sqlite(path, SCHEMA)

    def put_contract(self, contract: Contract) -> None:
        """Insert or replace the contract of (site, program)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO dr_contracts VALUES (?, ?, ?)",
                (contract.site, contract.program, contract.model_dump_json()),
            )

    def delete_contract(self, site: str, program: str) -> bool:
        """Remove a contract; True if there was one."""
        with self._lock:
            cur = self._db.execute("DELETE FROM dr_contracts WHERE site = ? AND program = ?", (site, program))
        return cur.rowcount > 0

    def contracts(self, program: str | None = None) -> list[Contract]:
        """Every contract (of one programme if given), by site."""
        with self._lock:
            if program is None:
                rows = self._db.execute("SELECT json FROM dr_contracts ORDER BY site, program").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT json FROM dr_contracts WHERE program = ? ORDER BY site", (program,)
                ).fetchall()
        return [Contract.model_validate_json(j) for (j,) in rows]

    def record_event(self, request_id: str, site: str, program: str, start: datetime, end: datetime) -> None:
        """Remember that `site` takes part in `request_id` (idempotent: a repeat is a no-op)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO dr_events VALUES (?, ?, ?, ?, ?)",
                (request_id, site, program, start.timestamp(), end.timestamp()),
            )

    def events_on_day(self, program: str, day: datetime) -> dict[str, int]:
        """Accepted events per site under `program` starting on `day`'s UTC date."""
        d = day.astimezone(UTC)
        t0 = datetime(d.year, d.month, d.day, tzinfo=UTC)
        t1 = t0 + timedelta(days=1)
        with self._lock:
            rows = self._db.execute(
                "SELECT site, COUNT(*) FROM dr_events WHERE program = ? AND start >= ? AND start < ? GROUP BY site",
                (program, t0.timestamp(), t1.timestamp()),
            ).fetchall()
        return {str(site): int(n) for site, n in rows}

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
