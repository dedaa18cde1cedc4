"""OpenADR 3 events → DR requests (and refusals), DR delivery → OpenADR report: the pure mapping.

Hand-made events in the shapes GridFlex's own VTN and the ElaadNL client send: an NL FLEX
dispatch day (PT1H 0 / PT2H 10.01 kW / PT1H 0 → one 2-hour request of 8 × 15 min), a plain
IMPORT_CAPACITY_LIMIT (120 kW baseline, caps 40 and 35.5 → 80 and 84.5 kW off), SIMPLE
levels, PRICE on the intervals; every refusal names its reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cloud_controller.openadr.ven.config import ProgramMap
from cloud_controller.openadr.ven.mapping import MappedRequest, Refusal, delivery_report, event_requests

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
RULE = ProgramMap(
    program="congestion-nl",
    dr_program="peak",
    simple_levels_kw={1: 10.0, 2: 25.0},
    import_baseline_kw={"station-1": 120.0},
)


def _iv(k: int, start: str, duration: str, kind: str, value: float, **extra: Any) -> dict[str, Any]:
    payloads = [{"type": kind, "values": [value]}, *extra.get("more", [])]
    return {"id": k, "intervalPeriod": {"start": start, "duration": duration}, "payloads": payloads}


def _event(intervals: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {
        "id": "ev-1",
        "programID": "p-1",
        "modificationDateTime": "2026-12-03T07:00:00Z",
        "targets": ["station-1"],
        "intervals": intervals,
        **kw,
    }


FLEX_DAY = _event(
    [
        _iv(0, "2026-12-03T16:00:00Z", "PT1H", "FLEX", 0.0),
        _iv(1, "2026-12-03T17:00:00Z", "PT2H", "FLEX", 10.01),
        _iv(2, "2026-12-03T19:00:00Z", "PT1H", "FLEX", 0.0),
    ],
    payloadDescriptors=[{"payloadType": "FLEX", "units": "KW"}],
)


def _requests(event: dict[str, Any], rule: ProgramMap = RULE) -> list[MappedRequest]:
    out = event_requests(event, rule, now=NOW)
    assert not isinstance(out, Refusal), out
    return out


def test_nl_flex_dispatch_becomes_one_two_hour_request_of_eight_quarter_hours() -> None:
    (m,) = _requests(FLEX_DAY)
    r = m.request
    assert (r.program, r.direction, r.p_kw) == ("peak", "reduce", 10.01)
    assert (r.start.isoformat(), r.end.isoformat()) == (
        "2026-12-03T17:00:00+00:00",
        "2026-12-03T19:00:00+00:00",
    )
    assert [iv.p_kw for iv in r.intervals] == [10.01] * 8
    assert m.spans == ((1, 0, 8),) and m.step_s == 900
    assert r.service_type == "openadr3:FLEX"
    assert r.request_id.startswith("oa3-")


def test_two_dispatches_give_two_requests_and_a_new_version_new_ids() -> None:
    event = _event(
        [
            _iv(0, "2026-12-03T08:00:00Z", "PT6H", "FLEX", 7.0),
            _iv(1, "2026-12-03T20:00:00Z", "PT2H", "FLEX", 3.0),
        ]
    )
    a, b = _requests(event)
    assert (len(a.request.intervals), len(b.request.intervals)) == (24, 8)
    newer = _requests({**event, "modificationDateTime": "2026-12-03T07:30:00Z"})
    assert {m.request.request_id for m in newer}.isdisjoint({a.request.request_id, b.request.request_id})
    assert [m.request.request_id for m in _requests(event)] == [a.request.request_id, b.request.request_id]


def test_capacity_limit_is_baseline_minus_limit_per_interval() -> None:
    event = _event(
        [
            _iv(0, "2026-12-03T16:00:00Z", "PT15M", "IMPORT_CAPACITY_LIMIT", 40.0),
            _iv(1, "2026-12-03T16:15:00Z", "PT15M", "IMPORT_CAPACITY_LIMIT", 35.5),
            _iv(2, "2026-12-03T16:30:00Z", "PT15M", "IMPORT_CAPACITY_LIMIT", 130.0),
        ]
    )
    (m,) = _requests(event)
    assert [iv.p_kw for iv in m.request.intervals] == [80.0, 84.5]  # the 130 kW cap asks nothing
    assert m.request.p_kw == 84.5


def test_simple_levels_and_price_on_intervals_without_own_periods() -> None:
    """Intervals without a period follow each other from the event's intervalPeriod."""
    event = _event(
        [
            {"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}, {"type": "PRICE", "values": [0.31]}]},
            {"id": 1, "payloads": [{"type": "SIMPLE", "values": [2]}, {"type": "PRICE", "values": [0.42]}]},
            {"id": 2, "payloads": [{"type": "SIMPLE", "values": [0]}]},
        ],
        intervalPeriod={"start": "2026-12-03T18:00:00Z", "duration": "PT10M"},
    )
    (m,) = _requests(event)
    r = m.request
    assert (r.start.isoformat(), r.end.isoformat()) == (
        "2026-12-03T18:00:00+00:00",
        "2026-12-03T18:20:00+00:00",
    )
    assert m.step_s == 600  # 10-minute intervals: 10-minute steps (≤ 15 min)
    assert [(iv.p_kw, iv.price_eur_per_kwh) for iv in r.intervals] == [(10.0, 0.31), (25.0, 0.42)]


def test_target_sites_become_the_requests_sites() -> None:
    rule = RULE.model_copy(update={"target_sites": {"station-1": ["b", "a"], "station-2": ["c"]}})
    (m,) = _requests(FLEX_DAY, rule)
    assert m.request.sites == ["a", "b"]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            _event([_iv(0, "2026-12-03T16:00:00Z", "PT1H", "EXPORT_CAPACITY_LIMIT", 5.0)]),
            "'EXPORT_CAPACITY_LIMIT' is not mapped",
        ),
        (_event([_iv(0, "2026-12-03T16:00:00Z", "PT1H", "PRICE", 0.3)]), "PRICE-only event asks for no kW"),
        (_event([_iv(0, "2026-12-03T16:00:00Z", "PT1H", "SIMPLE", 3)]), "SIMPLE level 3 has no kW"),
        (_event([_iv(0, "2026-12-03T16:00:00Z", "PT0S", "FLEX", 3.0)]), "unbounded"),
        (_event([_iv(0, "2026-12-03T06:00:00Z", "PT1H", "FLEX", 3.0)]), "the event is over"),
        (_event([_iv(0, "2026-12-03T16:00:00Z", "PT1H", "FLEX", 0.0)]), "asks for no kW in any interval"),
        (_event([]), "no intervals"),
        (
            _event(
                [
                    _iv(0, "2026-12-03T16:00:00Z", "PT1H", "FLEX", 3.0),
                    _iv(1, "2026-12-03T16:30:00Z", "PT1H", "FLEX", 3.0),
                ]
            ),
            "intervals 0 and 1 overlap",
        ),
        (
            _event(
                [_iv(0, "2026-12-03T16:00:00Z", "PT1H", "IMPORT_CAPACITY_LIMIT", 40.0)], targets=["station-9"]
            ),
            "needs exactly one event target with an import_baseline_kw",
        ),
        (
            _event(
                [_iv(0, "2026-12-03T16:00:00Z", "PT1H", "FLEX", 3.0)],
                payloadDescriptors=[{"payloadType": "FLEX", "units": "W"}],
            ),
            "GridFlex maps KW only",
        ),
        (
            _event(
                [
                    _iv(
                        0,
                        "2026-12-03T16:00:00Z",
                        "PT1H",
                        "FLEX",
                        3.0,
                        more=[{"type": "SIMPLE", "values": [1]}],
                    )
                ]
            ),
            "more than one kW signal",
        ),
        (_event([_iv(0, "2026-12-03T16:00:00Z", "PT1H", "FLEX", -2.0)]), "negative"),
    ],
    ids=[
        "unmapped-type",
        "price-only",
        "simple-unmapped-level",
        "unbounded",
        "over",
        "zero-kw",
        "no-intervals",
        "overlap",
        "limit-without-baseline",
        "units",
        "two-kw-signals",
        "negative-flex",
    ],
)
def test_unmappable_events_are_refused_with_the_reason(event: dict[str, Any], reason: str) -> None:
    out = event_requests(event, RULE, now=NOW)
    assert isinstance(out, Refusal), out
    assert out.event_id == "ev-1"
    assert reason in out.reason


def test_event_targets_not_served_are_refused() -> None:
    rule = RULE.model_copy(update={"target_sites": {"station-2": ["c"]}})
    out = event_requests(FLEX_DAY, rule, now=NOW)
    assert isinstance(out, Refusal) and "not served by this VEN" in out.reason


def test_report_is_the_mean_delivered_kw_per_event_interval_once_all_its_steps_are_in() -> None:
    (m,) = _requests(FLEX_DAY)
    rid = m.request.request_id
    rows = [
        {"site": s, "step": k, "delivered_kw": kw} for k in range(8) for s, kw in (("a", 6.0), ("b", 3.0 + k))
    ]
    assert (
        delivery_report(FLEX_DAY, {rid: m.spans}, {rid: {"intervals": rows[:-2]}}, RULE, ven_name="agg")
        is None
    )
    report = delivery_report(FLEX_DAY, {rid: m.spans}, {rid: {"intervals": rows}}, RULE, ven_name="agg")
    assert report is not None
    assert (report["eventID"], report["clientName"]) == ("ev-1", "agg")
    assert report["payloadDescriptors"][0]["payloadType"] == "DELIVERED_FLEX"
    (res,) = report["resources"]
    assert res["resourceName"] == "station-1"
    # Σ sites per step = 9 + k, mean over k = 0..7 → 12.5 kW for event interval 1 (17:00, PT2H)
    assert res["intervals"] == [
        {
            "id": 1,
            "intervalPeriod": {"start": "2026-12-03T17:00:00Z", "duration": "PT2H"},
            "payloads": [{"type": "DELIVERED_FLEX", "values": [12.5]}],
        }
    ]
