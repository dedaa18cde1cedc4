"""Events from the congestion forecast (pure): worked examples with numbers you can check by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud_controller.openadr.congestion_events import (
    CongestionPoint,
    capacity_limit_event,
    flex_dispatch_event,
)

DAY = datetime(2026, 12, 3, tzinfo=UTC)
STEP = timedelta(minutes=15)


def point(overloads: dict[int, float], limit_kw: float = 100.0) -> CongestionPoint:
    load = [80.0] * 96
    for k, over in overloads.items():
        load[k] = limit_kw + over
    return CongestionPoint("st-1", DAY, STEP, load, limit_kw)


def test_capacity_limit_event_covers_only_the_congested_steps() -> None:
    ev = capacity_limit_event(point({68: 4.0, 69: 10.0}), "prog-1")
    assert ev["targets"] == ["st-1"] and ev["programID"] == "prog-1"
    assert [
        (iv["id"], iv["intervalPeriod"]["start"], iv["payloads"][0]["values"]) for iv in ev["intervals"]
    ] == [
        (0, "2026-12-03T17:00:00Z", [100.0]),
        (1, "2026-12-03T17:15:00Z", [100.0]),
    ]


def test_a_short_overload_is_a_two_hour_dispatch_with_adjacent_hours() -> None:
    # 17:00-17:30 over by 4 and 10.004 kW: one PT2H dispatch of 10.01 kW (rounded up), 16:00 and 19:00 at 0
    ev, plan = flex_dispatch_event(point({68: 4.0, 69: 10.004}), "p", window_start=DAY)
    rows = [
        (
            iv["intervalPeriod"]["start"][11:16],
            iv["intervalPeriod"]["duration"],
            iv["payloads"][0]["values"][0],
        )
        for iv in ev["intervals"]
    ]
    assert rows == [("16:00", "PT1H", 0.0), ("17:00", "PT2H", 10.01), ("19:00", "PT1H", 0.0)]
    assert [iv["id"] for iv in ev["intervals"]] == [0, 1, 2]
    assert ev["intervalPeriod"] == {"start": "2026-12-03T00:00:00Z", "duration": "P1D"}
    assert plan.dropped == 0


def test_a_five_hour_overload_takes_six_hours_and_a_later_one_its_own_dispatch() -> None:
    # 08:00-12:45 over (worst 7 kW) → PT6H from 08:00; 20:00 over by 3 kW → PT2H from 20:00
    overloads = {k: 2.0 for k in range(32, 52)} | {40: 7.0, 80: 3.0}
    ev, plan = flex_dispatch_event(point(overloads), "p", window_start=DAY)
    assert [(d.start.hour, d.duration, d.flex_kw) for d in plan.dispatches] == [
        (8, timedelta(hours=6), 7.0),
        (20, timedelta(hours=2), 3.0),
    ]
    adjacent = [
        iv["intervalPeriod"]["start"][11:16]
        for iv in ev["intervals"]
        if iv["intervalPeriod"]["duration"] == "PT1H"
    ]
    assert adjacent == ["07:00", "14:00", "19:00", "22:00"]


def test_dispatches_outside_the_window_are_counted_not_hidden() -> None:
    ev, plan = flex_dispatch_event(point({95: 5.0}), "p", window_start=DAY)  # 23:45 + 2 h leaves the day
    assert plan.dispatches == [] and plan.dropped == 1 and ev["intervals"] == []


def test_bad_forecasts_are_refused_with_the_station_named() -> None:
    with pytest.raises(ValueError, match="st-1: load_kw is not finite"):
        CongestionPoint("st-1", DAY, STEP, [1.0, float("nan")], 100.0)
    with pytest.raises(ValueError, match="st-1: limit_kw"):
        CongestionPoint("st-1", DAY, STEP, [1.0], 0.0)
    with pytest.raises(ValueError, match="time-zone aware"):
        CongestionPoint("st-1", datetime(2026, 12, 3), STEP, [1.0], 10.0)
