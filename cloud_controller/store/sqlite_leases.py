"""The SQLite store's leases, dispatch-period claims and write probe: the rows that fence a dispatcher.

Each function is one call of `SqliteStore` on its connection; the caller holds the store's
lock. The read-modify-writes run in one `BEGIN IMMEDIATE` transaction (SQLite's write lock),
so two processes on one file cannot interleave them.
"""

from __future__ import annotations

import sqlite3

from cloud_controller.store.results import LeaseState

__all__ = ["acquire_lease", "claim_period", "probe_write", "read_lease", "release_lease"]


def acquire_lease(db: sqlite3.Connection, name: str, holder: str, now_s: float, ttl_s: float) -> LeaseState:
    """Take or renew lease `name` for `holder` until `now_s + ttl_s`, unless another holds it unexpired.

    One transaction under SQLite's write lock, so two processes on one file cannot both
    win. The fencing token grows by one whenever the lease changes hands (or is taken
    again after a release), never on a renewal: a later holder always has a larger token.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT holder, token, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
        if row is not None and row[0] != holder and row[2] > now_s:
            db.execute("COMMIT")
            return LeaseState(name, str(row[0]), int(row[1]), float(row[2]), held=False)
        # a late renewal of one's own lease that nobody took meanwhile keeps the token (a
        # loaded loop on an accelerated clock); only a new holder or a release bumps it
        renewal = row is not None and row[0] == holder and row[2] > 0
        token = int(row[1]) if renewal else (int(row[1]) + 1 if row is not None else 1)
        expires = now_s + ttl_s
        db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)", (name, holder, token, expires))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return LeaseState(name, holder, token, expires, held=True)


def release_lease(db: sqlite3.Connection, name: str, holder: str) -> bool:
    """End `holder`'s lease now (the token is kept, so the next holder's is larger); False if not held."""
    cur = db.execute(
        "UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ? AND expires_at > 0",
        (name, holder),
    )
    return cur.rowcount > 0


def read_lease(db: sqlite3.Connection, name: str) -> tuple[str, int, float] | None:
    """(holder, token, expires_at) of lease `name` as stored, or None if never taken."""
    row = db.execute("SELECT holder, token, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
    return None if row is None else (str(row[0]), int(row[1]), float(row[2]))


def claim_period(
    db: sqlite3.Connection, name: str, holder: str, token: int, period_s: float, now_s: float
) -> bool:
    """Claim the period starting at `period_s` for lease `name`'s holder (see `Store.claim_period`).

    One transaction under SQLite's write lock: the lease check and the claim cannot interleave
    with a takeover.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        held = db.execute(
            "SELECT 1 FROM leases WHERE name = ? AND holder = ? AND token = ? AND expires_at > ?",
            (name, holder, token, now_s),
        ).fetchone()
        last = db.execute("SELECT period_s FROM dispatch_periods WHERE name = ?", (name,)).fetchone()
        ok = held is not None and (last is None or float(last[0]) < period_s)
        if ok:
            db.execute("INSERT OR REPLACE INTO dispatch_periods VALUES (?, ?, ?)", (name, period_s, token))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return ok


def probe_write(db: sqlite3.Connection, name: str, now_s: float) -> None:
    """A real write (under the write lock) the readiness check makes: raises if the file is not writable."""
    db.execute("INSERT OR REPLACE INTO probes VALUES (?, ?)", (name, now_s))
