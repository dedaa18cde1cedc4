"""The SQLite store's ISP rollups (`rollups.py`): its migration and backfill, the write hook, the read.

Versioned by SQLite's `user_version` (0: a file from before the rollups). Migration 1
creates `isp_rollups` and fills it from the samples already stored, in one `BEGIN
IMMEDIATE` transaction, so a second worker opening the same file waits and then finds
version 1. A plain rowid table (the key a unique index): its ~2 KB rows fit a 4 KiB page,
where a WITHOUT ROWID table would spill every row to an overflow page.

Every caller runs inside the store's write transaction and under its lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np

from cloud_controller.store.batch import SiteSamples
from cloud_controller.store.rollups import (
    ISP_S,
    DayRow,
    Fresh,
    RollupKey,
    SeriesKey,
    apply_fresh,
    pack,
    series_sums,
    touched_keys,
    unpack,
)

__all__ = ["VERSION", "backfill", "migrate", "read_rows", "stored_seqs", "update"]

VERSION = 1

CREATE = """
CREATE TABLE IF NOT EXISTS isp_rollups (
    site TEXT NOT NULL, asset TEXT NOT NULL, point TEXT NOT NULL, day INTEGER NOT NULL,
    n BLOB NOT NULL, total BLOB NOT NULL, last_ts BLOB NOT NULL,
    UNIQUE (site, asset, point, day)
)
"""
UPSERT = (
    "INSERT INTO isp_rollups VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, asset, point, day) "
    "DO UPDATE SET n = excluded.n, total = excluded.total, last_ts = excluded.last_ts"
)
#: One ISP's good values in the raw path's order (the covering index: ts, quality, value).
ISP_VALUES = (
    "SELECT ts, value FROM samples WHERE site = ? AND asset = ? AND point = ? AND ts >= ? AND ts < ? "
    "AND value IS NOT NULL AND quality = 'good' ORDER BY ts"
)


def migrate(db: sqlite3.Connection) -> bool:
    """Bring the file to VERSION (creating and backfilling the rollups); True if this call migrated."""
    if int(db.execute("PRAGMA user_version").fetchone()[0]) >= VERSION:
        return False
    db.execute("BEGIN IMMEDIATE")
    try:
        if int(db.execute("PRAGMA user_version").fetchone()[0]) >= VERSION:  # another worker did
            db.execute("COMMIT")
            return False
        db.execute(CREATE)
        backfill(db)
        db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return True


def backfill(db: sqlite3.Connection) -> int:
    """Rebuild every rollup row from the stored samples (in the caller's transaction); rows written.

    One series at a time, read in index order and summed with bincount: the raw path's floats.
    """
    db.execute("DELETE FROM isp_rollups")
    series = db.execute("SELECT DISTINCT site, asset, point FROM samples").fetchall()
    written = 0
    for site, asset, point in series:
        got = db.execute(
            "SELECT ts, value FROM samples WHERE site = ? AND asset = ? AND point = ? "
            "AND value IS NOT NULL AND quality = 'good' ORDER BY ts",
            (site, asset, point),
        ).fetchall()
        if not got:
            continue
        arr = np.array(got, dtype=np.float64)
        rows = series_sums(arr[:, 0], arr[:, 1])
        db.executemany(UPSERT, [(site, asset, point, day, *pack(r)) for day, r in rows.items()])
        written += len(rows)
    return written


def _recompute(db: sqlite3.Connection, series: SeriesKey, isp: int) -> tuple[int, float, float]:
    rows = db.execute(ISP_VALUES, (*series, float(isp * ISP_S), float((isp + 1) * ISP_S))).fetchall()
    total = 0.0
    for _, v in rows:
        total += v
    return len(rows), total, (float(rows[-1][0]) if rows else 0.0)


def update(db: sqlite3.Connection, fresh: Sequence[Fresh]) -> None:
    """Fold the samples this transaction inserted (good, non-null) into their rollup rows."""
    if not fresh:
        return
    keys = touched_keys(fresh)
    rows: dict[RollupKey, DayRow] = {}
    for key in keys:
        got = db.execute(
            "SELECT n, total, last_ts FROM isp_rollups WHERE site = ? AND asset = ? AND point = ? AND day = ?",
            key,
        ).fetchone()
        if got is not None:
            rows[key] = unpack(*got)
    apply_fresh(rows, fresh, lambda series, isp: _recompute(db, series, isp))
    db.executemany(UPSERT, [(*key, *pack(rows[key])) for key in keys])


def read_rows(
    db: sqlite3.Connection, site: str, asset: str, point: str, first_day: int, last_day: int
) -> list[tuple[int, bytes, bytes]]:
    """(day, n, total) of one series' rows from first_day to last_day inclusive."""
    return db.execute(
        "SELECT day, n, total FROM isp_rollups WHERE site = ? AND asset = ? AND point = ? "
        "AND day >= ? AND day <= ?",
        (site, asset, point, first_day, last_day),
    ).fetchall()


def stored_seqs(db: sqlite3.Connection, batches: Sequence[SiteSamples]) -> dict[str, set[int]]:
    """Per site, which of the batch's seqs the file already holds: their samples are duplicates.

    Asked before the insert (`INSERT OR IGNORE` does not say which rows it skipped), in the
    same write transaction, so no other writer can add one in between.
    """
    wanted: dict[str, set[int]] = {}
    for site, samples in batches:
        wanted.setdefault(site, set()).update(s.seq for s in samples)
    out: dict[str, set[int]] = {}
    for site, seqs in wanted.items():
        listed = sorted(seqs)
        got: set[int] = set()
        for i in range(0, len(listed), 500):
            chunk = listed[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT seq FROM samples WHERE site = ? AND seq IN ({marks})"
            got.update(r[0] for r in db.execute(sql, (site, *chunk)))
        out[site] = got
    return out
