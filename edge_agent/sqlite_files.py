"""The agent's SQLite files: telling corruption from a full disk, and moving a corrupt file aside.

The queue and the replay memory are both SQLite files on the gateway's disk. A corrupt
file must not stop the agent (that would leave the equipment wherever it was), and it
must not be deleted either (it is the evidence of what happened), so it is renamed to
`<name>.corrupt-<UTC timestamp>` together with its WAL and shared-memory files.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

__all__ = ["is_corruption", "is_write_failure", "move_aside"]

_CORRUPT = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
#: Errors of a write that did not reach the disk: full disk, file-size limit, I/O error.
_WRITE_FAILED = frozenset({"SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN"})


def _name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def is_corruption(exc: sqlite3.Error) -> bool:
    """True if the file itself is damaged (not a database, malformed image)."""
    name = _name(exc)
    if any(name.startswith(c) for c in _CORRUPT):
        return True
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text


def is_write_failure(exc: sqlite3.Error) -> bool:
    """True for a write the disk refused (full, size limit, I/O): retry later, do not move the file."""
    name = _name(exc)
    return any(name.startswith(c) for c in _WRITE_FAILED) or "full" in str(exc).lower()


def move_aside(path: Path, now: datetime) -> Path:
    """Rename `path` (and its -wal/-shm) to `<path>.corrupt-<ts>`; return the new name of `path`."""
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    if path.exists():
        path.rename(target)
    return target
