"""Dispatcher failover: two controller processes on one PostgreSQL and one Mosquitto.

Each process (`controller_proc`, its own working directory) runs an ingest worker and a
dispatcher; one holds the lease and dispatches every period, the other stands by. The
holder is SIGKILLed by its PID; the standby takes over after the lease's expiry. On the
broker (a subscriber on every command topic) every (period, site) got exactly one
command, each dispatcher's periods run without a hole, and the only periods missed are
the failover gap (bounded in periods: the TTL plus one period). The survivor's token is
one higher; a real edge agent (site t1, a real Modbus server, `require_fence`) applies the
survivor's commands and refuses a late command carrying the killed holder's token, and the
agents' persisted fencing guard, fed what a site received in order, does the same.
Ingest: every sample the sites published is stored exactly once and the watermark is the
last seq, with the ingest worker of the killed process gone half-way.

Time is a shared accelerated SimClock (60 ×: a 60 s period is 1 s of wall time).
"""

from __future__ import annotations

import asyncio
import math
import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent.fence import PersistentFenceGuard, StaleFenceError
from gridflex.ops.broker import MosquittoBroker
from gridflex.ops.postgres import LoopbackPostgres
from protocols.clock import SimClock

from .controller_proc import AGENT_SITE, COMMANDED, PERIOD_S, SITES, Setup
from .scenario import run

pytestmark = pytest.mark.integration

SPEED = 60.0
TTL_S, RENEW_S = 120.0, 15.0  # simulated: 2 s and 0.25 s of wall time


def _setup(mosquitto: MosquittoBroker, pg: LoopbackPostgres) -> Setup:
    from cloud_controller.store.postgres import PostgresStore

    dsn = pg.dsn(pg.fresh_schema())
    PostgresStore(dsn, password=pg.password).close()  # migrated once, before both processes
    clock = SimClock(datetime(2030, 1, 15, tzinfo=UTC), speed=SPEED)
    return Setup(mosquitto.port, dsn, pg.password, clock, TTL_S, RENEW_S)


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_standby_replaces_a_stopped_dispatcher_without_a_period_twice_and_ingest_stores_all_once(
    mosquitto: MosquittoBroker, pg_server: LoopbackPostgres, tmp_path: Path, stop_signal: int
) -> None:
    """SIGKILL: no release, the standby waits for the expiry. SIGTERM: released at once, so the
    standby takes over within the period the holder just dispatched, and must skip it.
    """
    out = asyncio.run(run(_setup(mosquitto, pg_server), tmp_path, stop_signal=stop_signal))
    seen = out.seen

    # exactly one command per (period, site), across both dispatchers
    counts = seen.per_period_and_site()
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    old_periods, new_periods = seen.periods(out.old_token), seen.periods(out.new_token)
    for holder, periods in (("killed", old_periods), ("survivor", new_periods)):
        assert periods == list(range(periods[0], periods[-1] + 1)), holder  # no hole while one holds
        # every site, every period; a SIGKILL can land inside a period's burst of commands
        # (sent site by site), so the killed holder's last period may have reached only some
        # sites: the claim is per period, and the survivor never re-sends a claimed period
        full = periods[:-1] if holder == "killed" and stop_signal == signal.SIGKILL else periods
        missing = [(k, s) for k in full for s in COMMANDED if counts[(k, s)] != 1]
        assert not missing, (holder, missing, periods)
    assert new_periods[0] > old_periods[-1]
    missed = new_periods[0] - old_periods[-1] - 1
    assert missed <= math.ceil((TTL_S + RENEW_S) / PERIOD_S) + 1, (old_periods, new_periods)
    assert {c.fence for c in seen.dispatched()} == {out.old_token, out.new_token}
    assert out.new_token == out.old_token + 1
    assert out.new_holder != out.old_holder

    # the agents' own fencing check, fed what each site received, then a late command of the killed one
    db = sqlite3.connect(tmp_path / "fence.sqlite")
    try:
        guards = {site: PersistentFenceGuard(db) for site in SITES[:1]}
        site = SITES[0]
        for cmd in seen.dispatched():
            if cmd.site == site:
                guards[site].check(cmd, require=True)
        assert guards[site].highest == out.new_token
        late = [c for c in seen.dispatched() if c.site == site and c.fence == out.old_token][-1]
        with pytest.raises(StaleFenceError, match=f"stale fencing token {out.old_token} < {out.new_token}"):
            PersistentFenceGuard(db).check(late, require=True)  # the highest token survives a restart
    finally:
        db.close()

    # the real agent: the survivor's commands applied; a late one with the killed holder's token refused
    new_ids = {c.cmd_id for _, c in seen.commands if c.site == AGENT_SITE and c.fence == out.new_token}
    assert {a.status for a in seen.acks if a.cmd_id in new_ids} == {"applied"}
    assert out.late_ack is not None and out.late_ack.status == "rejected"
    assert out.late_ack.reason == f"stale fencing token {out.old_token} < {out.new_token}"

    # ingest: everything published is stored once; watermark = last seq
    for site in SITES:
        last = seen.next_seq[site] - 1
        assert out.watermarks[site] == last
        assert out.samples[site] == last + 1

    # observable: the survivor's lease event names its predecessor and its wait
    (taken,) = [
        e for e in out.events if e.kind == "dispatch_lease_acquired" and e.details["token"] == out.new_token
    ]
    assert taken.severity == "warning" and str(taken.details["previous"]) in out.old_holder
    assert float(taken.details["waited_s"] or 0) > 0
    assert out.lease_wait_s is not None
    assert "dispatch lease acquired" in out.logs["a"] + out.logs["b"]
