# mypy: ignore-errors
"""The other party: ElaadNL's openadr3-client (BL and VEN) against GridFlex's VTN, in its own 3.12 venv.

Run by `test_openadr_interop.py` as a subprocess with `.venv-oa3/bin/python`; never imported
by the project (it needs Python >= 3.12 and the client, which the project's 3.11 venv lacks;
mypy skips it for the same reason). Reads a JSON job on stdin, prints one JSON result on
stdout. The BL creates a programme and an event (IMPORT_CAPACITY_LIMIT, 2 intervals); the
VEN discovers the token URL (`GET /auth/server`), reads the programmes and that programme's
events, and posts a report. Events named in `nlflex_event_ids` are read by the VEN and
checked with the nlflex plugin's direct validator (no global registration: it would
validate every object the client parses, and would leak into other runs).
"""

import json
import os
import sys
from datetime import UTC, datetime, timedelta

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
from openadr3_client.oadr310.models.report.report import NewReport, ReportResource
from openadr3_client.oadr310.models.report.report_payload import ReportPayload, ReportPayloadType
from openadr3_client.oadr310.models.unit import Unit
from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory
from openadr3_client.version import OADRVersion


def main() -> None:
    job = json.load(sys.stdin)
    url = job["vtn_url"]
    out: dict = {}
    bl = BusinessLogicHttpClientFactory.create_http_bl_client(
        vtn_base_url=url,
        client_id=job["bl_id"],
        client_secret=job["bl_secret"],
        allow_insecure_http=True,
        version=OADRVersion.OADR_310,
    )
    program = bl.programs.create_program(NewProgram(program_name=job["program_name"]))
    out["program_id"] = program.id
    start = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
    event = bl.events.create_event(
        NewEvent(
            program_id=program.id,
            event_name="congestion-station-1",
            targets=("station-1",),
            payload_descriptors=(
                EventPayloadDescriptor(payload_type=EventPayloadType.IMPORT_CAPACITY_LIMIT, units=Unit.KW),
            ),
            intervals=tuple(
                Interval(
                    id=k,
                    interval_period=IntervalPeriod(
                        start=start + k * timedelta(minutes=15), duration=timedelta(minutes=15)
                    ),
                    payloads=(EventPayload(type=EventPayloadType.IMPORT_CAPACITY_LIMIT, values=(kw,)),),
                )
                for k, kw in enumerate(job["limits_kw"])
            ),
        )
    )
    out["event_id"] = event.id
    out["event_created"] = event.created_date_time.isoformat()

    ven = VirtualEndNodeHttpClientFactory.create_http_ven_client(
        vtn_base_url=url,
        client_id=job["ven_id"],
        client_secret=job["ven_secret"],
        allow_insecure_http=True,
        version=OADRVersion.OADR_310,
    )
    out["ven_programs"] = [p.program_name for p in ven.programs.get_programs(target=None, pagination=None)]
    events = ven.events.get_events(target=None, pagination=None, program_id=program.id)
    out["ven_events"] = [
        {"id": e.id, "limits_kw": [iv.payloads[0].values[0] for iv in e.intervals or ()]} for e in events
    ]
    report = ven.reports.create_report(
        NewReport(
            event_id=event.id,
            client_name=job["ven_id"],
            report_name="delivered",
            resources=(
                ReportResource(
                    resource_name="site-1",
                    intervals=tuple(
                        Interval(id=k, payloads=(ReportPayload(type=ReportPayloadType.USAGE, values=(kw,)),))
                        for k, kw in enumerate(job["usage_kw"])
                    ),
                ),
            ),
        )
    )
    out["report_id"] = report.id
    out["report_client_id"] = report.client_id
    out["ven_reports"] = [
        r.id
        for r in ven.reports.get_reports(pagination=None, program_id=None, event_id=None, client_name=None)
    ]
    try:
        bl.reports.get_reports(pagination=None, program_id=None, event_id=None, client_name=None)
        out["bl_reads_reports"] = True
    except Exception as exc:
        out["bl_reads_reports"] = f"{type(exc).__name__}: {exc}"
    try:  # a VEN may not write programmes: the VTN must answer 403
        ven_as_bl = BusinessLogicHttpClientFactory.create_http_bl_client(
            vtn_base_url=url,
            client_id=job["ven_id"],
            client_secret=job["ven_secret"],
            allow_insecure_http=True,
            version=OADRVersion.OADR_310,
        )
        ven_as_bl.programs.create_program(NewProgram(program_name="not-allowed"))
        out["ven_program_write"] = "accepted"
    except Exception as exc:
        out["ven_program_write"] = getattr(getattr(exc, "response", None), "status_code", repr(exc))

    if job.get("nlflex_event_ids"):
        from openadr3_client_nlflex_compliance.nlflex10.event_nlflex_compliant import (
            event_kind,
            validate_event_nlflex_compliant,
        )

        checks = {}
        for eid in job["nlflex_event_ids"]:
            e = ven.events.get_event_by_id(eid)
            errors = validate_event_nlflex_compliant(e)
            checks[eid] = {
                "kind": str(event_kind(e)),
                "errors": [str(err.get("ctx", {}).get("error", err)) for err in errors or ()],
            }
        out["nlflex"] = checks
    print(json.dumps(out))


if __name__ == "__main__":
    main()
