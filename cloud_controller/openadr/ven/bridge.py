"""The VEN's loop: poll the utility's VTN, submit new or changed events as DR requests, post delivery reports.

Each poll (`poll_once`):

1. the VTN's programmes; each mapped one (`programs[].program`) by name → its events;
2. an event not seen before, or with a new `modificationDateTime`, is mapped
   (`mapping.event_requests`); a changed one first cancels the requests of its old
   version; each request is posted to the controller's `POST /dr/requests` — 201
   (selected/partial), 409 (known: submitted before a restart without state) or 422
   (refused by the contracts, kept with its reason); an event that cannot be mapped is
   kept as `unmapped` with the reason, and not tried again until it changes;
3. an event gone from the VTN cancels its requests;
4. for every accepted request, the controller's DR report; once an event interval's steps
   all have their delivery, the event's report (`mapping.delivery_report`) is created on
   the VTN, and updated (PUT) as more intervals come in. A programme with `profile: nlflex`
   gets the Dutch profile's reports instead (`nlflex.py`): an ACK when the event's first
   request is accepted, one delivery report once the whole event is over.

A failed call (VTN or controller away) is counted and kept in `last_error`; what was not
done is tried at the next poll — nothing is marked done before its call succeeded. What
the bridge did is kept in `state_file` (JSON), so a restart neither resubmits nor reposts;
the same file keeps the VEN's registration (`ven_state`, written by `service.py`).
Time is the injected clock's.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cloud_controller.openadr.ven import nlflex
from cloud_controller.openadr.ven.clients import DrApiClient, VenHttpError, VtnClient
from cloud_controller.openadr.ven.config import ProgramMap, VenConfig
from cloud_controller.openadr.ven.mapping import Refusal, delivery_report, event_requests
from protocols.clock import Clock
from protocols.messages import DRRequest

__all__ = ["Bridge", "BridgeStats", "TrackedEvent"]

log = logging.getLogger(__name__)


@dataclass
class TrackedEvent:
    """One VTN event as the bridge last handled it: its version, requests and report."""

    event: dict[str, Any]
    program: str
    version: str
    #: request id → {"status": selected|partial|known|refused|cancelled, "spans": [[iv, first, n]], "detail"}
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    unmapped: str | None = None
    report_id: str | None = None
    reported_intervals: int = 0
    ack_id: str | None = None  # the NL profile's ACK report


@dataclass
class BridgeStats:
    """Counters of what the bridge did (the CLI prints them; a test asserts them)."""

    polls: int = 0
    poll_errors: int = 0
    events_seen: int = 0
    events_changed: int = 0
    events_gone: int = 0
    unmapped: int = 0
    submitted: int = 0
    accepted: int = 0
    refused: int = 0
    cancelled: int = 0
    reports_created: int = 0
    reports_updated: int = 0
    acks_posted: int = 0
    missing_programs: list[str] = field(default_factory=list)
    last_error: str | None = None


_LIVE = ("selected", "partial", "known", "active")


def _version(event: Mapping[str, Any]) -> str:
    return str(event.get("modificationDateTime") or event.get("createdDateTime") or "")


class Bridge:
    """VTN events → DR requests → reports; `poll_once` is one round, `run` the loop."""

    def __init__(self, cfg: VenConfig, vtn: VtnClient, dr: DrApiClient, *, clock: Clock) -> None:
        self.cfg, self.vtn, self.dr, self.clock = cfg, vtn, dr, clock
        self.rules: dict[str, ProgramMap] = {p.program: p for p in cfg.programs}
        self.stats = BridgeStats()
        #: Mapped programme name → its id on the VTN, as the last poll found them (subscriptions).
        self.program_ids: dict[str, str] = {}
        #: The VEN's registration (`registration.py`: ven_id, resource_ids), kept in the state file.
        self.ven_state: dict[str, Any] = {}
        self.events: dict[str, TrackedEvent] = self._load()

    # -- state file -----------------------------------------------------------------

    def _load(self) -> dict[str, TrackedEvent]:
        path = self.cfg.state_file
        if path is None or not path.exists():
            return {}
        doc = json.loads(path.read_text(encoding="utf-8"))
        self.ven_state = dict(doc.get("ven", {}))
        return {k: TrackedEvent(**v) for k, v in doc.get("events", {}).items()}

    def _save(self) -> None:
        path = self.cfg.state_file
        if path is None:
            return
        tmp = Path(f"{path}.tmp")
        tmp.write_text(
            json.dumps({"ven": self.ven_state, "events": {k: asdict(v) for k, v in self.events.items()}}),
            encoding="utf-8",
        )
        os.replace(tmp, path)  # atomic: a crash leaves the old state or the new, never half

    # -- one poll -------------------------------------------------------------------

    async def poll_once(self) -> BridgeStats:
        """One round; a failed call is counted and the round ends (the next poll tries again)."""
        try:
            await self._poll()
            self.stats.last_error = None
        except VenHttpError as exc:
            self.stats.poll_errors += 1
            self.stats.last_error = str(exc)
            log.warning("VEN poll failed: %s", exc)
        except Exception as exc:  # a bug or a malformed answer: counted and logged, the loop goes on
            self.stats.poll_errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("VEN poll failed")
        finally:
            self._save()
            self.stats.polls += 1  # rounds finished (a test waits for it)
        return self.stats

    async def _poll(self) -> None:
        programs = {str(p.get("programName")): str(p["id"]) for p in await self.vtn.programs()}
        self.stats.missing_programs = sorted(set(self.rules) - set(programs))
        self.program_ids = {name: programs[name] for name in self.rules if name in programs}
        for name, rule in self.rules.items():
            program_id = programs.get(name)
            if program_id is None:
                continue
            events = await self.vtn.events(program_id)
            live = {str(e["id"]) for e in events}
            for event in events:
                await self._on_event(event, rule)
            for event_id in [k for k, t in self.events.items() if t.program == name and k not in live]:
                await self._cancel_all(self.events[event_id])
                del self.events[event_id]
                self.stats.events_gone += 1
                log.info("VEN: event %s gone from the VTN; its requests cancelled", event_id)
        for tracked in self.events.values():
            await self._report(tracked)

    async def _on_event(self, event: dict[str, Any], rule: ProgramMap) -> None:
        event_id, version = str(event["id"]), _version(event)
        known = self.events.get(event_id)
        if known is not None and known.version == version:
            if known.unmapped is None:
                await self._submit(known)  # any request a failed call left unsent
            return
        if known is None:
            self.stats.events_seen += 1
        else:
            self.stats.events_changed += 1
            await self._cancel_all(known)
        tracked = TrackedEvent(event=event, program=rule.program, version=version)
        mapped = event_requests(event, rule, now=self.clock.now())
        if isinstance(mapped, Refusal):
            tracked.unmapped = mapped.reason
            self.stats.unmapped += 1
            log.warning("VEN: event %s not mapped: %s", event_id, mapped.reason)
        else:
            for m in mapped:
                tracked.requests[m.request.request_id] = {
                    "status": "new",
                    "spans": [list(s) for s in m.spans],
                    "step_s": m.step_s,
                    "request": m.request.model_dump(mode="json"),
                }
        self.events[event_id] = tracked
        await self._submit(tracked)

    async def _submit(self, tracked: TrackedEvent) -> None:
        for rid, entry in tracked.requests.items():
            if entry["status"] != "new":
                continue
            answer = await self.dr.submit(DRRequest.model_validate_json(json.dumps(entry["request"])))
            entry["status"], entry["detail"] = answer.status, answer.detail
            self.stats.submitted += 1
            if answer.status == "refused":
                self.stats.refused += 1
                log.warning("VEN: DR request %s refused: %s", rid, answer.detail)
            else:
                self.stats.accepted += 1
                log.info("VEN: event %s → DR request %s (%s)", tracked.event["id"], rid, answer.status)

    async def _cancel_all(self, tracked: TrackedEvent) -> None:
        for rid, entry in tracked.requests.items():
            if entry["status"] in _LIVE:
                await self.dr.cancel(rid)
                entry["status"] = "cancelled"
                self.stats.cancelled += 1

    async def _dr_reports(self, live: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        reports: dict[str, dict[str, Any]] = {}
        for rid in live:
            got = await self.dr.report(rid)
            if got is not None:
                reports[rid] = got
        return reports

    async def _report(self, tracked: TrackedEvent) -> None:
        live = {rid: e for rid, e in tracked.requests.items() if e["status"] in _LIVE}
        if not live:
            return
        rule = self.rules[tracked.program]
        spans = {rid: [(int(a), int(b), int(c)) for a, b, c in e["spans"]] for rid, e in live.items()}
        if rule.profile == "nlflex":
            await self._nl_reports(tracked, live, spans, rule)
            return
        if tracked.reported_intervals >= sum(len(v) for v in spans.values()):
            return  # every interval reported already: no more DR calls
        reports = await self._dr_reports(live)
        report = delivery_report(tracked.event, spans, reports, rule, ven_name=self.cfg.vtn.ven_name)
        if report is None:
            return
        n = len(report["resources"][0]["intervals"])
        if n <= tracked.reported_intervals:
            return
        if tracked.report_id is None:
            tracked.report_id = str((await self.vtn.create_report(report))["id"])
            self.stats.reports_created += 1
        else:
            await self.vtn.update_report(tracked.report_id, report)
            self.stats.reports_updated += 1
        tracked.reported_intervals = n
        log.info("VEN: event %s reported, %d interval(s)", tracked.event["id"], n)

    async def _nl_reports(
        self,
        tracked: TrackedEvent,
        live: Mapping[str, Any],
        spans: Mapping[str, list[tuple[int, int, int]]],
        rule: ProgramMap,
    ) -> None:
        """The NL profile: an ACK once an accepted request exists; one delivery report when all is over."""
        ven_name = self.cfg.vtn.ven_name
        if tracked.ack_id is None:
            tracked.ack_id = str(
                (await self.vtn.create_report(nlflex.ack_report(tracked.event, ven_name=ven_name)))["id"]
            )
            self.stats.acks_posted += 1
        if tracked.report_id is not None:
            return
        steps = {rid: int(e.get("step_s", 0)) for rid, e in live.items()}
        report = nlflex.delivery_report(
            tracked.event,
            spans,
            steps,
            await self._dr_reports(live),
            rule,
            ven_name=ven_name,
            now=self.clock.now(),
        )
        if report is None:
            return
        tracked.report_id = str((await self.vtn.create_report(report))["id"])
        tracked.reported_intervals = len(report["resources"][0]["intervals"])
        self.stats.reports_created += 1
        log.info("VEN: event %s delivery reported (NL profile)", tracked.event["id"])

    # -- the loop -------------------------------------------------------------------

    async def run(self, *, once: bool = False) -> BridgeStats:
        """Poll every `poll_interval_s` of the clock until cancelled (or once)."""
        while True:
            await self.poll_once()
            if once:
                return self.stats
            await self.clock.sleep(self.cfg.poll_interval_s)

    def status(self) -> dict[str, Any]:
        """Counters and, per event, what became of it (JSON-ready)."""
        return {
            "stats": asdict(self.stats),
            "events": {
                k: {
                    "program": t.program,
                    "version": t.version,
                    "unmapped": t.unmapped,
                    "requests": {rid: e["status"] for rid, e in t.requests.items()},
                    "report_id": t.report_id,
                    "ack_id": t.ack_id,
                    "reported_intervals": t.reported_intervals,
                }
                for k, t in self.events.items()
            },
        }
