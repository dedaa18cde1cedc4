# mypy: ignore-errors
"""The utility's business logic for the VEN test: ElaadNL's openadr3-client BL in its own 3.12 venv.

Run by `ven_setup.Party` (the VEN bridge and registration tests) as a subprocess with
`.venv-oa3/bin/python`; never imported by the project (mypy skips it). One JSON command per stdin line, one JSON answer per stdout
line, so one interpreter start serves the whole test:

- `{"op": "event", "program_name", "event_name", "target", "intervals": [[start, seconds, kw]]}`:
  creates the programme when missing and an event with FLEX (KW) intervals; answers ids.
- `{"op": "reports", "event_id"}`: the reports on that event as the client parses them.
- `{"op": "nl_check", "event_id"}`: each report on that event through the nlflex plugin's
  direct validators (no global registration): its kind and errors, the delivery report also
  against the event's intervals.
- `{"op": "subscriptions"}`: every subscription as the client parses it (client name, callbacks).
- `{"op": "quit"}`.
"""

import json
import os
import sys
from datetime import datetime, timedelta

os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on loopback (tests only)

from openadr3_client._models.common.interval import Interval
from openadr3_client._models.common.interval_period import IntervalPeriod
from openadr3_client.bl.http_factory import BusinessLogicHttpClientFactory
from openadr3_client.oadr310.models.event.event import NewEvent
from openadr3_client.oadr310.models.event.event_payload import (
    EventPayload,
    EventPayloadDescriptor,
    EventPayloadType,
)
from openadr3_client.oadr310.models.program.program import NewProgram
from openadr3_client.oadr310.models.unit import Unit
from openadr3_client.version import OADRVersion


def _answer(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> None:
    job = json.loads(sys.stdin.readline())
    bl = BusinessLogicHttpClientFactory.create_http_bl_client(
        vtn_base_url=job["vtn_url"],
        client_id=job["bl_id"],
        client_secret=job["bl_secret"],
        allow_insecure_http=True,
        version=OADRVersion.OADR_310,
    )
    programs = {}
    _answer({"ready": True})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            return
        if cmd["op"] == "event":
            name = cmd["program_name"]
            if name not in programs:
                programs[name] = bl.programs.create_program(NewProgram(program_name=name)).id
            flex = EventPayloadType("FLEX")  # a custom type: the client's enum takes it
            event = bl.events.create_event(
                NewEvent(
                    program_id=programs[name],
                    event_name=cmd["event_name"],
                    targets=(cmd["target"],),
                    payload_descriptors=(EventPayloadDescriptor(payload_type=flex, units=Unit.KW),),
                    intervals=tuple(
                        Interval(
                            id=k,
                            interval_period=IntervalPeriod(
                                start=datetime.fromisoformat(start), duration=timedelta(seconds=seconds)
                            ),
                            payloads=(EventPayload(type=flex, values=(kw,)),),
                        )
                        for k, (start, seconds, kw) in enumerate(cmd["intervals"])
                    ),
                )
            )
            _answer({"program_id": programs[name], "event_id": event.id})
        elif cmd["op"] == "nl_check":
            from openadr3_client_nlflex_compliance.nlflex10.report_nlflex_compliant import (
                ReportKind,
                report_kind,
                validate_flex_delivery_report_compliant,
                validate_report_nlflex_compliant,
            )

            event = bl.events.get_event_by_id(cmd["event_id"])
            out = []
            for r in bl.reports.get_reports(
                pagination=None, program_id=None, event_id=cmd["event_id"], client_name=None
            ):
                errors = list(validate_report_nlflex_compliant(r) or ())
                if report_kind(r) is ReportKind.FLEX_DELIVERY:
                    errors += list(
                        validate_flex_delivery_report_compliant(r, event_intervals=event.intervals) or ()
                    )
                out.append(
                    {
                        "kind": str(report_kind(r)),
                        "errors": [str(e.get("ctx", {}).get("error", e)) for e in errors],
                        "values": [list(iv.payloads[0].values) for iv in r.resources[0].intervals],
                    }
                )
            _answer(out)
        elif cmd["op"] == "subscriptions":
            subs = bl.subscriptions.get_subscriptions(
                pagination=None, program_id=None, client_name=None, objects=None
            )
            _answer(
                [
                    {
                        "client_name": s.client_name,
                        "callbacks": [str(op.callback_url) for op in s.object_operations],
                        "objects": [str(o) for op in s.object_operations for o in op.objects],
                    }
                    for s in subs
                ]
            )
        elif cmd["op"] == "reports":
            reports = bl.reports.get_reports(
                pagination=None, program_id=None, event_id=cmd["event_id"], client_name=None
            )
            _answer(
                [
                    {
                        "id": r.id,
                        "client_id": r.client_id,
                        "client_name": r.client_name,
                        "event_id": r.event_id,
                        "resources": [
                            {
                                "name": res.resource_name,
                                "intervals": [
                                    {
                                        "id": iv.id,
                                        "type": str(iv.payloads[0].type),
                                        "values": list(iv.payloads[0].values),
                                    }
                                    for iv in res.intervals
                                ],
                            }
                            for res in r.resources
                        ],
                    }
                    for r in reports
                ]
            )


if __name__ == "__main__":
    main()
