"""Runs accepted DR requests: commands per interval, acks per request, release on cancel, delivery reports.

The I/O shell around the pure `activation` and `delivery` modules. Every `tick` (the
service calls it about once a second, and right after a post or a cancel):

1. a request whose first interval opens within `lead_s` goes `selected`/`partial` → `active`;
   each interval's commands are sent once, through the service's own sender (fenced with the
   dispatch lease's token, signed per site, tracked for acks) — never a second publisher; a
   command the sender could not publish (broker away) is counted (`send_failures`) and sent
   again at the next tick while its interval is open;
2. acks of the request's commands are counted from the service's command tracker
   (`ok` = applied, `clamped`, `rejected`, `expired`, `failed`, `missing`, `pending`);
3. an interval `report_after_s` past its end (the agents' telemetry has reached the store)
   gets its delivery per site (`delivery`), persisted and published on `dr/{program}/report`
   (not retained); when the last is in, the request is `completed`;
4. a `cancelled` request that had sent commands sends one release command per asset.

All of it lives in the DR store's `dr_runs` row of the request, written after each change,
so a restarted controller resumes a running event where it was (a step already sent is
not sent again; one missed while down is sent late, still valid for the rest of its interval).
The run is built in `run_record.py`, what live runs hold against the planner is
`run_holds.py`, an interval's delivery rows `run_report.py`; this module is the tick.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cloud_controller.commands import CommandTracker
from cloud_controller.dr import run_holds
from cloud_controller.dr.activation import Actuation, release_commands, step_commands
from cloud_controller.dr.delivery import site_selected_kw, totals
from cloud_controller.dr.requests_store import DrRecord, RequestStatus
from cloud_controller.dr.run_record import new_run, run_bounds
from cloud_controller.dr.run_report import interval_rows
from cloud_controller.dr.service import DrService
from cloud_controller.live.reservations import Reservation
from cloud_controller.live.types import Plan, SiteRef, SiteSnapshot
from cloud_controller.store import Store
from protocols.clock import Clock
from protocols.messages import Command
from protocols.signing import SigningKey

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["ACK_NAMES", "DrActivator", "RunContext", "controller_activator"]

log = logging.getLogger(__name__)

#: Ack status → the name a request's counts use.
ACK_NAMES = {"applied": "ok", "clamped": "clamped", "rejected": "rejected", "expired": "expired"}
MIN_HOST_PERIOD_S = 0.02


@dataclass(frozen=True)
class RunContext:
    """What the activator reads from the service: sites, snapshots, the latest plan, stored telemetry."""

    sites: Mapping[str, SiteRef]
    site_order: list[str]  # the registry's order: the plan's per-site forecast columns
    snapshots: Callable[[], Mapping[str, SiteSnapshot]]
    plan: Callable[[], Plan | None]
    store: Store
    tracker: CommandTracker
    keys: Mapping[str, bytes | SigningKey]
    #: False while this worker may not command (a standby dispatcher: no lease): it then
    #: changes nothing, so the lease holder sends every step.
    can_send: Callable[[], bool] = lambda: True


class DrActivator:
    """Activation, acks, release and delivery of every accepted request (state in the DR store)."""

    def __init__(
        self,
        dr: DrService,
        ctx: RunContext,
        *,
        clock: Clock,
        send: Callable[[list[Command]], Awaitable[None]],
        publish_report: Callable[[str, bytes], Awaitable[bool]],
        lead_s: float = 2.0,
        report_after_s: float = 10.0,
    ) -> None:
        self.dr, self.ctx, self.clock = dr, ctx, clock
        self._send, self._publish_report = send, publish_report
        self.lead_s, self.report_after_s = lead_s, report_after_s
        self.reports_published = 0
        self.reports_unpublished = 0  # the broker was away: kept in the store and at the API
        self.tick_errors = 0  # requests whose step raised (logged with the request id)
        self._tick_lock = asyncio.Lock()  # the loop's tick and the API's (after a post or cancel)
        self._live: bool | None = None  # did the last round find a request to look after? None: not yet

    # -- preparation (at selection time) --------------------------------------------

    def prepare(self, record: DrRecord) -> dict[str, Any]:
        """The request's run: intervals, actuations, baselines; written once, at selection time."""
        known = self.dr.requests.get_run(record.request.request_id)
        if known is not None:
            return known
        run = new_run(record, self.ctx.sites, self.ctx.site_order, self.ctx.snapshots(), self.ctx.plan())
        if run["not_commandable"]:
            log.warning(
                "DR %s: not commandable: %s", record.request.request_id, "; ".join(run["not_commandable"])
            )
        # another controller's run, if it came first
        return self.dr.requests.create_run(record.request.request_id, run)

    # -- what the planner must leave alone -----------------------------------------

    def held(self, now: datetime) -> set[tuple[str, str]]:
        """(site, asset) pairs a live request holds now: from `lead_s` before its first interval to its end."""
        return run_holds.held(self.dr.requests, now, self.lead_s)

    def reservations(self, now: datetime) -> list[Reservation]:
        """The batteries live requests selected, for the planner's rows (live/reservations.py, `run_holds.py`)."""
        return run_holds.reservations(self.dr.requests, now, self.lead_s)

    def count_dropped(self, dropped: list[Command], now: datetime) -> None:
        """Count the planner's commands dropped for held assets against the request holding them."""
        run_holds.count_dropped(self.dr.requests, dropped)

    # -- the tick ------------------------------------------------------------------

    async def tick(self, *, force: bool = True) -> None:
        """One round over every request that may still need something done.

        `force=False` (the loop) skips the DR store while the last round found nothing live;
        a post or a cancel ticks with `force` and so wakes it.
        """
        async with self._tick_lock:
            if force or self._live is not False:
                await self._tick()

    async def run(self, period_s: float = 1.0) -> None:
        """Tick every `period_s` of the clock, and at most every `MIN_HOST_PERIOD_S` of host time."""
        while True:
            await self.tick(force=False)
            await self.clock.sleep(period_s)
            await asyncio.sleep(MIN_HOST_PERIOD_S)  # an accelerated clock must not spin the DR store

    async def _tick(self) -> None:
        if not self.ctx.can_send():
            self._live = None  # unknown: scanned again once this worker may send
            return
        now = self.clock.now()
        live = False
        for record in self.dr.requests.all():
            if record.status in ("refused", "completed"):
                continue
            try:
                live = await self._step(record, now) or live
            except Exception:  # one bad row must not stop every other request's activation
                live = True
                self.tick_errors += 1
                log.exception("DR %s: activation step failed", record.request.request_id)
        self._live = live

    async def _step(self, record: DrRecord, now: datetime) -> bool:
        """Do what `record` needs now; True while it still needs something later."""
        run = self.dr.requests.get_run(record.request.request_id) or self.prepare(record)
        if record.status == "cancelled":
            if not run["released"]:
                await self._release(record, run, now)
            return not run["released"]
        await self._activate(record, run, now)
        self._count_acks(run)
        done = await self._report(record, run, now)
        self.dr.requests.put_run(record.request.request_id, run)
        return not done

    async def _activate(self, record: DrRecord, run: dict[str, Any], now: datetime) -> None:
        acts = [Actuation.from_json(a) for a in run["actuations"]]
        rid = record.request.request_id
        for k, (start, end) in enumerate(run_bounds(run)):
            if k in run["sent_steps"] or not (start - timedelta(seconds=self.lead_s) <= now < end):
                continue
            cmds = [
                c
                for c in step_commands(now, rid, k, (start, end), acts, self.ctx.keys)
                if c.cmd_id not in run["cmd_ids"]
            ]
            run["cmd_ids"].update({c.cmd_id: k for c in cmds})
            self.dr.requests.put_run(rid, run)  # before sending: a restart never sends a command twice
            if record.status in ("selected", "partial"):
                record = self._status(record, "active")
            failed = await self._send_tracked(cmds)
            for cmd_id in failed:  # not published (broker away, lease lost): the next tick tries again
                del run["cmd_ids"][cmd_id]
            run["send_failures"] = run.get("send_failures", 0) + len(failed)
            if not failed:
                run["sent_steps"].append(k)
            self.dr.requests.put_run(rid, run)
            log.info("DR %s: step %d, %d commands, %d not published", rid, k, len(cmds), len(failed))

    async def _send_tracked(self, cmds: list[Command]) -> list[str]:
        """Send through the service; the ids the tracker did not keep (the publish failed or was refused)."""
        if not cmds:
            return []
        await self._send(cmds)
        return [c.cmd_id for c in cmds if c.cmd_id not in self.ctx.tracker.sent]

    def _count_acks(self, run: dict[str, Any]) -> None:
        """Counts per ack name; each command's last known answer is kept (the tracker forgets old ones)."""
        final: dict[str, str] = run.setdefault("ack_by_cmd", {})
        for cmd_id in run["cmd_ids"]:
            tracked = self.ctx.tracker.sent.get(cmd_id)
            if tracked is not None and tracked.status is not None:
                final[cmd_id] = ACK_NAMES.get(tracked.status, tracked.status)
        counts: dict[str, int] = {}
        for cmd_id in run["cmd_ids"]:
            name = final.get(cmd_id, "pending")
            counts[name] = counts.get(name, 0) + 1
        run["acks"] = counts

    async def _report(self, record: DrRecord, run: dict[str, Any], now: datetime) -> bool:
        req = record.request
        bounds = run_bounds(run)
        selected = site_selected_kw(record.selection.get("sources", []), len(bounds))
        for k, (start, end) in enumerate(bounds):
            if k in run["reported_steps"] or now < end + timedelta(seconds=self.report_after_s):
                continue
            rows = interval_rows(self.ctx.store, record, run, k, (start, end), selected)
            run["intervals"].extend(rows)
            run["reported_steps"].append(k)
            run["totals"] = totals(run["intervals"], float(run["dt_h"]))
            self.dr.requests.put_run(req.request_id, run)
            payload = {"request_id": req.request_id, "program": req.program, "step": k, "intervals": rows}
            if await self._publish_report(
                req.program, json.dumps({**payload, "totals": run["totals"]}).encode()
            ):
                self.reports_published += 1
            else:
                self.reports_unpublished += 1
        if len(run["reported_steps"]) < len(bounds):
            return False
        # (from selected/partial: an event that ran while the controller was down)
        return self._status(record, "completed").status == "completed"

    async def _release(self, record: DrRecord, run: dict[str, Any], now: datetime) -> None:
        rid = record.request.request_id
        live = run_bounds(run)[-1][1] > now
        acts = [Actuation.from_json(a) for a in run["actuations"]]
        step = max([k for k, (start, _) in enumerate(run_bounds(run)) if start <= now] or [0])
        cmds = release_commands(now, rid, acts, self.ctx.keys, step=step) if run["cmd_ids"] and live else []
        run["cmd_ids"].update({c.cmd_id: -1 for c in cmds})
        run["released"] = True
        self.dr.requests.put_run(rid, run)
        failed = await self._send_tracked(cmds)
        if failed:  # tried again at the next tick (new ids: the same release values)
            for cmd_id in failed:
                del run["cmd_ids"][cmd_id]
            run["send_failures"] = run.get("send_failures", 0) + len(failed)
            run["released"] = False
            self.dr.requests.put_run(rid, run)
        if cmds:
            log.info("DR %s cancelled: %d release commands, %d not published", rid, len(cmds), len(failed))

    def _status(self, record: DrRecord, status: RequestStatus) -> DrRecord:
        current = self.dr.requests.get(record.request.request_id)
        if current is not None and current.status == "cancelled":
            return current  # cancelled meanwhile (the API's thread): a cancel is final
        new = DrRecord(record.request, record.received_ts, status, record.selection, record.refusals)
        self.dr.requests.put(new)
        return new

    def report(self, request_id: str) -> dict[str, Any] | None:
        """The request's activation and delivery (GET /dr/requests/{id}/report), or None if unknown."""
        record = self.dr.requests.get(request_id)
        if record is None:
            return None
        run = self.dr.requests.get_run(request_id) or {}
        return {
            "request_id": request_id,
            "status": record.status,
            "direction": record.request.direction,
            "intervals_planned": len(run.get("bounds", [])),
            "intervals_reported": len(run.get("reported_steps", [])),
            "commands_sent": len(run.get("cmd_ids", {})),
            "acks": run.get("acks", {}),
            "not_commandable": run.get("not_commandable", []),
            "dropped_planner_commands": run.get("dropped_planner_commands", 0),
            "send_failures": run.get("send_failures", 0),
            "baseline": run.get("baseline", {}),
            "intervals": run.get("intervals", []),
            "totals": run.get("totals", {}),
        }


def controller_activator(ctl: CloudController) -> DrActivator:
    """The controller's activator: its sites, snapshots, latest plan, store, tracker, keys and sender.

    Commands leave through `ctl._publish_commands` (the one sender: fence, signature,
    tracker); nothing is changed while the dispatch lease is not held.
    """
    return DrActivator(
        ctl.dr,
        RunContext(
            sites={s.site: s for s in ctl.registry.sites},
            site_order=ctl.registry.ids,
            snapshots=lambda: ctl.snapshots,
            plan=lambda: ctl.last_plan,
            store=ctl.store,
            tracker=ctl.tracker,
            keys=ctl._signing_keys,
            can_send=lambda: ctl.lease is None or ctl._fence_now() is not None,
        ),
        clock=ctl.clock,
        send=ctl._publish_commands,
        publish_report=ctl.publish_dr_report,
        lead_s=ctl.config.dr.lead_s,
        report_after_s=ctl.config.dr.report_after_s,
    )
