"""Dispatcher failover time (marker `bench`, printed): SIGKILL of the holder vs a clean exit, two processes.

The scenario is the integration test's (`tests/integration/failover/scenario.py`): two
controller processes (ingest + dispatcher each) on one loopback PostgreSQL and Mosquitto,
a shared 60 × SimClock (60 s period = 1 s wall), lease TTL 120 s / renew 15 s simulated
(2 s / 0.25 s wall). Per round: host seconds from the signal to the survivor's lease event,
and to its first command on the broker; periods missed. The anchor, measured in the same
run, is a clean exit (SIGTERM: the lease is released, the standby takes it at its next
attempt). Run: `.venv/bin/pytest -m bench -s tests/bench/test_failover_bench.py`
"""

from __future__ import annotations

import asyncio
import signal
import statistics
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud_controller.store.postgres import PostgresStore
from gridflex.ops.broker import MosquittoBroker
from gridflex.ops.postgres import LoopbackPostgres
from protocols.clock import SimClock
from tests.integration.failover.controller_proc import PERIOD_S, Setup
from tests.integration.failover.scenario import Outcome, run

pytestmark = pytest.mark.bench

SPEED, TTL_S, RENEW_S = 60.0, 120.0, 15.0
ROUNDS = 3


def _round(broker: MosquittoBroker, pg: LoopbackPostgres, root: Path, sig: int) -> Outcome:
    dsn = pg.dsn(pg.fresh_schema())
    PostgresStore(dsn, password=pg.password).close()
    clock = SimClock(datetime(2030, 1, 15, tzinfo=UTC), speed=SPEED)
    return asyncio.run(
        run(Setup(broker.port, dsn, pg.password, clock, TTL_S, RENEW_S), root, stop_signal=sig, agent=False)
    )


def test_failover_time_after_a_kill_vs_a_clean_handover(tmp_path: Path) -> None:
    rows: dict[str, list[tuple[float, float, int]]] = {"SIGKILL": [], "SIGTERM": []}
    with LoopbackPostgres() as pg:
        broker = MosquittoBroker().start()
        try:
            for i in range(ROUNDS):
                for name, sig in (("SIGTERM", signal.SIGTERM), ("SIGKILL", signal.SIGKILL)):
                    out = _round(broker, pg, tmp_path / f"{name}-{i}", sig)
                    counts = out.seen.per_period_and_site()
                    assert max(counts.values()) == 1  # never a period twice, in any round
                    old, new = out.seen.periods(out.old_token), out.seen.periods(out.new_token)
                    assert out.lease_wait_s is not None
                    rows[name].append(
                        (out.lease_wait_s, out.first_new_command_at - out.killed_at, new[0] - old[-1] - 1)
                    )
        finally:
            broker.close()
    wall_period_s, wall_ttl_s = PERIOD_S / SPEED, TTL_S / SPEED
    print(
        f"\ndispatcher failover, 2 processes on PostgreSQL + Mosquitto, {ROUNDS} rounds each; "
        f"wall period {wall_period_s:.2f} s, TTL {wall_ttl_s:.2f} s, renew {RENEW_S / SPEED:.2f} s; "
        f"bound TTL + period = {wall_ttl_s + wall_period_s:.2f} s"
    )
    anchor = statistics.median(r[1] for r in rows["SIGTERM"])
    for name, rs in rows.items():
        lease = statistics.median(r[0] for r in rs)
        first = statistics.median(r[1] for r in rs)
        print(
            f"  {name:7s}: signal -> lease {lease:5.2f} s (max {max(r[0] for r in rs):.2f}), "
            f"-> first command {first:5.2f} s (max {max(r[1] for r in rs):.2f}), "
            f"periods missed {[r[2] for r in rs]}, first command x{first / anchor:.1f} vs clean exit"
        )
