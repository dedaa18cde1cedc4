"""The PostgreSQL store's leases, dispatch-period claims and write probe: the rows that fence a dispatcher.

Each function is one call of `PostgresStore` on a cursor of its transaction (`_tx`). The
lease is one upsert whose WHERE Postgres evaluates on the locked newest row (`ACQUIRE_LEASE`,
`postgres_schema.py`), so of two contenders exactly one wins; see `postgres.py`.
"""

from __future__ import annotations

from cloud_controller.store.base import StoreError
from cloud_controller.store.postgres_schema import ACQUIRE_LEASE, CLAIM_PERIOD, Cursor
from cloud_controller.store.results import LeaseState

__all__ = ["acquire_lease", "claim_period", "probe_write", "read_lease", "release_lease"]


def acquire_lease(cur: Cursor, where: str, name: str, holder: str, now_s: float, ttl_s: float) -> LeaseState:
    """Take or renew lease `name` for `holder` until `now_s + ttl_s`, unless another holds it unexpired.

    The token grows by one whenever the lease changes hands (or is taken again after a
    release), never on a renewal. `where` names the database in the error of a lease gone.
    """
    expires = now_s + ttl_s
    cur.execute(ACQUIRE_LEASE, {"name": name, "holder": holder, "expires": expires, "now": now_s})
    won = cur.fetchone()
    if won is not None:
        return LeaseState(name, holder, int(won[0]), expires, held=True)
    cur.execute("SELECT holder, token, expires_at FROM leases WHERE name = %s", (name,))
    row = cur.fetchone()
    if row is None:  # pragma: no cover - leases are never deleted
        raise StoreError(f"PostgreSQL store {where}: lease {name!r} vanished")
    return LeaseState(name, str(row[0]), int(row[1]), float(row[2]), held=False)


def release_lease(cur: Cursor, name: str, holder: str) -> bool:
    """End `holder`'s lease now (the token is kept, so the next holder's is larger); False if not held."""
    cur.execute(
        "UPDATE leases SET expires_at = 0 WHERE name = %s AND holder = %s AND expires_at > 0",
        (name, holder),
    )
    return cur.rowcount > 0


def read_lease(cur: Cursor, name: str) -> tuple[str, int, float] | None:
    """(holder, token, expires_at) of lease `name` as stored, or None if never taken."""
    cur.execute("SELECT holder, token, expires_at FROM leases WHERE name = %s", (name,))
    row = cur.fetchone()
    return None if row is None else (str(row[0]), int(row[1]), float(row[2]))


def claim_period(cur: Cursor, name: str, holder: str, token: int, period_s: float, now_s: float) -> bool:
    """Claim the period starting at `period_s` for lease `name`'s holder (see `Store.claim_period`)."""
    args = {"name": name, "holder": holder, "token": token, "period": period_s, "now": now_s}
    cur.execute(CLAIM_PERIOD, args)
    return cur.fetchone() is not None


def probe_write(cur: Cursor, name: str, now_s: float) -> None:
    """A real write the readiness check makes: raises if the database does not take it."""
    cur.execute(
        "INSERT INTO probes (name, ts) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET ts = excluded.ts",
        (name, now_s),
    )
