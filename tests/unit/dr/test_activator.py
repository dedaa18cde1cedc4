"""The DR activator's life cycle on a manual SimClock, with the real DR store and SQLite telemetry store:
selected → active (one command per interval, sent `lead_s` early, valid over its interval) → acks counted per
request → delivery per interval (hand numbers) → a restart does not resend → cancel releases → completed.

The sender here is the service's side of the boundary (it registers with the real `CommandTracker`, as the
service's `_publish_commands` does); the broker path is the integration test's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud_controller.commands import CommandTracker
from cloud_controller.dr.activator import DrActivator, RunContext
from cloud_controller.dr.service import DrService
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
from cloud_controller.store import SqliteStore
from protocols.clock import SimClock
from protocols.messages import Ack, Command, DRInterval, DRRequest, Sample

NOW = datetime(2030, 1, 15, 16, 0, tzinfo=UTC)
START = NOW + timedelta(hours=1)
Q = timedelta(minutes=15)
CONTRACTS = """
contracts:
  - {site: s, program: peak, directions: [reduce], p_max_kw: 4, events_per_day: 3, max_duration: PT2H,
     soc_floor_pct: 5, battery: {asset: bat1, capacity_kwh: 10}}
"""
SITES = {"s": SiteRef("s", 0, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0)))}


@dataclass
class Rig:
    clock: SimClock
    dr: DrService
    store: SqliteStore
    tracker: CommandTracker
    snapshots: dict[str, SiteSnapshot]
    sent: list[Command] = field(default_factory=list)
    reports: list[bytes] = field(default_factory=list)
    broker_down: bool = False  # the service's publish fails: it rolls the command back from its tracker

    def activator(self) -> DrActivator:
        ctx = RunContext(
            sites=SITES,
            site_order=["s"],
            snapshots=lambda: self.snapshots,
            plan=lambda: None,
            store=self.store,
            tracker=self.tracker,
            keys={},
        )
        return DrActivator(
            self.dr, ctx, clock=self.clock, send=self._send, publish_report=self._report, report_after_s=10.0
        )

    async def _send(self, cmds: list[Command]) -> None:
        for c in cmds:
            self.tracker.on_sent(c)
            if self.broker_down:
                self.tracker.on_publish_failed(c)
        if not self.broker_down:
            self.sent.extend(cmds)

    async def _report(self, program: str, payload: bytes) -> bool:
        self.reports.append(payload)
        return True

    def ack(self, cmd: Command, status: str) -> None:
        self.tracker.on_ack(
            Ack.model_validate(
                {
                    "site": cmd.site,
                    "ts": self.clock.now(),
                    "cmd_id": cmd.cmd_id,
                    "asset": cmd.asset,
                    "status": status,
                }
            )
        )

    def meter(self, seq: int, at: datetime, kw: float) -> None:
        sample = Sample(seq=seq, asset="meter", point="p_kw", value=kw, unit="kW", ts=at)
        self.store.write_samples("s", [sample])


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    (tmp_path / "contracts.yaml").write_text(CONTRACTS, encoding="utf-8")
    clock = SimClock(NOW)
    dr = DrService(
        tmp_path / "dr.sqlite", clock=clock, contracts_file=tmp_path / "contracts.yaml", step_minutes=15
    )
    store = SqliteStore(tmp_path / "store.sqlite")
    snaps = {"s": SiteSnapshot(site="s", mode="online", p_net_kw=1.0, points={"bat1/soc_pct": 50.0})}
    r = Rig(clock, dr, store, CommandTracker(), snaps)
    yield r
    store.close()
    dr.close()


def _request(rid: str, n: int) -> DRRequest:
    return DRRequest(
        program="peak",
        ts=NOW,
        request_id=rid,
        start=START,
        end=START + n * Q,
        direction="reduce",
        p_kw=4.0,
        intervals=[DRInterval(p_kw=4.0)] * n,
    )


def _at(t: datetime, rig: Rig) -> None:
    rig.clock.advance((t - rig.clock.now()).total_seconds())


async def test_life_cycle_commands_acks_delivery_restart_and_cancel(rig: Rig) -> None:
    act = rig.activator()
    record = rig.dr.submit(_request("r1", 2), rig.snapshots)
    run = act.prepare(record)
    assert run["baseline"] == {"s": {"kw": [1.0, 1.0], "source": ["measured", "measured"]}}
    await act.tick()
    assert rig.sent == [] and rig.dr.requests.get("r1").status == "selected"  # type: ignore[union-attr]
    assert act.held(rig.clock.now()) == set()

    _at(START - timedelta(seconds=1), rig)  # inside the 2 s lead
    await act.tick()
    (c0,) = rig.sent
    assert (c0.asset, c0.kind, c0.value, c0.request_id) == ("bat1", "p_setpoint_kw", -4.0, "r1")
    assert (c0.valid_from, c0.valid_until) == (START, START + Q)
    assert rig.dr.requests.get("r1").status == "active"  # type: ignore[union-attr]
    assert act.held(rig.clock.now()) == {("s", "bat1")}
    rig.ack(c0, "applied")

    # telemetry: 1.0 kW held from before the start for 60 s, then -3.0 kW; 15-min interval
    rig.meter(0, START - timedelta(minutes=10), 1.0)
    rig.meter(1, START + timedelta(seconds=60), -3.0)
    _at(START + Q + timedelta(seconds=11), rig)
    await act.tick()
    assert [c.value for c in rig.sent] == [-4.0, -4.0] and rig.sent[1].valid_from == START + Q
    rig.ack(rig.sent[1], "clamped")
    report = act.report("r1")
    assert report is not None
    (row,) = report["intervals"]
    # actual = (1.0 * 60 + -3.0 * 840) / 900 = -2.733333; delivered = 1.0 + 2.733333; short = 4 - 3.733333
    assert row["actual_kw"] == pytest.approx(-2.733333, abs=1e-6)
    assert row["delivered_kw"] == pytest.approx(3.733333, abs=1e-6)
    assert row["shortfall_kw"] == pytest.approx(0.266667, abs=1e-6)
    assert len(rig.reports) == 1 and b'"request_id": "r1"' in rig.reports[0]

    # a restarted controller (new activator, same files) does not send step 1 again
    again = rig.activator()
    await again.tick()
    assert len(rig.sent) == 2
    assert again.report("r1")["acks"] == {"ok": 1, "clamped": 1}  # type: ignore[index]

    # cancel: one release command (0 kW, the request's id), nothing held afterwards
    rig.dr.cancel("r1")
    _at(START + Q + timedelta(minutes=2), rig)
    await again.tick()
    rel = rig.sent[2]
    assert (rel.asset, rel.kind, rel.value, rel.request_id) == ("bat1", "p_setpoint_kw", 0.0, "r1")
    assert rel.valid_until - rel.valid_from == timedelta(seconds=120)
    await again.tick()
    assert len(rig.sent) == 3 and again.held(rig.clock.now()) == set()
    assert rig.dr.requests.get("r1").status == "cancelled"  # type: ignore[union-attr]


async def test_a_request_runs_to_completed_and_an_interval_without_telemetry_is_all_short(rig: Rig) -> None:
    act = rig.activator()
    act.prepare(rig.dr.submit(_request("r2", 1), rig.snapshots))
    _at(START, rig)
    await act.tick()
    _at(START + Q + timedelta(seconds=10), rig)
    await act.tick()
    report = act.report("r2")
    assert report is not None and report["status"] == "completed"
    (row,) = report["intervals"]
    assert (row["actual_kw"], row["delivered_kw"], row["shortfall_kw"], row["samples"]) == (None, 0.0, 4.0, 0)
    assert report["totals"]["shortfall_kwh"] == 1.0  # 4 kW for 15 min
    assert report["acks"] == {"pending": 1}  # the command was never answered: said, not hidden
    # nothing live any more: the loop's ticks leave the DR store alone until a post ticks with force
    record = rig.dr.submit(
        _request("r2b", 1).model_copy(update={"start": START + 2 * Q, "end": START + 3 * Q}), rig.snapshots
    )
    _at(START + 2 * Q, rig)
    await act.tick(force=False)
    assert len(rig.sent) == 1 and rig.dr.requests.get_run("r2b") is None
    act.prepare(record)
    await act.tick()
    assert len(rig.sent) == 2 and rig.sent[1].request_id == "r2b"


async def test_a_command_the_broker_did_not_take_is_counted_and_sent_again(rig: Rig) -> None:
    act = rig.activator()
    act.prepare(rig.dr.submit(_request("r3", 1), rig.snapshots))
    rig.broker_down = True
    _at(START, rig)
    await act.tick()
    report = act.report("r3")
    assert report is not None and report["send_failures"] == 1 and report["commands_sent"] == 0
    assert rig.sent == [] and report["status"] == "active"
    rig.broker_down = False
    _at(START + timedelta(seconds=5), rig)
    await act.tick()
    await act.tick()  # once sent, not again
    assert [(c.cmd_id, c.value) for c in rig.sent] == [("dr-r3-0-s-bat1", -4.0)]
    assert act.report("r3")["commands_sent"] == 1  # type: ignore[index]


async def test_a_selected_battery_is_reserved_for_the_planner_from_selection_to_the_events_end(
    rig: Rig,
) -> None:
    act = rig.activator()
    assert act.reservations(NOW) == []
    act.prepare(rig.dr.submit(_request("r3", 2), rig.snapshots))
    (res,) = act.reservations(NOW)  # an hour before the event: already reserved
    assert (res.request_id, res.site, res.asset, res.kw) == ("r3", "s", "bat1", (-4.0, -4.0))
    assert res.bounds == ((START, START + Q), (START + Q, START + 2 * Q))
    assert res.held_from == START - timedelta(seconds=act.lead_s)
    assert act.reservations(START + 2 * Q) == []  # over
    rig.dr.cancel("r3")
    assert act.reservations(START) == []  # a cancelled request frees the battery


async def test_the_report_measures_the_household_with_the_selected_battery_taken_out(rig: Rig) -> None:
    act = rig.activator()
    act.prepare(rig.dr.submit(_request("r3", 1), rig.snapshots))  # stated baseline: 1.0 kW measured
    _at(START, rig)
    await act.tick()
    # the household rises from 1.0 to 4.0 kW at 5 min (an EV), the battery gives -4.0 kW throughout
    rig.meter(0, START - timedelta(minutes=1), -3.0)
    rig.meter(1, START + timedelta(minutes=5), 0.0)
    rig.store.write_samples(
        "s",
        [Sample(seq=2, asset="bat1", point="p_kw", value=-4.0, unit="kW", ts=START - timedelta(minutes=1))],
    )
    _at(START + Q + timedelta(seconds=10), rig)
    await act.tick()
    report = act.report("r3")
    assert report is not None
    (row,) = report["intervals"]
    # household = meter (-3 for 5 min, 0 for 10: -1.0) minus the battery's -4.0 = 3.0 kW; delivered 3 - (-1) = 4
    assert row["baseline_source"] == "household" and row["baseline_kw"] == pytest.approx(3.0)
    assert (row["actual_kw"], row["delivered_kw"], row["shortfall_kw"]) == (
        pytest.approx(-1.0),
        pytest.approx(4.0),
        pytest.approx(0.0),
    )
    # against the stated 1.0 kW it would have read 2.0 delivered: the EV charged against the battery
    assert report["baseline"]["s"] == {"kw": [1.0], "source": ["measured"]}
