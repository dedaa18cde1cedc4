"""The market's requests, offers, clearings, orders and settlements on SQLite: a restart keeps them.

The DR store's pattern (`cloud_controller/dr/store.py`): its own file, WAL, a busy timeout,
one lock, explicit statements. Each row holds the wire model's JSON
(`protocols.market`), validated again when read back, plus the columns queries need
(status, FSP, congestion point).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from cloud_controller.store.sqlite_file import open_sqlite
from protocols.market import MarketOffer, MarketOrder, MarketRequest, MarketSettlement

__all__ = ["MarketStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS market_requests (
    request_id TEXT PRIMARY KEY, congestion_point TEXT NOT NULL, status TEXT NOT NULL,
    received REAL NOT NULL, json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS market_offers (
    offer_id TEXT PRIMARY KEY, fsp TEXT NOT NULL, congestion_point TEXT NOT NULL,
    status TEXT NOT NULL, received REAL NOT NULL, json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS market_clearings (
    clearing_id TEXT PRIMARY KEY, at REAL NOT NULL, json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS market_orders (
    order_id TEXT PRIMARY KEY, fsp TEXT NOT NULL, clearing_id TEXT NOT NULL, json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS market_settlements (
    order_id TEXT PRIMARY KEY, fsp TEXT NOT NULL, json TEXT NOT NULL
);
"""


class MarketStore:
    """Thread-safe (one lock), like the controller's other SQLite stores."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = open_sqlite(path, SCHEMA)

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- requests ---------------------------------------------------------------------

    def put_request(self, req: MarketRequest, status: str, received_ts: float) -> None:
        """Insert or replace (a revision replaces its request)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO market_requests VALUES (?, ?, ?, ?, ?)",
                (req.request_id, req.congestion_point, status, received_ts, req.model_dump_json()),
            )

    def set_request_status(self, request_id: str, status: str) -> None:
        """Mark a request open, cleared or partial."""
        with self._lock:
            self._db.execute(
                "UPDATE market_requests SET status = ? WHERE request_id = ?", (status, request_id)
            )

    def requests(self, status: str | None = None) -> list[tuple[MarketRequest, str]]:
        """(request, status), oldest first."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = self._all(
            f"SELECT json, status FROM market_requests {where} ORDER BY received, request_id", args
        )
        return [(MarketRequest.model_validate_json(j), str(s)) for j, s in rows]

    def request(self, request_id: str) -> tuple[MarketRequest, str] | None:
        """(request, status) of `request_id`, or None."""
        rows = self._all("SELECT json, status FROM market_requests WHERE request_id = ?", (request_id,))
        return (MarketRequest.model_validate_json(rows[0][0]), str(rows[0][1])) if rows else None

    # -- offers -----------------------------------------------------------------------

    def put_offer(self, offer: MarketOffer, status: str, received_ts: float) -> None:
        """Insert or replace an offer with its status and the time it reached the book."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO market_offers VALUES (?, ?, ?, ?, ?, ?)",
                (
                    offer.offer_id,
                    offer.fsp,
                    offer.congestion_point,
                    status,
                    received_ts,
                    offer.model_dump_json(),
                ),
            )

    def set_offer_status(self, offer_id: str, status: str) -> None:
        """Mark an offer open, revoked, expired, ordered, not_ordered or refused."""
        with self._lock:
            self._db.execute("UPDATE market_offers SET status = ? WHERE offer_id = ?", (status, offer_id))

    def offers(
        self, *, fsp: str | None = None, status: str | None = None
    ) -> list[tuple[MarketOffer, str, float]]:
        """(offer, status, received timestamp), oldest first; of one FSP and/or status if given."""
        conds, args = [], []
        if fsp is not None:
            conds.append("fsp = ?")
            args.append(fsp)
        if status is not None:
            conds.append("status = ?")
            args.append(status)
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        rows = self._all(
            f"SELECT json, status, received FROM market_offers {where} ORDER BY received, offer_id",
            tuple(args),
        )
        return [(MarketOffer.model_validate_json(j), str(s), float(r)) for j, s, r in rows]

    def offer(self, offer_id: str) -> tuple[MarketOffer, str, float] | None:
        """(offer, status, received timestamp) of `offer_id`, or None."""
        rows = self._all("SELECT json, status, received FROM market_offers WHERE offer_id = ?", (offer_id,))
        return (
            (MarketOffer.model_validate_json(rows[0][0]), str(rows[0][1]), float(rows[0][2]))
            if rows
            else None
        )

    # -- clearings, orders, settlements -----------------------------------------------

    def put_clearing(
        self, clearing_id: str, at_ts: float, summary: dict[str, Any], orders: list[MarketOrder]
    ) -> None:
        """A clearing's summary and its orders, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO market_clearings VALUES (?, ?, ?)",
                    (clearing_id, at_ts, json.dumps(summary)),
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO market_orders VALUES (?, ?, ?, ?)",
                    [(o.order_id, o.fsp, clearing_id, o.model_dump_json()) for o in orders],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def clearings(self) -> list[dict[str, Any]]:
        """Every clearing's summary, oldest first."""
        return [
            json.loads(j) for (j,) in self._all("SELECT json FROM market_clearings ORDER BY at, clearing_id")
        ]

    def orders(self, fsp: str | None = None) -> list[MarketOrder]:
        """Every order (of one FSP if given), in the order they were cleared."""
        where, args = ("WHERE fsp = ?", (fsp,)) if fsp else ("", ())
        rows = self._all(f"SELECT json FROM market_orders {where} ORDER BY rowid", args)
        return [MarketOrder.model_validate_json(j) for (j,) in rows]

    def put_settlement(self, s: MarketSettlement) -> None:
        """Insert or replace the settlement of its order."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO market_settlements VALUES (?, ?, ?)",
                (s.order_id, s.fsp, s.model_dump_json()),
            )

    def settlements(self, fsp: str | None = None) -> list[MarketSettlement]:
        """Every settlement (of one FSP if given), oldest first."""
        where, args = ("WHERE fsp = ?", (fsp,)) if fsp else ("", ())
        rows = self._all(f"SELECT json FROM market_settlements {where} ORDER BY rowid", args)
        return [MarketSettlement.model_validate_json(j) for (j,) in rows]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
