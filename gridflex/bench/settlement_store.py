"""The settlement bench's store side: a fleet's meter month written to SQLite or PostgreSQL, read back two ways.

For each store: the samples go in by bulk SQL (setup, untimed; through `write_samples` a
month of 1,000 sites takes minutes on a shared machine), then the ISP rollups are built
from them by the store's own backfill (`rebuild_rollups`, timed: what migrating an old
store of this size costs), then `metering.metered_month_kw` reads the month twice: from the samples
(`read_bucket_means(rollups=False)`, the raw path: the anchor) and from the rollups, and
`settle_month` settles what the rollups gave. CPU seconds are this process's, and for
PostgreSQL also the server's (its processes' `/proc` counters; a query's work is there).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from cloud_controller import PostgresStore, SqliteStore
from cloud_controller.market import metered_month_kw, settle_month
from protocols.assets import Points

__all__ = ["StoreMonth", "postgres_month", "sqlite_month"]

N_ISP = 96


@dataclass(frozen=True)
class StoreMonth:
    """One store's figures for the fleet-month (seconds wall and CPU; `server_cpu` only for PostgreSQL)."""

    kind: str
    sites: int
    samples: int
    backfill_s: float
    backfill_cpu_s: float  # PostgreSQL: this process's and the server's
    raw_s: float  # read_bucket_means on the samples (the anchor)
    raw_cpu_s: float
    raw_server_cpu_s: float
    rollup_s: float  # read_bucket_means on the rollups
    rollup_cpu_s: float
    rollup_server_cpu_s: float
    settle_s: float  # settle_month on what the rollups gave
    net_eur: float
    same: bool  # rollups = samples (bit for bit on SQLite, 1e-12 on PostgreSQL) = what was written

    @property
    def month_s(self) -> float:
        """The month settled from the store: the rollup read and settle_month."""
        return self.rollup_s + self.settle_s


def _tree_cpu_s(pid: int | None) -> float:
    """CPU seconds of process `pid` and its children, living and reaped (Linux /proc); 0 without a pid."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        me, parent = int(entry), int(fields[1])
        if me == pid:
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        elif parent == pid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def _timed(fn: Any, server_pid: int | None = None) -> tuple[Any, float, float, float]:
    """(result, wall s, this process's CPU s, the server's CPU s)."""
    server = _tree_cpu_s(server_pid)
    wall, cpu = time.perf_counter(), time.process_time()
    got = fn()
    return (
        got,
        time.perf_counter() - wall,
        time.process_time() - cpu,
        _tree_cpu_s(server_pid) - server if server_pid else 0.0,
    )


def _months(
    store: Any,
    sites: int,
    days: list[date],
    history_days: int,
    ordered: Any,
    price: Any,
    server_pid: int | None,
) -> tuple[tuple[Any, float, float, float], tuple[Any, float, float, float], float, float]:
    names = [f"s{s}" for s in range(sites)]

    def read(rollups: bool) -> Any:
        return metered_month_kw(store, names, days[0], len(days), rollups=rollups)

    raw = _timed(lambda: read(False), server_pid)
    rolled = _timed(lambda: read(True), server_pid)
    t0 = time.perf_counter()
    got = settle_month(rolled[0], days, history_days, ordered[:sites], price[:sites])
    return raw, rolled, time.perf_counter() - t0, float(got.net_eur.sum())


def _same(kind: str, metered: Any, raw: Any, rolled: Any) -> bool:
    if kind == "sqlite":
        equal = bool(np.array_equal(raw, rolled))
    else:
        equal = bool(np.allclose(raw, rolled, rtol=1e-12, atol=0.0))
    return equal and bool(np.allclose(rolled, metered))


def sqlite_month(
    path: Path, metered: Any, days: list[date], history_days: int, ordered: Any, price: Any
) -> StoreMonth:
    """Write `metered` (sites, days, 96) to a fresh SQLite store at `path`, backfill, read it both ways."""
    sites = metered.shape[0]
    SqliteStore(path).close()  # the schema, at the rollups' version, empty
    t0 = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    n = len(days) * N_ISP
    ts = (t0.timestamp() + 900.0 * np.arange(n) + 300.0).tolist()
    asset, point = Points.METER_P_KW.asset, Points.METER_P_KW.point
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for s in range(sites):
            values = metered[s].reshape(n).tolist()
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO samples (site, seq, asset, point, ts, value, unit, quality) "
                "VALUES (?, ?, ?, ?, ?, ?, 'kW', 'good')",
                ((f"s{s}", q, asset, point, t, v) for q, (t, v) in enumerate(zip(ts, values, strict=True))),
            )
            db.execute("COMMIT")

    finally:
        db.close()
    store = SqliteStore(path)
    try:
        _, back_s, back_cpu_s, _ = _timed(store.rebuild_rollups)
        raw, rolled, settle_s, net = _months(store, sites, days, history_days, ordered, price, None)
    finally:
        store.close()
    return StoreMonth(
        "sqlite", sites, sites * n, back_s, back_cpu_s, raw[1], raw[2], 0.0, rolled[1], rolled[2], 0.0,
        settle_s, net, _same("sqlite", metered, raw[0], rolled[0]),
    )  # fmt: skip


def postgres_month(
    dsn: str,
    password: str,
    server_pid: int | None,
    metered: Any,
    days: list[date],
    history_days: int,
    ordered: Any,
    price: Any,
) -> StoreMonth:
    """The same on a PostgreSQL schema (`dsn`, migrated and empty), the server's CPU from `server_pid`."""
    sites = metered.shape[0]
    t0 = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    n = len(days) * N_ISP
    store = PostgresStore(dsn, password=password)
    try:
        with psycopg.connect(dsn, password=password) as db, db.cursor() as cur:  # setup (untimed)
            for s in range(sites):
                site = f"s{s}"
                cur.execute(
                    "INSERT INTO sample_keys SELECT %s, g FROM generate_series(0, %s) AS g", (site, n - 1)
                )
                cur.execute(
                    "INSERT INTO samples SELECT %s, g - 1, 'meter', 'p_kw', "
                    "to_timestamp(%s + 900 * (g - 1) + 300), v, 'kW', 'good' "
                    "FROM unnest(%s::float8[]) WITH ORDINALITY AS u(v, g)",
                    (site, t0.timestamp(), metered[s].reshape(n).tolist()),
                )
            db.commit()
            cur.execute("ANALYZE samples")
            db.commit()
        _, back_s, back_cpu_s, back_server_s = _timed(store.rebuild_rollups, server_pid)
        raw, rolled, settle_s, net = _months(store, sites, days, history_days, ordered, price, server_pid)
    finally:
        store.close()
    return StoreMonth(
        "postgres", sites, sites * n, back_s, back_cpu_s + back_server_s, raw[1], raw[2], raw[3], rolled[1], rolled[2],
        rolled[3], settle_s, net, _same("postgres", metered, raw[0], rolled[0]),
    )  # fmt: skip
