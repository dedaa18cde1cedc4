"""The demo's DR event, pure parts: the contracts file the controller loads, the request its check accepts,
the summary's verdict and the asset-level delivery numbers (gridflex/loop/dr_event.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud_controller.dr.contracts import check_request
from cloud_controller.dr.contracts_file import load_contracts
from cloud_controller.live.types import AssetRef, SiteRef
from gridflex.loop.dr_event import (
    DrEventSettings,
    asset_delivery,
    contracts_yaml,
    dr_section,
    interval_bounds,
    render_dr_markdown,
    request_body,
    request_kw,
)
from protocols.messages import DRRequest

DAY = datetime(2030, 1, 15, tzinfo=UTC)
SITES = (
    SiteRef("b001", 0, (AssetRef("meter", "meter"), AssetRef("ev1", "ev", 11.0))),
    SiteRef("b002", 1, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 13.5))),
    SiteRef("b003", 2, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 13.5))),
)
EVENT = DrEventSettings(start=DAY + timedelta(hours=17), intervals=4, step_min=15, notice_s=3000.0)


def test_contracts_file_loads_one_contract_per_battery_site(tmp_path: Path) -> None:
    path = tmp_path / "contracts.yaml"
    path.write_text(contracts_yaml(SITES, EVENT), encoding="utf-8")
    loaded = load_contracts(path)  # the controller's own loader and validation
    assert [c.site for c in loaded.contracts] == ["b002", "b003"]  # b001 has no battery: not contracted
    assert all(c.p_max_kw == 5.0 and c.directions == {"reduce"} for c in loaded.contracts)
    assert {k: (b.asset, b.capacity_kwh) for k, b in loaded.batteries.items()} == {
        ("b002", "peak"): ("bat1", 13.5),
        ("b003", "peak"): ("bat1", 13.5),
    }


def test_no_battery_no_contracts() -> None:
    with pytest.raises(ValueError, match="no site with a battery"):
        contracts_yaml(SITES[:1], EVENT)


def test_request_passes_every_contract_rule_and_asks_the_share(tmp_path: Path) -> None:
    path = tmp_path / "contracts.yaml"
    path.write_text(contracts_yaml(SITES, EVENT), encoding="utf-8")
    posted_at = EVENT.post_at
    req = DRRequest.model_validate_json(
        json.dumps(request_body(SITES, EVENT, posted_at))
    )  # as the API reads it
    assert posted_at == DAY + timedelta(hours=16, minutes=10)  # 50 min ahead
    assert req.p_kw == 4.0 == request_kw(SITES, EVENT)  # 40 % of 2 × 5 kW
    assert [i.p_kw for i in req.intervals] == [4.0] * 4 and req.end == DAY + timedelta(hours=18)
    for c in load_contracts(path).contracts:
        assert check_request(c, req, events_that_day=0, received=posted_at).accepted
        # the same request arriving 25 min before its start breaks the 30-min notice, and only that
        late = check_request(c, req, events_that_day=0, received=EVENT.start - timedelta(minutes=25))
        assert [r.rule for r in late.refusals] == ["notice"]


def test_event_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="notice_s must be >= the contracts' minimum notice 1800"):
        DrEventSettings(start=EVENT.start, notice_s=600.0)
    with pytest.raises(ValueError, match="timezone-aware"):
        DrEventSettings(start=datetime(2030, 1, 15, 17))
    with pytest.raises(ValueError, match=r"inside the run's window 16:30-21:00"):
        EVENT.check_window(DAY + timedelta(hours=16, minutes=30), DAY + timedelta(hours=21), 300.0)
    with pytest.raises(ValueError, match="inside the run's window"):  # the last report after the window
        EVENT.check_window(DAY + timedelta(hours=12), DAY + timedelta(hours=18, minutes=4), 300.0)
    EVENT.check_window(DAY + timedelta(hours=12), DAY + timedelta(hours=18, minutes=6), 300.0)


ANSWER = {
    "status": "selected",
    "unmet_kw": [0.0, 0.0],
    "selection": {
        "objective": "flexibility",
        "route": "lp",
        "delivered_kw": [4.0, 4.0],
        "sources": [
            {"site": "b002", "asset": "bat1", "kind": "battery", "kw": [-4.0, -4.0]},
            {"site": "b003", "asset": "bat1", "kind": "battery", "kw": [0.0, 0.0]},
        ],
    },
}


def _row(step: int, baseline: float, actual: float) -> dict[str, object]:
    return {
        "site": "b002",
        "step": step,
        "baseline_kw": baseline,
        "actual_kw": actual,
        "selected_kw": 4.0,
        "delivered_kw": baseline - actual,
        "shortfall_kw": max(0.0, 4.0 - (baseline - actual)),
    }


def test_section_sums_the_report_per_interval_and_passes() -> None:
    report = {
        "status": "completed",
        "commands_sent": 2,
        "acks": {"ok": 2},
        "intervals": [_row(0, 1.0, -2.5), _row(1, 1.0, -3.0)],
        "totals": {
            "selected_kwh": 2.0,
            "delivered_kwh": 1.875,
            "shortfall_kwh": 0.125,
            "delivered_pct": 93.75,
        },
    }
    body = request_body(SITES, EVENT, EVENT.post_at)
    s = dr_section(body, ANSWER, report, [])
    assert s.ok and s.problems == []
    assert [r["delivered_kw"] for r in s.data["delivery"]["per_interval"]] == [3.5, 4.0]
    assert [r["shortfall_kw"] for r in s.data["delivery"]["per_interval"]] == [0.5, 0.0]
    assert s.data["selection"]["sites"] == 1  # b003's 0 kW source is not a selected site
    md = render_dr_markdown(s)
    assert "| 0 | 1.00 | -2.50 | 4.00 | 3.50 | 0.50 |" in md and "Verdict: ok" in md


def test_section_fails_when_refused_partial_or_nothing_delivered() -> None:
    body = request_body(SITES, EVENT, EVENT.post_at)
    refused = {
        "status": "refused",
        "detail": {
            "detail": {
                "reason": "refused by rule(s) notice",
                "refusals": [{"site": "b002", "rule": "notice"}],
            }
        },
    }
    s = dr_section(body, refused, None, [])
    assert not s.ok and "refused by rule(s) notice" in s.problems[0]
    assert s.data["refusals"] == [{"site": "b002", "rule": "notice"}]
    partial = {**ANSWER, "status": "partial", "unmet_kw": [1.5, 0.0]}
    nothing = {"intervals": [_row(0, 1.0, 1.0)], "totals": {"delivered_kwh": 0.0}}
    s = dr_section(body, partial, nothing, [])
    assert s.problems == [
        "the selection is partial: unmet kW per interval [1.5, 0.0]",
        "nothing was delivered (0.000 kWh)",
    ]


def test_asset_delivery_time_weights_the_held_samples() -> None:
    bounds = interval_bounds(EVENT.start, EVENT.start + timedelta(minutes=30), 2)
    t = EVENT.start
    # idle before; -4 kW from 17:03 (3 of 15 min late), then 17:20 back to -2 kW
    power = [
        (t - timedelta(minutes=5), 0.0),
        (t + timedelta(minutes=3), -4.0),
        (t + timedelta(minutes=20), -2.0),
    ]
    soc = [(t + timedelta(minutes=m), v) for m, v in ((2, 20.0), (12, 12.0), (22, 6.0))]
    fan = {"site": "b002", "asset": "zone1", "kind": "fan", "kw": [-0.016, -0.016]}
    series = {
        ("b002", "bat1", "p_kw"): power,
        ("b002", "bat1", "soc_pct"): soc,
        ("b002", "zone1", "fan_kw"): [(t, 0.0)],
    }
    battery = ANSWER["selection"]["sources"][0]  # type: ignore[index]
    rows = asset_delivery([battery, fan], bounds, series)
    assert [r["measured_kw"] for r in rows] == [-3.2, -2.667, 0.0, 0.0]  # (12·-4)/15; (5·-4 + 10·-2)/15
    assert [r["error_pct"] for r in rows] == [20.0, 33.33, None, None]  # a fan's kW is a change: no error
    assert [r["soc_min_pct"] for r in rows] == [12.0, 6.0, None, None]
    assert [r["samples"] for r in rows] == [2, 2, 1, 1]
