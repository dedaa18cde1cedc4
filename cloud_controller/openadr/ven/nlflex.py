"""The Dutch profile's VEN reports (OpenADR DER profile v1.0.0, as `openadr3-client-nlflex-compliance` checks them), pure.

- `ack_report`: the flexibility dispatch acknowledgment — one resource `AGGREGATED_REPORT`,
  one interval id 0 without its own period, one `ACK` payload `[true]`; posted when the
  event arrived and at least one of its DR requests was accepted.
- `delivery_report`: the flex delivery report — once every interval of the event is over
  and every DR step has its delivery: one `AGGREGATED_REPORT` resource, one interval per
  event interval (adjacent hours included, same id and intervalPeriod), one `DELIVERED_FLEX`
  payload with a value per 15 minutes (Σ over sites of the DR delivery, kW, 2 decimals,
  clipped at 0 — the profile allows no negative delivery; a quarter hour that asked nothing
  reports 0, GridFlex measures delivery only where it was asked).

The clientName is the VEN's venName, which the profile makes the service provider's EAN13
(`config.VenConfig` checks it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cloud_controller.openadr.ven.config import ProgramMap
from cloud_controller.openadr.ven.mapping import QUARTER_HOUR_S, event_slots

__all__ = ["AGGREGATED", "ack_report", "delivery_report"]

AGGREGATED = "AGGREGATED_REPORT"


def ack_report(event: Mapping[str, Any], *, ven_name: str) -> dict[str, Any]:
    """The dispatch acknowledgment of `event`."""
    return {
        "eventID": str(event["id"]),
        "clientName": ven_name,
        "reportName": f"ack-{event['id']}",
        "resources": [
            {
                "resourceName": AGGREGATED,
                "intervals": [{"id": 0, "payloads": [{"type": "ACK", "values": [True]}]}],
            }
        ],
    }


def delivery_report(
    event: Mapping[str, Any],
    spans: Mapping[str, Sequence[tuple[int, int, int]]],
    step_s: Mapping[str, int],
    dr_reports: Mapping[str, Mapping[str, Any]],
    rule: ProgramMap,
    *,
    ven_name: str,
    now: datetime,
) -> dict[str, Any] | None:
    """The delivery report of `event`, or None until all of it is over and every DR step is in."""
    slots = event_slots(event, rule)
    if not slots or now < max(s.end for s in slots):
        return None
    per_interval: dict[int, list[float]] = {}
    for request_id, request_spans in spans.items():
        rows = (dr_reports.get(request_id) or {}).get("intervals") or []
        per_step: dict[int, float] = {}
        for row in rows:
            per_step[int(row["step"])] = per_step.get(int(row["step"]), 0.0) + float(row["delivered_kw"])
        if step_s.get(request_id) != QUARTER_HOUR_S:
            return None  # mapping makes 15-minute steps in nlflex mode; anything else is not reportable
        for interval_id, first, n in request_spans:
            got = [per_step.get(first + j) for j in range(n)]
            if any(v is None for v in got):
                return None
            per_interval[interval_id] = [max(0.0, round(float(v or 0.0), 2)) for v in got]
    intervals = []
    for s in slots:
        n = int((s.end - s.start).total_seconds() // QUARTER_HOUR_S)
        values = per_interval.get(s.interval_id, [0.0] * n)
        period = next(
            iv.get("intervalPeriod")
            for iv in event.get("intervals") or []
            if int(iv.get("id", -1)) == s.interval_id
        )
        intervals.append(
            {
                "id": s.interval_id,
                "intervalPeriod": period or {"start": s.start.isoformat(), "duration": f"PT{n * 15}M"},
                "payloads": [{"type": "DELIVERED_FLEX", "values": values}],
            }
        )
    return {
        "eventID": str(event["id"]),
        "clientName": ven_name,
        "reportName": f"delivery-{event['id']}",
        "payloadDescriptors": [{"payloadType": "DELIVERED_FLEX", "units": "KW"}],
        "resources": [{"resourceName": AGGREGATED, "intervals": intervals}],
    }
