"""The NL profile's VEN reports (pure): the ACK's shape, the delivery report's timing, values and refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from cloud_controller.openadr.ven.config import ProgramMap, VenConfig
from cloud_controller.openadr.ven.mapping import Refusal, event_requests
from cloud_controller.openadr.ven.nlflex import ack_report, delivery_report

RULE = ProgramMap(program="nl", dr_program="peak", profile="nlflex")
EVENT: dict[str, Any] = {
    "id": "ev-nl",
    "programID": "p",
    "modificationDateTime": "2030-01-15T15:00:00Z",
    "targets": ["group-1"],
    "intervals": [
        {
            "id": 0,
            "intervalPeriod": {"start": "2030-01-15T16:00:00Z", "duration": "PT1H"},
            "payloads": [{"type": "FLEX", "values": [0.0]}],
        },
        {
            "id": 1,
            "intervalPeriod": {"start": "2030-01-15T17:00:00Z", "duration": "PT1H"},
            "payloads": [{"type": "FLEX", "values": [8.0]}],
        },
    ],
}
END = datetime(2030, 1, 15, 18, 0, tzinfo=UTC)


def _mapped() -> tuple[str, list[tuple[int, int, int]], int]:
    out = event_requests(EVENT, RULE, now=datetime(2030, 1, 15, 15, 0, tzinfo=UTC))
    assert not isinstance(out, Refusal), out
    (m,) = out
    return m.request.request_id, list(m.spans), m.step_s


def test_ack_is_one_aggregated_interval_carrying_true() -> None:
    ack = ack_report(EVENT, ven_name="8719999000008")
    assert ack["resources"] == [
        {
            "resourceName": "AGGREGATED_REPORT",
            "intervals": [{"id": 0, "payloads": [{"type": "ACK", "values": [True]}]}],
        }
    ]
    assert (ack["eventID"], ack["clientName"]) == ("ev-nl", "8719999000008")


def test_delivery_waits_for_the_end_and_every_step_then_clips_and_rounds() -> None:
    rid, spans, step_s = _mapped()
    assert (spans, step_s) == ([(1, 0, 4)], 900)
    rows = [{"step": k, "delivered_kw": kw} for k, kw in enumerate((8.004, -1.0, 7.5, 9.0))]
    args: dict[str, Any] = {
        "spans": {rid: spans},
        "step_s": {rid: step_s},
        "rule": RULE,
        "ven_name": "8719999000008",
    }
    assert (
        delivery_report(
            EVENT,
            dr_reports={rid: {"intervals": rows}},
            now=datetime(2030, 1, 15, 17, 59, tzinfo=UTC),
            **args,
        )
        is None
    )
    assert delivery_report(EVENT, dr_reports={rid: {"intervals": rows[:3]}}, now=END, **args) is None
    report = delivery_report(EVENT, dr_reports={rid: {"intervals": rows}}, now=END, **args)
    assert report is not None
    (res,) = report["resources"]
    assert res["resourceName"] == "AGGREGATED_REPORT"
    assert [(iv["id"], iv["intervalPeriod"], iv["payloads"][0]["values"]) for iv in res["intervals"]] == [
        (0, EVENT["intervals"][0]["intervalPeriod"], [0.0] * 4),  # asked nothing: reported 0
        (1, EVENT["intervals"][1]["intervalPeriod"], [8.0, 0.0, 7.5, 9.0]),  # -1 kW clipped, 8.004 → 8.0
    ]


def test_nl_profile_refuses_intervals_that_are_not_quarter_hours() -> None:
    odd = {
        **EVENT,
        "intervals": [
            {
                **EVENT["intervals"][1],
                "intervalPeriod": {"start": "2030-01-15T17:00:00Z", "duration": "PT10M"},
            }
        ],
    }
    out = event_requests(odd, RULE, now=datetime(2030, 1, 15, 15, 0, tzinfo=UTC))
    assert isinstance(out, Refusal) and "not whole quarter hours" in out.reason


@pytest.mark.parametrize(
    ("name", "ok"), [("8719999000008", True), ("8719999000009", False), ("gridflex-agg", False)]
)
def test_nl_profile_needs_an_ean13_ven_name(name: str, ok: bool) -> None:
    doc = {
        "vtn": {"url": "http://127.0.0.1:1/openadr3", "ven_name": name},
        "dr_api": {"operator_token_file": "op"},
        "programs": [{"program": "nl", "dr_program": "peak", "profile": "nlflex"}],
    }
    if ok:
        assert VenConfig.model_validate(doc).vtn.ven_name == name
    else:
        with pytest.raises(ValidationError, match="EAN13"):
            VenConfig.model_validate(doc)
