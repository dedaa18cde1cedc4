"""The market's requests, offers, clearings, orders and settlements on SQLite or PostgreSQL: a restart keeps them.

The DR store's pattern (`cloud_controller/dr/store.py`): its own record database
(`cloud_controller.store.records`: its own SQLite file, or the shared PostgreSQL), explicit
statements, and the book's read-modify-writes inside `write()`. Each row holds the wire model's JSON
(`protocols.market`), validated again when read back, plus the columns queries need
(status, FSP, congestion point).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from cloud_controller.store.records import RecordDb, SqliteRecords
from protocols.market import (
    MarketDispute,
    MarketOffer,
    MarketOrder,
    MarketPrognosis,
    MarketRequest,
    MarketSettlement,
)

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
CREATE TABLE IF NOT EXISTS market_prognoses (
    offer_id TEXT PRIMARY KEY, fsp TEXT NOT NULL, received REAL NOT NULL, json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS market_frozen_forecasts (
    offer_id TEXT PRIMARY KEY, at REAL NOT NULL, json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS market_disputes (
    order_id TEXT PRIMARY KEY, fsp TEXT NOT NULL, status TEXT NOT NULL, json TEXT NOT NULL
);
"""


#: Upserts in the dialect SQLite and PostgreSQL share (a revision replaces its request, …).
_PUT_REQUEST = (
    "INSERT INTO market_requests VALUES (?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET "
    "congestion_point = excluded.congestion_point, status = excluded.status, "
    "received = excluded.received, json = excluded.json"
)
_PUT_OFFER = (
    "INSERT INTO market_offers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (offer_id) DO UPDATE SET "
    "fsp = excluded.fsp, congestion_point = excluded.congestion_point, status = excluded.status, "
    "received = excluded.received, json = excluded.json"
)
_PUT_CLEARING = (
    "INSERT INTO market_clearings VALUES (?, ?, ?) "
    "ON CONFLICT (clearing_id) DO UPDATE SET at = excluded.at, json = excluded.json"
)
_PUT_ORDER = (
    "INSERT INTO market_orders (order_id, fsp, clearing_id, json) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (order_id) DO UPDATE SET fsp = excluded.fsp, clearing_id = excluded.clearing_id, "
    "json = excluded.json"
)
_PUT_PROGNOSIS = (
    "INSERT INTO market_prognoses VALUES (?, ?, ?, ?) ON CONFLICT (offer_id) DO UPDATE SET "
    "fsp = excluded.fsp, received = excluded.received, json = excluded.json"
)
_PUT_FROZEN = "INSERT INTO market_frozen_forecasts VALUES (?, ?, ?) ON CONFLICT (offer_id) DO NOTHING"
_PUT_DISPUTE = (
    "INSERT INTO market_disputes (order_id, fsp, status, json) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, json = excluded.json"
)
_PUT_SETTLEMENT = (
    "INSERT INTO market_settlements (order_id, fsp, json) VALUES (?, ?, ?) "
    "ON CONFLICT (order_id) DO UPDATE SET fsp = excluded.fsp, json = excluded.json"
)


class MarketStore:
    """Thread-safe (the RecordDb's lock); the book's check-and-write goes inside `write()`."""

    def __init__(self, db: RecordDb | Path) -> None:
        self.db: RecordDb = SqliteRecords(db) if isinstance(db, Path) else db
        self.path = self.db.where
        self.db.apply_schema(SCHEMA)
        #: insertion order: SQLite's rowid, PostgreSQL's `pos` (bigserial)
        self._pos = "rowid" if self.db.dialect == "sqlite" else "pos"

    def write(self) -> AbstractContextManager[None]:
        """The market area's write section (one writer across controllers; `RecordDb.write`)."""
        return self.db.write()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.db.query(sql, args)

    # -- requests ---------------------------------------------------------------------

    def put_request(self, req: MarketRequest, status: str, received_ts: float) -> None:
        """Insert or replace (a revision replaces its request)."""
        self.db.execute(
            _PUT_REQUEST, (req.request_id, req.congestion_point, status, received_ts, req.model_dump_json())
        )

    def set_request_status(self, request_id: str, status: str) -> None:
        """Mark a request open, cleared or partial."""
        self.db.execute("UPDATE market_requests SET status = ? WHERE request_id = ?", (status, request_id))

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
        self.db.execute(
            _PUT_OFFER,
            (offer.offer_id, offer.fsp, offer.congestion_point, status, received_ts, offer.model_dump_json()),
        )

    def set_offer_status(self, offer_id: str, status: str) -> None:
        """Mark an offer open, revoked, expired, ordered, not_ordered or refused."""
        self.db.execute("UPDATE market_offers SET status = ? WHERE offer_id = ?", (status, offer_id))

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
        with self.db.write():
            self.db.execute(_PUT_CLEARING, (clearing_id, at_ts, json.dumps(summary)))
            self.db.execute_many(
                _PUT_ORDER, [(o.order_id, o.fsp, clearing_id, o.model_dump_json()) for o in orders]
            )

    def clearings(self) -> list[dict[str, Any]]:
        """Every clearing's summary, oldest first."""
        return [
            json.loads(j) for (j,) in self._all("SELECT json FROM market_clearings ORDER BY at, clearing_id")
        ]

    def orders(self, fsp: str | None = None) -> list[MarketOrder]:
        """Every order (of one FSP if given), in the order they were cleared."""
        where, args = ("WHERE fsp = ?", (fsp,)) if fsp else ("", ())
        rows = self._all(f"SELECT json FROM market_orders {where} ORDER BY {self._pos}", args)
        return [MarketOrder.model_validate_json(j) for (j,) in rows]

    def put_settlement(self, s: MarketSettlement) -> None:
        """Insert or replace the settlement of its order."""
        self.db.execute(_PUT_SETTLEMENT, (s.order_id, s.fsp, s.model_dump_json()))

    def settlements(self, fsp: str | None = None) -> list[MarketSettlement]:
        """Every settlement (of one FSP if given), oldest first."""
        where, args = ("WHERE fsp = ?", (fsp,)) if fsp else ("", ())
        rows = self._all(f"SELECT json FROM market_settlements {where} ORDER BY {self._pos}", args)
        return [MarketSettlement.model_validate_json(j) for (j,) in rows]

    # -- baselines: the FSP's prognoses, our frozen forecasts -----------------------------

    def put_prognosis(self, p: MarketPrognosis, received_ts: float) -> None:
        """Insert or replace the prognosis of its offer."""
        self.db.execute(_PUT_PROGNOSIS, (p.offer_id, p.fsp, received_ts, p.model_dump_json()))

    def prognosis(self, offer_id: str) -> MarketPrognosis | None:
        """The FSP's prognosis for `offer_id`, or None."""
        rows = self._all("SELECT json FROM market_prognoses WHERE offer_id = ?", (offer_id,))
        return MarketPrognosis.model_validate_json(rows[0][0]) if rows else None

    def prognoses(self, fsp: str | None = None) -> list[MarketPrognosis]:
        """Every prognosis (of one FSP if given)."""
        where, args = ("WHERE fsp = ?", (fsp,)) if fsp else ("", ())
        rows = self._all(f"SELECT json FROM market_prognoses {where} ORDER BY received, offer_id", args)
        return [MarketPrognosis.model_validate_json(j) for (j,) in rows]

    def freeze_forecast(self, offer_id: str, at_ts: float, kw: dict[str, float]) -> None:
        """Our forecast of `offer_id`'s sites (ISP start ISO -> kW), written once: never changed after."""
        self.db.execute(_PUT_FROZEN, (offer_id, at_ts, json.dumps(kw)))

    def frozen_forecast(self, offer_id: str) -> tuple[float, dict[str, float]] | None:
        """(frozen at, ISP start ISO -> kW) of `offer_id`, or None."""
        rows = self._all("SELECT at, json FROM market_frozen_forecasts WHERE offer_id = ?", (offer_id,))
        if not rows:
            return None
        kw = json.loads(rows[0][1])
        return float(rows[0][0]), {str(k): float(v) for k, v in kw.items()}

    # -- disputes ----------------------------------------------------------------------

    def put_dispute(self, d: MarketDispute) -> None:
        """Insert or replace the dispute of its order."""
        self.db.execute(_PUT_DISPUTE, (d.order_id, d.fsp, d.status, d.model_dump_json()))

    def dispute(self, order_id: str) -> MarketDispute | None:
        """The dispute of `order_id`'s settlement, or None."""
        rows = self._all("SELECT json FROM market_disputes WHERE order_id = ?", (order_id,))
        return MarketDispute.model_validate_json(rows[0][0]) if rows else None

    def disputes(self, fsp: str | None = None, status: str | None = None) -> list[MarketDispute]:
        """Every dispute (of one FSP and/or status if given), oldest first."""
        conds, args = [], []
        if fsp is not None:
            conds.append("fsp = ?")
            args.append(fsp)
        if status is not None:
            conds.append("status = ?")
            args.append(status)
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        rows = self._all(f"SELECT json FROM market_disputes {where} ORDER BY {self._pos}", tuple(args))
        return [MarketDispute.model_validate_json(j) for (j,) in rows]

    def close(self) -> None:
        """Close the database."""
        self.db.close()
