"""The fenced period claim (`Store.claim_period`) on SQLite and PostgreSQL alike, and what it prevents.

A successor that takes the lease within a period its predecessor already dispatched must
not dispatch that period again: the claim is refused, the period is skipped
(`periods_skipped`), and the next boundary is planned. A holder whose lease has passed to
another (a paused process) cannot claim at all, even a later period.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_controller.lease import DISPATCH_LEASE
from cloud_controller.store import SqliteStore, Store
from gridflex.ops.postgres import LoopbackPostgres

pytestmark = pytest.mark.integration

T0 = 1_900_000_020.0  # a period start (POSIX s), 60 s periods
TTL_S = 30.0


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened: Store = SqliteStore(tmp_path / "claim.sqlite")
    else:
        from cloud_controller.store.postgres import PostgresStore

        pg: LoopbackPostgres = request.getfixturevalue("pg_server")
        opened = PostgresStore(pg.dsn(pg.fresh_schema()), password=pg.password)
    try:
        yield opened
    finally:
        opened.close()


def test_a_period_is_claimed_once_and_only_by_the_live_holder(store: Store) -> None:
    first = store.acquire_lease(DISPATCH_LEASE, "a", T0, TTL_S)
    assert store.claim_period(DISPATCH_LEASE, "a", first.token, T0, T0 + 1)
    assert not store.claim_period(DISPATCH_LEASE, "a", first.token, T0, T0 + 2)  # the same period again
    assert not store.claim_period(DISPATCH_LEASE, "b", first.token, T0 + 60, T0 + 2)  # not the holder
    # a expires (killed after dispatching T0); b takes over still within T0's period
    second = store.acquire_lease(DISPATCH_LEASE, "b", T0 + 31, TTL_S)
    assert second.held and second.token == first.token + 1
    assert not store.claim_period(DISPATCH_LEASE, "b", second.token, T0, T0 + 31)  # a dispatched it
    assert not store.claim_period(DISPATCH_LEASE, "a", first.token, T0 + 60, T0 + 60)  # stale a: fenced
    assert store.claim_period(DISPATCH_LEASE, "b", second.token, T0 + 60, T0 + 60)  # the next period
    # a holder past its own expiry claims nothing (a paused process that still thinks it holds)
    assert not store.claim_period(DISPATCH_LEASE, "b", second.token, T0 + 120, T0 + 31 + TTL_S + 1)


async def test_a_successor_within_the_dispatched_period_skips_it_and_plans_the_next(
    tmp_path: Path, pg_server: LoopbackPostgres
) -> None:
    """The handover the claim exists for: A dispatched period k and exited cleanly (lease released at
    once), B takes over still within k — B skips k and claims k + 1. A manual clock makes "within k" exact.
    """
    from datetime import UTC, datetime

    from cloud_controller.config import load_cloud_config
    from cloud_controller.registry import load_registry
    from cloud_controller.service import CloudController
    from protocols.clock import SimClock

    from .controller_proc import PERIOD_S, PeriodPlanner, Setup, write_config

    clock = SimClock(datetime.fromtimestamp(T0, tz=UTC), speed=None)
    dsn = pg_server.dsn(pg_server.fresh_schema())
    cfg = load_cloud_config(write_config(tmp_path, "x", Setup(1, dsn, pg_server.password, clock, 300.0, 5.0)))
    registry = load_registry(tmp_path / "reg.yaml")
    a, b = (
        CloudController(cfg, registry, clock=clock, planner=PeriodPlanner(n), role="dispatch") for n in "ab"
    )
    try:
        assert a.lease is not None and b.lease is not None
        await a.lease.acquire()
        assert await a._claim_period()  # A plans period k
        clock.advance(10.0)
        assert a.lease.release()  # a clean exit, 10 s into k
        await b.lease.acquire()  # the first attempt: no expiry to wait for
        assert b.lease.token == (a.lease.status.token or 0) + 1
        assert not await b._claim_period() and b.stats.periods_skipped == 1  # k: A's already
        clock.advance(PERIOD_S - 10.0)  # the next boundary
        assert await b._claim_period() and b.stats.periods_skipped == 1
        kinds = [e.kind for e in reversed(b.store.read_events(site="controller"))]
        assert kinds == ["dispatch_lease_acquired", "dispatch_lease_released", "dispatch_lease_acquired"]
        assert a.lease.changes == {"acquired": 1, "lost": 0, "released": 1}
    finally:
        for c in (a, b):
            c.store.close()
            c.dr.close()
            c.market.close()
