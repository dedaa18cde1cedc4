"""The ISP rollups (`store/rollups.py`) against the raw path, on SQLite and PostgreSQL.

The case is written the hard way: 3 sites, 23 days with a missing ISP and a missing day,
bad, null and other-point samples, two samples at the same instant, messages sent out of
order (an ISP's later samples stored before its earlier ones), resent messages with other
values (a duplicate must not count), a seq twice in one batch, and all three write paths
(`write_samples`, `write_batches` of several sites, a batch of one). The rollup read must
equal the raw read bit for bit on SQLite (same summation order) and within 1e-12 on
PostgreSQL (its `avg` rounds in its own order). A store from before the rollups is
backfilled when opened.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from cloud_controller.store import SqliteStore, Store
from cloud_controller.store.buckets import series_bucket_means
from cloud_controller.store.postgres import PostgresStore
from cloud_controller.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION
from cloud_controller.store.sqlite import SCHEMA
from gridflex.ops.postgres import LoopbackPostgres
from protocols.assets import Points
from protocols.messages import Quality, Sample

pytestmark = pytest.mark.integration

T0 = datetime(2030, 1, 1, tzinfo=UTC)
DAYS = 23
SITES = ("a", "b", "c")
P = Points.METER_P_KW
END = T0 + timedelta(days=DAYS)
MESSAGE = 40  # samples per message


def _kw(site: int, k: int, j: int) -> float:
    """Not round, different per site, ISP and sample."""
    return 5.0 + ((site * 7919 + k * 104729 + j * 1299709) % 4500) / 100.0 + 1.0 / 3.0


@cache
def _samples(site: int) -> tuple[Sample, ...]:
    """The site's samples in seq order (seq order = ts order, except where messages are shuffled)."""
    out: list[Sample] = []

    def add(ts: datetime, value: float | None, quality: Quality = "good", point: str = P.point) -> None:
        out.append(
            Sample(seq=len(out), asset=P.asset, point=point, value=value, unit="kW", ts=ts, quality=quality)
        )

    for k in range(DAYS * 96):
        isp = T0 + timedelta(minutes=15 * k)
        if (site == 1 and k == 20 * 96 + 70) or (site == 2 and k // 96 == 5):
            continue  # a missing ISP (site b), a missing day (site c)
        for j, offset_s in enumerate((0.0, 299.5, 899.999)[: 1 + (k + site) % 3]):
            add(isp + timedelta(seconds=offset_s), _kw(site, k, j))
        if k % 41 == 0:  # a second sample at the same instant as one above
            add(isp + timedelta(seconds=0.0), _kw(site, k, 7))
        if k % 97 == 0:
            add(isp + timedelta(seconds=450), 1e6, quality="bad")
            add(isp + timedelta(seconds=451), None, quality="stale")
            add(isp + timedelta(seconds=452), -1e6, point="q_kvar")
    return tuple(out)


def _messages(site: int) -> list[tuple[str, list[Sample]]]:
    samples = _samples(site)
    return [(SITES[site], list(samples[i : i + MESSAGE])) for i in range(0, len(samples), MESSAGE)]


def _write_the_hard_way(store: Store) -> int:
    """Every site's samples through all write paths, shuffled, with resends; returns the resent count."""
    rng = random.Random(21)
    messages = [m for site in range(len(SITES)) for m in _messages(site)]
    rng.shuffle(messages)  # out of order: an ISP's later samples often arrive first
    resent = 0
    i = 0
    while i < len(messages):
        take = rng.choice((1, 1, 3, 5))
        group = messages[i : i + take]
        i += take
        if rng.random() < 0.1:  # a resend of an earlier message with other values: a duplicate
            site, old = messages[rng.randrange(i)]
            group.append((site, [s.model_copy(update={"value": 1e6}) for s in old if s.value is not None]))
            resent += 1
        if len(group) == 1 and rng.random() < 0.5:
            store.write_samples(*group[0])
        else:
            if rng.random() < 0.2:  # a seq twice in one batch: the second is the duplicate
                site, first = group[0]
                group.append((site, [first[0].model_copy(update={"value": -1e6})]))
            store.write_batches(group)
    return resent


def _close(a: Any, b: Any, store: Store) -> bool:
    if isinstance(store, SqliteStore):
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.allclose(a, b, rtol=1e-12, atol=0.0, equal_nan=True))


def _pg(request: pytest.FixtureRequest, dsn: str) -> PostgresStore:
    server: LoopbackPostgres = request.getfixturevalue("pg_server")
    return PostgresStore(dsn, password=server.password)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind (Postgres: the session's schema, emptied)."""
    st: Store = (
        SqliteStore(tmp_path / "cloud.sqlite")
        if request.param == "sqlite"
        else _pg(request, request.getfixturevalue("pg_dsn"))
    )
    try:
        yield st
    finally:
        st.close()


@cache
def _days_with_data() -> int:
    """Rollup rows the case needs: (site, point, UTC day) with a good sample."""
    return len(
        {
            (site, s.asset, s.point, int(s.ts.timestamp() // 86_400))
            for i, site in enumerate(SITES)
            for s in _samples(i)
            if s.quality == "good"
        }
    )


def _rollup_rows(store: Store) -> int:
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            return int(db.execute("SELECT count(*) FROM isp_rollups").fetchone()[0])
    assert isinstance(store, PostgresStore)
    with store._tx() as cur:  # the store's own connection: its schema and password
        cur.execute("SELECT count(*) FROM isp_rollups")
        row = cur.fetchone()
    return int(row[0]) if row else -1


def _check_against_raw(store: Store) -> None:
    sites = [*SITES, "nobody"]
    got = store.read_bucket_means(sites, P, T0, END, 900)
    raw = store.read_bucket_means(sites, P, T0, END, 900, rollups=False)
    assert got.shape == raw.shape == (4, DAYS * 96)
    assert _close(got, raw, store)
    want = [
        series_bucket_means(store.read_series(s, P.asset, P.point, T0, END), T0, 900, DAYS * 96)
        for s in SITES
    ]
    assert _close(got[:3], np.stack(want), store)
    # the gaps stay NaN, the duplicates (1e6, -1e6) counted nowhere
    assert (
        np.isnan(got[1, 20 * 96 + 70]) and np.isnan(got[2, 5 * 96 : 6 * 96]).all() and np.isnan(got[3]).all()
    )
    assert int(np.isnan(got[:3]).sum()) == 1 + 96
    assert float(np.nanmax(got[:3])) < 60.0 and float(np.nanmin(got[:3])) > 5.0
    assert got[0, 41] == pytest.approx((_kw(0, 41, 0) + _kw(0, 41, 7) + _kw(0, 41, 1) + _kw(0, 41, 2)) / 4)
    # several ISPs a bucket (an hour, a day, 75 min: not dividing the window): within rounding
    for step_s in (1800, 3600, 86_400, 4500):
        got = store.read_bucket_means(sites, P, T0, END, step_s)
        raw = store.read_bucket_means(sites, P, T0, END, step_s, rollups=False)
        assert got.shape == raw.shape
        assert np.allclose(got, raw, rtol=1e-12, atol=0.0, equal_nan=True)
    # a window inside the data on ISP boundaries (ending mid-day) reads the rollups too
    start, end = T0 + timedelta(days=3, hours=5), T0 + timedelta(days=9, minutes=45)
    got = store.read_bucket_means(SITES, P, start, end, 900)
    raw = store.read_bucket_means(SITES, P, start, end, 900, rollups=False)
    assert got.shape == (3, 6 * 96 - 20 + 3) and _close(got, raw, store)


def test_rollup_read_equals_the_raw_read_after_out_of_order_and_duplicate_writes(store: Store) -> None:
    resent = _write_the_hard_way(store)
    assert resent > 0
    stored = sum(len(_samples(i)) for i in range(len(SITES)))
    assert store.count_samples() == stored  # the resends were duplicates
    assert _rollup_rows(store) == _days_with_data()  # one row per site, point and day with data
    _check_against_raw(store)


def test_a_late_sample_into_a_settled_isp_is_folded_in(store: Store) -> None:
    for site in range(len(SITES)):
        store.write_batches(_messages(site))
    before = store.read_bucket_means(["a"], P, T0, END, 900)
    late = Sample(
        seq=10**6, asset=P.asset, point=P.point, value=1.0, unit="kW", ts=T0 + timedelta(seconds=10)
    )
    assert store.write_samples("a", [late]).inserted == 1
    after = store.read_bucket_means(["a"], P, T0, END, 900)
    assert after[0, 0] == pytest.approx((_kw(0, 0, 0) + _kw(0, 0, 7) + 1.0) / 3)
    assert np.array_equal(np.delete(after, 0, axis=1), np.delete(before, 0, axis=1), equal_nan=True)
    assert store.write_samples("a", [late.model_copy(update={"value": 99.0})]).duplicates == 1
    assert store.read_bucket_means(["a"], P, T0, END, 900)[0, 0] == after[0, 0]


def test_rollups_left_stale_by_a_writer_without_them_are_rebuilt(store: Store) -> None:
    for site in range(len(SITES)):
        store.write_batches(_messages(site))
    cls = type("WithoutRollups", (type(store),), {"KEEP_ROLLUPS": False})
    old = cls(store.path) if isinstance(store, SqliteStore) else None
    if isinstance(store, PostgresStore):
        old = cls(store._dsn, password=store._password)  # the same schema, another connection
    assert old is not None
    late = Sample(
        seq=10**6, asset=P.asset, point=P.point, value=1.0, unit="kW", ts=T0 + timedelta(seconds=10)
    )
    old.write_samples("a", [late])  # an old controller on the same store: samples only
    old.close()
    stale = store.read_bucket_means(["a"], P, T0, END, 900)
    raw = store.read_bucket_means(["a"], P, T0, END, 900, rollups=False)
    assert not _close(stale, raw, store)  # the rollups missed it
    assert store.rebuild_rollups() == _days_with_data()
    _check_against_raw(store)


def _old_sqlite(path: Path) -> None:
    """A file as the store made it before the rollups (user_version 0), with the case's samples in."""
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA)
    db.execute("BEGIN")
    for i, site in enumerate(SITES):
        db.executemany(
            "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (site, s.seq, s.asset, s.point, s.ts.timestamp(), s.value, s.unit, s.quality)
                for s in _samples(i)
            ],
        )
    db.execute("COMMIT")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    db.close()


def test_an_old_sqlite_file_is_backfilled_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _old_sqlite(path)
    store = SqliteStore(path)
    try:
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == 1
            assert db.execute("SELECT count(*) FROM isp_rollups").fetchone()[0] == _days_with_data()
        _check_against_raw(store)
        _write_the_hard_way(store)  # all duplicates now: nothing changes
        _check_against_raw(store)
    finally:
        store.close()
    again = SqliteStore(path)  # opened again: not migrated twice
    try:
        _check_against_raw(again)
    finally:
        again.close()


def test_an_old_postgres_schema_is_backfilled_by_migration_6(request: pytest.FixtureRequest) -> None:
    server: LoopbackPostgres = request.getfixturevalue("pg_server")
    schema = server.fresh_schema()
    dsn = server.dsn(schema)
    with psycopg.connect(dsn, password=server.password, autocommit=True) as db, db.cursor() as cur:
        cur.execute(
            "CREATE TABLE schema_version "
            "(version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), note text NOT NULL)"
        )
        for version in range(1, 6):  # the schema as it was before the rollups
            note = MIGRATIONS[version](cur)
            cur.execute("INSERT INTO schema_version (version, note) VALUES (%s, %s)", (version, note))
        for i, site in enumerate(SITES):
            rows = [(site, s.seq, s.asset, s.point, s.ts, s.value, s.unit, s.quality) for s in _samples(i)]
            cur.executemany("INSERT INTO sample_keys VALUES (%s, %s)", [r[:2] for r in rows])
            cur.executemany("INSERT INTO samples VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
    assert SCHEMA_VERSION == 6
    store = PostgresStore(dsn, password=server.password)
    try:
        assert _rollup_rows(store) == _days_with_data()
        _check_against_raw(store)
        _write_the_hard_way(store)
        _check_against_raw(store)
    finally:
        store.close()
    with psycopg.connect(dsn, password=server.password) as db:
        noted = db.execute("SELECT note FROM schema_version WHERE version = 6").fetchone()
    assert noted is not None and f"{_days_with_data()} rows backfilled" in str(noted[0])


@pytest.mark.parametrize("kind", [pytest.param("sqlite", marks=pytest.mark.slow), "postgres"])
def test_two_writer_processes_interleaving_a_sites_batches_keep_the_rollups_exact(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Batch b of every site goes to writer b mod 2 (their own connections): ISPs split between them.

    SQLite's variant is in the slow run (its writers take turns on the file's write lock;
    PostgreSQL's take the site's advisory lock, the case worth the default run's seconds).
    """
    from gridflex.bench.store import T0 as BENCH_T0
    from gridflex.bench.store import bench_store_writers

    password = None
    if kind == "sqlite":
        location = str(tmp_path / "two.sqlite")
    else:
        server: LoopbackPostgres = request.getfixturevalue("pg_server")
        location, password = server.dsn(server.fresh_schema()), server.password
    fig = bench_store_writers(
        "sqlite" if kind == "sqlite" else "postgres",
        2,
        location=location,
        password=password,
        n_sites=3,
        n_batches=8,
        size=150,  # 150 s a batch: most ISPs get samples from both writers
    )
    assert fig.watermarks_ok and fig.samples == 3 * 8 * 150
    store: Store = (
        SqliteStore(Path(location)) if kind == "sqlite" else PostgresStore(location, password=password)
    )
    try:
        sites = [f"s{i:03d}" for i in range(3)]
        start, end = BENCH_T0, BENCH_T0 + timedelta(seconds=1800)  # on ISP boundaries: the rollups
        got = store.read_bucket_means(sites, P, start, end, 900)
        raw = store.read_bucket_means(sites, P, start, end, 900, rollups=False)
        assert got.shape == (3, 2) and _close(got, raw, store)
        assert got[0, 0] == pytest.approx(sum(range(900)) / 900)  # values are the seqs, 1 s apart
        assert got[2, 1] == pytest.approx(sum(range(900, 1200)) / 300)
    finally:
        store.close()
