"""The UFTP conversations on SQLite, so a restart still knows what a reply or a settlement refers to.

UFTP's answers come later and refer back by MessageID (an offer to our FlexRequest, a
FlexOrderResponse to our FlexOrder) or by OrderReference (a month's FlexSettlement).
Each role keeps those records in `Ledger`s: a dict in memory, written through to one
table (`kind`, `key`, the record's JSON) in its own file, WAL and a busy timeout like the
other stores. Without a store (tests, the bench) a ledger is memory only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from cloud_controller.store.sqlite_file import open_sqlite

__all__ = ["Ledger", "UftpStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS uftp_records (
    kind TEXT NOT NULL, key TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY (kind, key)
);
"""
R = TypeVar("R", bound=BaseModel)


class UftpStore:
    """Thread-safe (one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = open_sqlite(path, SCHEMA)

    def put(self, kind: str, key: str, json: str) -> None:
        """Insert or replace one record."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO uftp_records VALUES (?, ?, ?)", (kind, key, json))

    def all(self, kind: str) -> list[tuple[str, str]]:
        """(key, JSON) of every record of `kind`, in insertion order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, json FROM uftp_records WHERE kind = ? ORDER BY rowid", (kind,)
            )
            return [(str(k), str(j)) for k, j in rows.fetchall()]

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()


class Ledger(Generic[R]):
    """Records of one kind by key: read at start, each `put` written through."""

    def __init__(self, model: type[R], kind: str, store: UftpStore | None = None) -> None:
        self.kind = kind
        self._store = store
        self._mem: dict[str, R] = {}
        if store is not None:
            for key, raw in store.all(kind):
                self._mem[key] = model.model_validate_json(raw)

    def put(self, key: str, record: R) -> None:
        """Keep `record` under `key` (again after a change: the file holds the last one)."""
        self._mem[key] = record
        if self._store is not None:
            self._store.put(self.kind, key, record.model_dump_json())

    def get(self, key: str) -> R | None:
        """The record under `key`, None if none."""
        return self._mem.get(key)

    def __getitem__(self, key: str) -> R:
        return self._mem[key]

    def __contains__(self, key: object) -> bool:
        return key in self._mem

    def __len__(self) -> int:
        return len(self._mem)

    def __iter__(self) -> Iterator[str]:
        return iter(self._mem)

    def values(self) -> list[R]:
        """Every record, oldest first."""
        return list(self._mem.values())
