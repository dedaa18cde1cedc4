"""`gridflex bench settlement-orders`: what `POST /market/settlements` costs for N orders, per-order vs one array read.

The case (seeded): `sites` sites on a fresh SQLite store, metered 17:00-20:00 (the order's
12 ISPs, one sample each) on the 21 days before the settled day and on it; one order per
site on that day (12 ISPs, 1-15 kW, 0.1-2 EUR/kWh, NODES 5-working-day baseline). The two
paths run `Book.settle_period` (what the endpoint calls, in the store's write section;
without HTTP and JSON) on two market stores holding the same orders: **the anchor**, the per-order path
(`store_metering`: each order's sites and 21 days read and turned into dicts), and the
array path the endpoints now use (`batch_orders.ArrayMetering` with the book's prefetch).
Their settlements are checked equal field for field. Wall and CPU (this process) seconds.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from cloud_controller import SqliteStore
from cloud_controller.market import ArrayMetering, Book, MarketConfig, MarketStore, store_metering
from protocols.assets import Points
from protocols.market import MarketIsp, MarketOffer, MarketOption, MarketOrder

__all__ = ["OrdersFigures", "orders_figures"]

DAY = date(2030, 1, 22)  # a Tuesday
HISTORY_DAYS = 21
N_ISP = 12  # 17:00-20:00


@dataclass(frozen=True)
class OrdersFigures:
    """Seconds to settle `orders` orders both ways, and whether they settled alike."""

    orders: int
    per_order_s: float
    per_order_cpu_s: float
    array_s: float
    array_cpu_s: float
    reads: int  # array reads of the array path
    same: bool
    net_eur: float


def _start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 17, tzinfo=UTC)


def _meter(path: Path, sites: int, rng: np.random.Generator) -> None:
    """One sample per ISP, 5 min into it, 17:00-20:00 of the settled day and the 21 days before (bulk SQL)."""
    SqliteStore(path).close()
    days = [DAY - timedelta(days=k) for k in range(HISTORY_DAYS, -1, -1)]
    ts = [(_start(d) + timedelta(minutes=15 * k + 5)).timestamp() for d in days for k in range(N_ISP)]
    p = Points.METER_P_KW
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")
        for s in range(sites):
            values = rng.uniform(5.0, 50.0, len(ts)).tolist()
            db.executemany(
                "INSERT INTO samples (site, seq, asset, point, ts, value, unit, quality) "
                "VALUES (?, ?, ?, ?, ?, ?, 'kW', 'good')",
                (
                    (f"s{s}", q, p.asset, p.point, t, v)
                    for q, (t, v) in enumerate(zip(ts, values, strict=True))
                ),
            )
        db.execute("COMMIT")
    finally:
        db.close()


def _market(path: Path, sites: int, rng: np.random.Generator) -> MarketStore:
    market = MarketStore(path)
    t0 = _start(DAY)
    ts = t0 - timedelta(days=1)
    orders = []
    for s in range(sites):
        kw = rng.uniform(1.0, 15.0, N_ISP).tolist()
        price = float(rng.uniform(0.1, 2.0))
        isps = [MarketIsp(start=t0 + timedelta(minutes=15 * k), kw=v) for k, v in enumerate(kw)]
        offer = MarketOffer(
            offer_id=f"off-{s}",
            fsp="fsp-a",
            congestion_point="cp",
            ts=ts,
            expires=t0,
            options=[MarketOption(option_id="o1", isps=isps, price_eur_per_kwh=price)],
            sites=[f"s{s}"],
        )
        market.put_offer(offer, "ordered", ts.timestamp())
        orders.append(
            MarketOrder(
                order_id=f"ord-{s}", clearing_id="c1", offer_id=offer.offer_id, option_id="o1",
                fsp="fsp-a", congestion_point="cp", ts=ts, factor=1.0, isps=isps,
                price_eur_per_kwh=price, price_eur=sum(kw) * 0.25 * price,
            )
        )  # fmt: skip
    market.put_clearing("c1", ts.timestamp(), {}, orders)
    return market


def orders_figures(sites: int = 1000, *, seed: int = 21) -> OrdersFigures:
    """Settle one order per site (12 ISPs) through `settle_period` both ways on the same SQLite store."""
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    end, now = start + timedelta(days=1), start + timedelta(days=1)
    with tempfile.TemporaryDirectory(prefix="gridflex-settle-orders-") as tmp:
        folder = Path(tmp)
        _meter(folder / "meter.sqlite", sites, np.random.default_rng(seed))
        store = SqliteStore(folder / "meter.sqlite")
        store.rebuild_rollups()
        markets = [_market(folder / f"{k}.sqlite", sites, np.random.default_rng(seed + 1)) for k in "ab"]
        try:
            books = [Book(MarketConfig(), m) for m in markets]
            w, c = time.perf_counter(), time.process_time()
            ref = books[0].settle_period(start, end, now, store_metering(store))
            per_order = (time.perf_counter() - w, time.process_time() - c)
            meter = ArrayMetering(store)
            w, c = time.perf_counter(), time.process_time()
            got = books[1].settle_period(start, end, now, meter, prefetch=meter.prepare)
            array = (time.perf_counter() - w, time.process_time() - c)
        finally:
            store.close()
            for m in markets:
                m.close()
    dumps = [[s.model_dump(exclude={"ts"}) for s in r.settlements] for r in (ref, got)]
    return OrdersFigures(
        orders=len(got.settlements),
        per_order_s=per_order[0],
        per_order_cpu_s=per_order[1],
        array_s=array[0],
        array_cpu_s=array[1],
        reads=meter.reads,
        same=dumps[0] == dumps[1] and not ref.failed and not got.failed and len(got.new) == sites,
        net_eur=sum(s.net_eur for s in got.settlements),
    )
