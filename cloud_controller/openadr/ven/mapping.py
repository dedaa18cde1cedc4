"""OpenADR 3 event → GridFlex DR requests, and DR delivery → OpenADR report (pure, no I/O).

What maps (docs/openadr.md §7), per interval, to the kW the aggregator is asked to move:

- `FLEX` (the Dutch profile's dispatch): the value is the kW to take off; 0 (its adjacent
  hours) asks nothing.
- `SIMPLE`: level 0 is normal operation (nothing); levels 1-3 take the kW the programme's
  `simple_levels_kw` gives them — a level without one is refused, never guessed.
- `IMPORT_CAPACITY_LIMIT` L: a cap on the target's import; in kW to take off that is
  baseline − L (0 when the cap is above the baseline), the baseline of the event's target
  from `import_baseline_kw`, because the VEN cannot know what a utility's station draws.
- `PRICE` (€/kWh) rides along on the intervals of one of the above; a PRICE-only event asks
  for no kW and is refused.

Every other payload type, an unbounded (PT0S) interval, overlapping intervals, intervals
that are over, and targets this VEN does not serve are refusals with a reason. Each run of
back-to-back intervals asking for kW becomes one DR request (an NL FLEX event of two
dispatches → two requests), cut into equal steps (the longest that divides every
interval's duration and is no longer than `step_minutes`), so its report can be given back
per event interval. The request id is a hash of event id, version (`modificationDateTime`) and start: a changed event gives new ids.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from cloud_controller.openadr.ven.config import ProgramMap
from protocols.messages import DRInterval, DRRequest

__all__ = [
    "KW_TYPES",
    "MappedRequest",
    "Refusal",
    "Slot",
    "delivery_report",
    "event_requests",
    "event_slots",
]

#: Payload types that say how many kW; PRICE only prices them.
KW_TYPES = ("FLEX", "SIMPLE", "IMPORT_CAPACITY_LIMIT")
MAX_STEPS = 10_000  # DRRequest.intervals' bound
QUARTER_HOUR_S = 900

_dt = TypeAdapter(datetime)
_td = TypeAdapter(timedelta)


@dataclass(frozen=True)
class Refusal:
    """An event (or part of it) GridFlex cannot turn into a DR request, and why."""

    event_id: str
    reason: str


@dataclass(frozen=True)
class Slot:
    """One event interval: its id, period, kW asked (≥ 0) and price (€/kWh) if any."""

    interval_id: int
    start: datetime
    end: datetime
    kw: float
    price_eur_per_kwh: float | None = None


@dataclass(frozen=True)
class MappedRequest:
    """A DR request and which of its steps came from which event interval: (interval id, first step, steps)."""

    request: DRRequest
    spans: tuple[tuple[int, int, int], ...]
    step_s: int


class _Refused(Exception):
    pass


def _period(raw: Any, where: str) -> tuple[datetime, timedelta]:
    if not isinstance(raw, Mapping):
        raise _Refused(f"{where}: no intervalPeriod (neither its own nor the event's)")
    try:
        start = _dt.validate_python(raw.get("start"))
        duration = _td.validate_python(raw.get("duration", "PT0S"))
    except ValidationError as exc:
        raise _Refused(f"{where}: intervalPeriod: {exc.errors()[0]['msg']}") from None
    if start.tzinfo is None:
        raise _Refused(f"{where}: intervalPeriod.start has no time zone")
    if duration <= timedelta(0):
        raise _Refused(f"{where}: duration {duration} (PT0S, unbounded) cannot be cut into DR steps")
    return start.astimezone(UTC), duration


def _value(payload: Mapping[str, Any], where: str) -> float:
    values = payload.get("values")
    if not isinstance(values, list) or not values:
        raise _Refused(f"{where}: {payload.get('type')} has no value")
    v = values[0]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _Refused(f"{where}: {payload.get('type')} value {v!r} is not a finite number")
    return float(v)


def _targets(event: Mapping[str, Any]) -> list[str]:
    """3.1 targets are strings, 3.0 ones values maps: their values."""
    out: list[str] = []
    for t in event.get("targets") or []:
        if isinstance(t, str):
            out.append(t)
        elif isinstance(t, Mapping):
            out += [str(v) for v in t.get("values") or []]
    return out


def _descriptor_check(event: Mapping[str, Any]) -> None:
    for d in event.get("payloadDescriptors") or []:
        if not isinstance(d, Mapping):
            continue
        kind, units = d.get("payloadType"), d.get("units")
        if kind in ("FLEX", "IMPORT_CAPACITY_LIMIT") and units not in (None, "KW"):
            raise _Refused(f"payloadDescriptors: {kind} in {units!r}; GridFlex maps KW only")
        if kind == "PRICE" and d.get("currency") not in (None, "EUR"):
            raise _Refused(f"payloadDescriptors: PRICE in {d.get('currency')!r}; GridFlex maps EUR only")


def _kw(kind: str, value: float, rule: ProgramMap, targets: list[str], where: str) -> float:
    if kind == "FLEX":
        if value < 0:
            raise _Refused(f"{where}: FLEX {value} kW is negative")
        return value
    if kind == "SIMPLE":
        level = int(value)
        if level != value or not 0 <= level <= 3:
            raise _Refused(f"{where}: SIMPLE level {value} is not 0-3")
        if level == 0:
            return 0.0
        if level not in rule.simple_levels_kw:
            raise _Refused(f"{where}: SIMPLE level {level} has no kW in simple_levels_kw of {rule.program!r}")
        return rule.simple_levels_kw[level]
    known = [t for t in targets if t in rule.import_baseline_kw]
    if len(known) != 1:
        raise _Refused(
            f"{where}: IMPORT_CAPACITY_LIMIT needs exactly one event target with an import_baseline_kw "
            f"(targets {targets}, baselines for {sorted(rule.import_baseline_kw)})"
        )
    return max(0.0, rule.import_baseline_kw[known[0]] - value)


def event_slots(event: Mapping[str, Any], rule: ProgramMap) -> list[Slot]:
    """The event's intervals as slots (kW asked, price), in time order; raises `_Refused`."""
    _descriptor_check(event)
    intervals = event.get("intervals") or []
    if not intervals:
        raise _Refused("the event has no intervals")
    targets = _targets(event)
    default = event.get("intervalPeriod")
    slots: list[Slot] = []
    follow: datetime | None = None  # an interval without its own period starts where the last ended
    for i, iv in enumerate(intervals):
        where = f"intervals[{i}]"
        own = iv.get("intervalPeriod")
        start, duration = _period(own or default, where)
        if own is None and follow is not None:
            start = follow
        follow = start + duration
        kw: float | None = None
        price: float | None = None
        for p in iv.get("payloads") or []:
            kind = p.get("type")
            if kind == "PRICE":
                price = _value(p, where)
            elif kind in KW_TYPES:
                if kw is not None:
                    raise _Refused(f"{where}: more than one kW signal ({kind} beside another)")
                kw = _kw(str(kind), _value(p, where), rule, targets, where)
            else:
                raise _Refused(
                    f"{where}: payload type {kind!r} is not mapped (GridFlex maps {', '.join(KW_TYPES)}, PRICE)"
                )
        slots.append(Slot(int(iv.get("id", i)), start, start + duration, kw or 0.0, price))
        if kw is None and price is None:
            raise _Refused(f"{where}: no payload")
    if all(all(p.get("type") == "PRICE" for p in iv.get("payloads") or []) for iv in intervals):
        raise _Refused("a PRICE-only event asks for no kW (GridFlex's DR requests are in kW)")
    slots.sort(key=lambda s: s.start)
    for a, b in itertools.pairwise(slots):
        if b.start < a.end:
            raise _Refused(f"intervals {a.interval_id} and {b.interval_id} overlap")
    return slots


def _blocks(slots: Sequence[Slot], now: datetime) -> list[list[Slot]]:
    """Runs of back-to-back slots that ask for kW and are not over."""
    out: list[list[Slot]] = []
    for s in slots:
        if s.kw <= 0 or s.end <= now:
            continue
        if out and out[-1][-1].end == s.start:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def _request_id(event_id: str, version: str, start: datetime) -> str:
    h = hashlib.sha256(f"{event_id}|{version}|{start.isoformat()}".encode()).hexdigest()
    return f"oa3-{h[:24]}"


def _sites(event: Mapping[str, Any], rule: ProgramMap) -> list[str]:
    if not rule.target_sites:
        return []
    targets = _targets(event)
    served = [t for t in targets if t in rule.target_sites]
    if not served:
        raise _Refused(
            f"targets {targets} are not served by this VEN (target_sites: {sorted(rule.target_sites)})"
        )
    return sorted({site for t in served for site in rule.target_sites[t]})


def _one_request(
    block: list[Slot], event: Mapping[str, Any], rule: ProgramMap, now: datetime, sites: list[str]
) -> MappedRequest:
    durations = [int((s.end - s.start).total_seconds()) for s in block]
    g = math.gcd(*durations)  # the longest step ≤ step_minutes that divides every interval
    step_s = next(d for d in range(min(g, rule.step_minutes * 60), 0, -1) if g % d == 0)
    intervals: list[DRInterval] = []
    spans: list[tuple[int, int, int]] = []
    for s, d in zip(block, durations, strict=True):
        n = d // step_s
        spans.append((s.interval_id, len(intervals), n))
        intervals += [DRInterval(p_kw=s.kw, price_eur_per_kwh=s.price_eur_per_kwh)] * n
    if len(intervals) > MAX_STEPS:
        raise _Refused(f"{len(intervals)} steps of {step_s} s exceed a DR request's {MAX_STEPS}")
    kinds = sorted(
        {str(p.get("type")) for iv in event.get("intervals") or [] for p in iv.get("payloads") or []}
        & set(KW_TYPES)
    )
    event_id = str(event["id"])
    version = str(event.get("modificationDateTime") or event.get("createdDateTime") or "")
    request = DRRequest(
        program=rule.dr_program,
        ts=now,
        request_id=_request_id(event_id, version, block[0].start),
        start=block[0].start,
        end=block[-1].end,
        direction=rule.direction,
        p_kw=max(s.kw for s in block),
        sites=sites,
        objective=rule.objective,
        intervals=intervals,
        service_type=f"openadr3:{'+'.join(kinds)}"[:64],
    )
    return MappedRequest(request, tuple(spans), step_s)


def event_requests(
    event: Mapping[str, Any], rule: ProgramMap, *, now: datetime
) -> list[MappedRequest] | Refusal:
    """The event's DR requests (one per run of back-to-back intervals asking for kW), or why not."""
    event_id = str(event.get("id", "?"))
    try:
        slots = event_slots(event, rule)
        if rule.profile == "nlflex":
            odd = [s.interval_id for s in slots if (s.end - s.start).total_seconds() % QUARTER_HOUR_S]
            if odd:
                raise _Refused(
                    f"intervals {odd} are not whole quarter hours (the NL profile reports per 15 min)"
                )
        sites = _sites(event, rule)
        blocks = _blocks(slots, now)
        if not blocks:
            asked = [s for s in slots if s.kw > 0]
            reason = (
                "asks for no kW in any interval"
                if not asked
                else f"is over (last end {asked[-1].end.isoformat()})"
            )
            raise _Refused(f"the event {reason}")
        return [_one_request(b, event, rule, now, sites) for b in blocks]
    except _Refused as exc:
        return Refusal(event_id, str(exc))
    except ValidationError as exc:  # a DRRequest the event's numbers cannot make (e.g. end <= start)
        return Refusal(event_id, f"not a valid DR request: {exc.errors()[0]['msg']}")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _step_delivered_kw(dr_report: Mapping[str, Any]) -> dict[int, float]:
    """Σ over sites of delivered kW per reported step (the DR report's interval rows)."""
    out: dict[int, float] = {}
    for row in dr_report.get("intervals") or []:
        k = int(row["step"])
        out[k] = out.get(k, 0.0) + float(row["delivered_kw"])
    return out


def delivery_report(
    event: Mapping[str, Any],
    spans: Mapping[str, Sequence[tuple[int, int, int]]],
    dr_reports: Mapping[str, Mapping[str, Any]],
    rule: ProgramMap,
    *,
    ven_name: str,
) -> dict[str, Any] | None:
    """The OpenADR report of the event's delivered kW per event interval (mean of its steps), or None if none is in.

    An event interval is reported once every one of its DR steps has its delivery (the
    DR report's rows summed over sites); the value is the mean kW over those steps.
    `spans` is each request's `MappedRequest.spans`, by request id (what the bridge keeps).
    """
    slots = {s.interval_id: s for s in event_slots(event, rule)}
    intervals: list[dict[str, Any]] = []
    for request_id, request_spans in spans.items():
        per_step = _step_delivered_kw(dr_reports.get(request_id) or {})
        for interval_id, first, n in request_spans:
            steps = [per_step.get(first + j) for j in range(n)]
            if any(v is None for v in steps):
                continue
            slot = slots[interval_id]
            kw = sum(v for v in steps if v is not None) / n
            intervals.append(
                {
                    "id": interval_id,
                    "intervalPeriod": {
                        "start": _iso(slot.start),
                        "duration": _duration(slot.end - slot.start),
                    },
                    "payloads": [{"type": rule.report_payload, "values": [round(kw, 3)]}],
                }
            )
    if not intervals:
        return None
    targets = _targets(event)
    return {
        "eventID": str(event["id"]),
        "programID": event.get("programID"),
        "clientName": ven_name,
        "reportName": f"gridflex-delivery-{event['id']}",
        # payloadType and units only: openadr3-client 2.4.2 parses a 3.1 report's descriptors
        # as *event* payload descriptors (objectType must be EVENT_PAYLOAD_DESCRIPTOR, no
        # readingType), so the spec's REPORT_PAYLOAD_DESCRIPTOR would make it refuse the report
        "payloadDescriptors": [{"payloadType": rule.report_payload, "units": "KW"}],
        "resources": [
            {
                "resourceName": targets[0] if len(targets) == 1 else "aggregate",
                "intervals": sorted(intervals, key=lambda iv: int(iv["id"])),
            }
        ],
    }


def _duration(td: timedelta) -> str:
    s = int(td.total_seconds())
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "PT" + (f"{h}H" if h else "") + (f"{m}M" if m else "") + (f"{sec}S" if sec or not s else "")
