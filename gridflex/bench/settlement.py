"""`gridflex bench settlement`: a month of settlement for many sites, against a plain numpy pass, in one run.

The case (seeded): S sites metered per ISP over 51 days (21 days of history and the
30 settled days, 96 ISPs a day, 5-50 kW), each with an order on 10 of the 30 days
(17:00-20:00, 1-15 kW, 0.1-2 EUR/kWh). Timed:

- **settle_month** (`cloud_controller/market/batch.py`): NODES' 5-working-day baseline per
  site with its own event days skipped, delivered, deficiency, price, penalty, net;
- **anchor**: a plain numpy pass over the same arrays — the mean of 5 fixed earlier days
  (no calendar, no event days) and the same max/sum arithmetic: what the arithmetic alone costs;
- **per-order path** (`settlement.nodes_baseline` + `settle`, dicts per order, what
  `Book.settle_due` runs per order today) on the first few sites, scaled to S.

- **store, old path**: the meter data in a fresh SQLite store (one sample per ISP, 51
  days), the first few sites read back as `store_metering` did before issue 21's array
  read (`read_series` per site, ISP means) into the arrays, scaled to S;
- **store, the month** (`settlement_store.py`), on SQLite and on a loopback PostgreSQL: the
  ISP rollups backfilled from the samples, `metering.metered_month_kw` from the samples
  (raw path, the anchor) and from the rollups for all sites (or `array_sites`), then
  `settle_month` on what the rollups gave: the settlement of a month from the store; the
  two reads are checked equal and the net equal to the net settled from the arrays.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from cloud_controller import SqliteStore
from cloud_controller.market import Order, isp_means, nodes_baseline, settle, settle_month
from gridflex.bench.settlement_store import StoreMonth, postgres_month, sqlite_month
from gridflex.ops.postgres import LoopbackPostgres
from protocols.assets import Points

__all__ = ["SettlementFigures", "settlement_case", "settlement_figures"]

HISTORY_DAYS = 21
MONTH_DAYS = 30
N_ISP = 96
FIRST_DAY = date(2030, 1, 1)


@dataclass(frozen=True)
class SettlementFigures:
    """Seconds for one month of `sites`, and the totals (a check that all three settled the same case)."""

    sites: int
    orders: int
    batch_s: float
    anchor_s: float
    per_order_sites: int
    per_order_s: float  # for per_order_sites
    net_eur: float
    net_eur_per_order_sample: float
    net_eur_batch_sample: float
    store_sites: int
    store_read_s: float  # old path (read_series + ISP means), for store_sites
    store_read_cpu_s: float  # the same, CPU seconds of this process
    sqlite: StoreMonth  # the month from SQLite: raw read (anchor), rollup read, settle_month
    postgres: StoreMonth | None  # the same from PostgreSQL (None: not run)
    net_eur_array_sample: float  # the store's sites settled from the in-memory arrays

    @property
    def array_sites(self) -> int:
        """Sites written to the stores and read back."""
        return self.sqlite.sites

    @property
    def from_store_scaled_s(self) -> float:
        """The month from SQLite's rollups (read + settle_month), scaled to all sites (x1 when all were written)."""
        return self.sqlite.month_s * self.sites / max(1, self.array_sites)

    @property
    def store_read_scaled_s(self) -> float:
        """The old store read scaled to all sites."""
        return self.store_read_s * self.sites / max(1, self.store_sites)

    def scaled(self, seconds: float, measured_sites: int) -> float:
        """`seconds` measured on `measured_sites` sites, scaled to all sites."""
        return seconds * self.sites / max(1, measured_sites)

    @property
    def per_order_scaled_s(self) -> float:
        """The per-order path's time scaled to all sites."""
        return self.per_order_s * self.sites / max(1, self.per_order_sites)


def settlement_case(sites: int, *, seed: int = 1) -> tuple[Any, list[date], Any, Any]:
    """(metered (S, D, 96), days, ordered (S, 30, 96), price (S, 30)), seeded."""
    rng = np.random.default_rng(seed)
    days = [FIRST_DAY + timedelta(days=k) for k in range(HISTORY_DAYS + MONTH_DAYS)]
    metered = rng.uniform(5.0, 50.0, (sites, len(days), N_ISP))
    ordered = np.zeros((sites, MONTH_DAYS, N_ISP))
    for s in range(sites):
        for m in rng.choice(MONTH_DAYS, size=10, replace=False):
            ordered[s, m, 68:80] = rng.uniform(1.0, 15.0, 12)
    price = rng.uniform(0.1, 2.0, (sites, MONTH_DAYS))
    return metered, days, ordered, price


def _anchor(metered: Any, ordered: Any, price: Any) -> float:
    first = HISTORY_DAYS
    base = np.mean([metered[:, first - k : first - k + MONTH_DAYS, :] for k in range(1, 6)], axis=0)
    delivered = np.maximum(0.0, base - metered[:, first:, :])
    deficiency = np.maximum(0.0, ordered - delivered)
    net = (ordered.sum(axis=2) - deficiency.sum(axis=2)) * 0.25 * price
    return float(net.sum())


def _per_order(metered: Any, days: list[date], ordered: Any, price: Any, sites: int) -> float:
    net = 0.0
    for s in range(sites):
        history = {
            datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(minutes=15 * k): float(metered[s, j, k])
            for j, d in enumerate(days)
            for k in range(N_ISP)
        }
        events = {days[HISTORY_DAYS + m] for m in range(MONTH_DAYS) if ordered[s, m].any()}
        for m in range(MONTH_DAYS):
            if not ordered[s, m].any():
                continue
            d = days[HISTORY_DAYS + m]
            isps = [
                datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(minutes=15 * k) for k in range(N_ISP)
            ]
            kw = {t: float(ordered[s, m, k]) for k, t in enumerate(isps) if ordered[s, m, k] > 0}
            p = float(price[s, m])
            order = Order("o", "off", "opt", "fsp", "cp", 1.0, kw, p, sum(kw.values()) * 0.25 * p)
            base = nodes_baseline(history, list(kw), event_days=events)
            net += settle(order, base, {t: history[t] for t in kw}).net_eur
    return net


def _per_sample_read(store: SqliteStore, t0: datetime, n_days: int, sites: int) -> tuple[float, float, Any]:
    """The old path, timed (wall and CPU s): `read_series` per site, then ISP means (`store_metering` before)."""
    end = t0 + timedelta(days=n_days)
    out = np.empty((sites, n_days, N_ISP))
    start, cpu = time.perf_counter(), time.process_time()
    for s in range(sites):
        means = isp_means(
            store.read_series(f"s{s}", Points.METER_P_KW.asset, Points.METER_P_KW.point, t0, end)
        )
        out[s] = np.fromiter(means.values(), float, len(means)).reshape(n_days, N_ISP)
    return time.perf_counter() - start, time.process_time() - cpu, out


def _from_stores(
    metered: Any,
    days: list[date],
    ordered: Any,
    price: Any,
    store_sites: int,
    array_sites: int,
    *,
    postgres: bool,
) -> tuple[StoreMonth, StoreMonth | None, float, float]:
    """The month from SQLite (and PostgreSQL), and the old per-sample read on the first `store_sites` of SQLite.

    Returns (SQLite, PostgreSQL or None, old read wall s, old read CPU s).
    """
    part = metered[:array_sites]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.sqlite"
        lite = sqlite_month(path, part, days, HISTORY_DAYS, ordered, price)
        store = SqliteStore(path)
        try:
            t0 = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
            old_s, old_cpu_s, old = _per_sample_read(store, t0, len(days), store_sites)
        finally:
            store.close()
    if not np.allclose(old, metered[:store_sites]):
        raise AssertionError("the store gave back other values than written")
    pg_month = None
    if postgres:
        with LoopbackPostgres() as pg:
            pg_month = postgres_month(
                pg.dsn(pg.fresh_schema()), pg.password, pg.pid, part, days, HISTORY_DAYS, ordered, price
            )
    return lite, pg_month, old_s, old_cpu_s


def settlement_figures(
    sites: int = 1000,
    *,
    per_order_sites: int = 5,
    store_sites: int = 10,
    array_sites: int | None = None,
    postgres: bool = True,
) -> SettlementFigures:
    """Time the three ways on one seeded case, and the month from SQLite (and a loopback PostgreSQL)."""
    metered, days, ordered, price = settlement_case(sites)
    t0 = time.perf_counter()
    got = settle_month(metered, days, HISTORY_DAYS, ordered, price)
    batch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _anchor(metered, ordered, price)
    anchor_s = time.perf_counter() - t0
    n = min(per_order_sites, sites)
    t0 = time.perf_counter()
    sample_net = _per_order(metered, days, ordered, price, n)
    per_order_s = time.perf_counter() - t0
    n_array = sites if array_sites is None else max(1, min(array_sites, sites))
    n_store = min(store_sites, n_array)
    lite, pg_month, old_s, old_cpu_s = _from_stores(
        metered, days, ordered, price, n_store, n_array, postgres=postgres
    )
    return SettlementFigures(
        sites=sites,
        orders=int((ordered > 0).any(axis=2).sum()),
        batch_s=batch_s,
        anchor_s=anchor_s,
        per_order_sites=n,
        per_order_s=per_order_s,
        net_eur=float(got.net_eur.sum()),
        net_eur_per_order_sample=sample_net,
        net_eur_batch_sample=float(got.net_eur[:n].sum()),
        store_sites=n_store,
        store_read_s=old_s,
        store_read_cpu_s=old_cpu_s,
        sqlite=lite,
        postgres=pg_month,
        net_eur_array_sample=float(got.net_eur[:n_array].sum()),
    )
