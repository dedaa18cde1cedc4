"""PostgreSQL-only behaviour: concurrent writer processes, migrations, reconnects, config and the service.

The contract both stores share is in test_store_contract.py; here is what only a shared
database has to get right: two worker processes writing interleaved seqs of the same
sites at once end with the right watermarks, every sample stored once and every
duplicate counted once.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig, load_cloud_config
from cloud_controller.live.types import AssetRef, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from cloud_controller.store import LeaseState, StoreError
from cloud_controller.store.postgres import PostgresStore, public_dsn
from cloud_controller.store.postgres_schema import SCHEMA_VERSION
from gridflex.ops.postgres import LoopbackPostgres
from protocols.assets import METER
from protocols.clock import SimClock
from protocols.errors import ConfigError
from tests.integration.store import pg_writer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
POINTS = pg_writer.POINTS  # what each of two writers reports
STOP_S = 60.0


def _store(pg: LoopbackPostgres, dsn: str) -> PostgresStore:
    return PostgresStore(dsn, password=pg.password)


def _check_shared_writes(
    pg: LoopbackPostgres, dsn: str, reports: list[dict[str, int]], n_workers: int
) -> None:
    """Every site's watermark at its last seq, every sample once, duplicates = attempts − stored."""
    n_site = pg_writer.N_BATCHES * pg_writer.BATCH
    attempts = sum(len(pg_writer.plan(w, n_workers)) for w in range(n_workers)) * pg_writer.BATCH
    store = _store(pg, dsn)
    try:
        assert store.watermarks() == {site: n_site - 1 for site in pg_writer.SITES}
        for site in pg_writer.SITES:
            assert store.count_samples(site) == n_site
            history = store.read_history(site, pg_writer.T0, pg_writer.T0 + timedelta(days=1))
            values = sorted(v for rows in history.values() for _, v in rows)
            assert values == [float(q) for q in range(n_site)]  # none lost, none twice
    finally:
        store.close()
    assert sum(r["inserted"] for r in reports) == n_site * len(pg_writer.SITES)
    assert sum(r["duplicates"] for r in reports) == attempts - n_site * len(pg_writer.SITES)
    assert all(r["inserted"] > 0 for r in reports)  # every worker stored some: they interleaved


def test_two_writers_on_separate_connections_agree_on_every_watermark(
    pg_server: LoopbackPostgres, pg_dsn: str
) -> None:
    """Two threads, two connections, in rounds: each round both write one half of the next two
    batches of every site at the same instant (A the later, so it lands after a hole that B's
    uncommitted batch fills; every third round each resends the other's too). After every round
    each site's watermark must be at its last seq: without the per-site lock a round's two
    transactions would not see each other and the watermark would stay at the hole (tried:
    37 of 100 rounds wrong). The two write different points, as batches split by the broker
    may: on one point the `latest` row's lock would serialize them and hide a missing lock.
    (The process variant below is slower to start: `slow`.)
    """
    n_rounds, batch = 12, pg_writer.BATCH
    stores = [_store(pg_server, pg_dsn) for _ in range(2)]
    barrier = threading.Barrier(2, timeout=30)
    seen: list[dict[str, int]] = []
    counts = [[0, 0], [0, 0]]  # per writer: inserted, duplicates

    def work(w: int) -> None:
        for r in range(n_rounds):
            mine = [2 * r + 1 - w] + ([2 * r + w] if r % 3 == 0 else [])
            barrier.wait()
            for site in pg_writer.SITES:
                for b in mine:
                    res = stores[w].write_samples(site, pg_writer.batch(b, POINTS[w]))
                    counts[w][0] += res.inserted
                    counts[w][1] += res.duplicates
            barrier.wait()
            if w == 0:
                seen.append(stores[0].watermarks())

    threads = [threading.Thread(target=work, args=(w,), name=f"writer-{w}") for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=STOP_S)
    for st in stores:
        st.close()
    assert not any(t.is_alive() for t in threads)
    assert seen == [dict.fromkeys(pg_writer.SITES, (2 * r + 2) * batch - 1) for r in range(n_rounds)]
    n_stored = 2 * n_rounds * batch * len(pg_writer.SITES)
    resent = sum(2 for r in range(n_rounds) if r % 3 == 0) * batch * len(pg_writer.SITES)
    assert counts[0][0] + counts[1][0] == n_stored and counts[0][1] + counts[1][1] == resent
    check = _store(pg_server, pg_dsn)
    try:
        for site in pg_writer.SITES:
            assert check.count_samples(site) == 2 * n_rounds * batch
            history = check.read_history(site, pg_writer.T0, pg_writer.T0 + timedelta(days=1))
            values = sorted(v for rows in history.values() for _, v in rows)
            assert values == [float(q) for q in range(2 * n_rounds * batch)]  # none lost, none twice
    finally:
        check.close()


def test_two_contenders_never_both_hold_the_lease_and_a_new_holder_always_has_a_larger_token(
    pg_server: LoopbackPostgres, pg_dsn: str
) -> None:
    """Each round the lease has expired and both ask at the same instant on their own connections."""
    holders = ("A", "B")
    stores = [_store(pg_server, pg_dsn) for _ in holders]
    n_rounds, ttl_s = 40, 5.0
    barrier = threading.Barrier(len(holders), timeout=30)
    got: dict[str, list[LeaseState]] = {h: [] for h in holders}

    def contend(i: int) -> None:
        for r in range(n_rounds):
            barrier.wait()
            got[holders[i]].append(
                stores[i].acquire_lease("dispatch", holders[i], now_s=10.0 * r, ttl_s=ttl_s)
            )

    threads = [threading.Thread(target=contend, args=(i,), name=f"lease-{h}") for i, h in enumerate(holders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=STOP_S)
    for st in stores:
        st.close()
    assert not any(t.is_alive() for t in threads)
    winners: list[tuple[str, int]] = []
    for r in range(n_rounds):
        answers = [got[h][r] for h in holders]
        held = [a for a in answers if a.held]
        assert len(held) == 1, (r, answers)  # exactly one holder per round
        assert all(
            a.holder == held[0].holder and a.token == held[0].token for a in answers
        )  # the loser sees it
        winners.append((held[0].holder, held[0].token))
    for (prev_holder, prev_token), (holder, token) in itertools.pairwise(winners):
        # a change of holder bumps the token; the same holder re-taking its expired lease keeps it
        assert token == (prev_token + 1 if holder != prev_holder else prev_token)
    assert winners[0][1] == 1


@pytest.mark.slow
def test_two_writer_processes_with_interleaved_seqs_agree_on_every_watermark(
    pg_server: LoopbackPostgres,
) -> None:
    """Two processes, started together, interleaved batches plus shared resends: the end state.

    Every sample stored once, each resend counted once as a duplicate, every watermark at its
    last seq. (A missed advance heals at a site's next write, so an end state alone cannot
    show a missing lock; the threaded test above checks after every round.)
    """
    schema = pg_server.fresh_schema()
    _store(
        pg_server, pg_server.dsn(schema)
    ).close()  # migrate once, so the workers race on samples, not on DDL
    n_workers = 2
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.store.pg_writer",
                pg_server.dsn(schema),
                str(pg_server.password_file),
                str(w),
                str(n_workers),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(n_workers)
    ]
    reports: list[dict[str, int]] = []
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:  # both connected: start them together
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            out, err = p.communicate(timeout=STOP_S)
            assert p.returncode == 0, err
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
    _check_shared_writes(pg_server, pg_server.dsn(schema), reports, n_workers)


def test_migrations_are_versioned_applied_once_and_a_newer_schema_is_refused(
    pg_server: LoopbackPostgres,
) -> None:
    schema = pg_server.fresh_schema()
    first = _store(pg_server, pg_server.dsn(schema))
    first.write_samples("b1", pg_writer.batch(0))
    assert first.schema_note.startswith("plain samples table")  # Debian's server has no timescaledb
    first.close()
    again = _store(pg_server, pg_server.dsn(schema))  # a restart: nothing re-created, the data is there
    assert again.count_samples("b1") == pg_writer.BATCH and again.highest_contiguous_seq("b1") == 9
    again.close()
    with psycopg.connect(pg_server.dsn(schema), password=pg_server.password, autocommit=True) as db:
        versions = db.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]  # each applied once, in order
        db.execute("INSERT INTO schema_version (version, note) VALUES (99, 'from the future')")
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        _store(pg_server, pg_server.dsn(schema))


def test_a_dropped_connection_fails_one_call_then_the_store_reconnects(
    pg_server: LoopbackPostgres, pg_dsn: str
) -> None:
    store = _store(pg_server, pg_dsn)
    store.write_samples("b1", pg_writer.batch(0))
    with psycopg.connect(pg_server.dsn(), password=pg_server.password, autocommit=True) as db:
        killed = db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'gridflex' AND pid <> pg_backend_pid()"
        ).fetchall()
    assert killed and all(ok for (ok,) in killed)
    with pytest.raises(StoreError, match=r"PostgreSQL store .*host=127\.0\.0\.1.*terminating connection"):
        store.probe_write("readyz", 1.0)
    assert store.write_samples("b1", pg_writer.batch(1)).watermark == 19
    store.close()


def test_an_unreachable_database_is_a_store_error_naming_it_without_the_password(
    pg_server: LoopbackPostgres,
) -> None:
    dsn = "host=127.0.0.1 port=1 user=gridflex dbname=postgres password=hunter2"
    assert sorted(public_dsn(dsn).split()) == ["dbname=postgres", "host=127.0.0.1", "port=1", "user=gridflex"]
    with pytest.raises(StoreError, match="port=1") as caught:
        PostgresStore(dsn)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("store", "reason"),
    [
        ({"kind": "postgres"}, "needs store.dsn"),
        ({"kind": "postgres", "dsn": "host=db user=gf password=x"}, "must not hold a password"),
        ({"kind": "postgres", "dsn": "postgresql://gf:x@db/gridflex"}, "must not hold a password"),
        ({"kind": "postgres", "dsn": "host=db = ="}, "not a PostgreSQL connection string"),
    ],
    ids=["no-dsn", "password-in-dsn", "password-in-url", "garbage"],
)
def test_store_config_for_postgres_is_validated(store: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        CloudConfig.model_validate({"store": store})


def test_cloud_yaml_for_postgres_resolves_the_password_file_and_names_a_dsn_with_a_password(
    tmp_path: Path,
) -> None:
    good = tmp_path / "cloud.yaml"
    good.write_text("store:\n  kind: postgres\n  dsn: host=db user=gridflex\n  password_file: secrets/pg\n")
    cfg = load_cloud_config(good)
    assert cfg.store.password_file == tmp_path / "secrets" / "pg" and cfg.store.dsn == "host=db user=gridflex"
    bad = tmp_path / "bad.yaml"
    bad.write_text("store:\n  kind: postgres\n  dsn: postgresql://gridflex:hunter2@db/gf\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:store: .*must not hold a password") as caught:
        load_cloud_config(bad)
    assert "hunter2" not in str(caught.value)


def test_the_controller_with_kind_postgres_stores_serves_history_and_is_ready_on_it(
    pg_server: LoopbackPostgres, pg_dsn: str
) -> None:
    cfg = CloudConfig.model_validate(
        {
            "store": {
                "kind": "postgres",
                "dsn": pg_dsn,
                "password_file": str(pg_server.password_file),
            },
            "control": {"dispatch": False},
        }
    )
    registry = Registry(sites=(SiteRef("b1", 0, (AssetRef(METER, "meter"),)),))
    ctl = CloudController(cfg, registry, clock=SimClock(datetime(2030, 1, 15, 1, tzinfo=UTC)))
    assert isinstance(ctl.store, PostgresStore) and ctl.history is ctl.store
    assert ctl.store.write_samples("b1", pg_writer.batch(0)).watermark == 9
    try:
        with TestClient(create_app(ctl)) as client:
            r = client.get(
                "/sites/b1/history",
                params={
                    "from": pg_writer.T0.isoformat(),
                    "to": (pg_writer.T0 + timedelta(hours=1)).isoformat(),
                },
            )
            assert r.status_code == 200, r.text
            assert {s["point"]: s["value"] for s in r.json()["series"]} == {
                "meter/p_kw": [float(q) for q in range(10)]
            }
            store_check = client.get("/readyz").json()["checks"]["store"]
        assert store_check["ok"] is True and "host=127.0.0.1" in store_check["detail"]
        assert pg_server.password not in store_check["detail"]
    finally:
        ctl.store.close()
