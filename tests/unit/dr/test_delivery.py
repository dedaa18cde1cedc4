"""DR delivery arithmetic on hand examples: baseline from the plan's forecast or the measurement, actual as
the held samples' time-weighted mean, delivered each way, shortfall, totals; an interval without telemetry is
all shortfall, not a silent 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud_controller.dr.delivery import (
    baseline_per_interval,
    hold_mean,
    household_kw,
    interval_delivery,
    site_selected_kw,
    totals,
)

T0 = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
Q = timedelta(minutes=15)
M = timedelta(minutes=1)


def _at(*values: tuple[float, float]) -> list[tuple[datetime, float]]:
    """Samples at minutes after T0."""
    return [(T0 + m * M, v) for m, v in values]


def test_actual_is_the_held_samples_time_weighted_mean() -> None:
    # 4.0 from before the start until minute 5, then 1.0 until minute 10, then 2.5: (4*5 + 1*5 + 2.5*5)/15
    samples = _at((-3, 4.0), (5, 1.0), (10, 2.5))
    mean, n = hold_mean(samples, T0, T0 + Q)
    assert mean == pytest.approx(2.5) and n == 3
    # a steady value reported before the interval only: it holds throughout
    assert hold_mean(_at((-2, -2.56)), T0, T0 + Q) == (-2.56, 1)
    # nothing before the start: from the first sample inside; nothing at all: None
    mean, n = hold_mean(_at((5, 3.0), (10, 1.0)), T0, T0 + Q)
    assert mean == pytest.approx(2.0) and n == 2
    assert hold_mean([], T0, T0 + Q) == (None, 0)


def test_reduce_delivery_by_hand() -> None:
    # baseline 5.0 kW; measured 2.0, 2.2, 1.8 for 5 minutes each → actual 2.0; delivered 5.0 - 2.0 = 3.0; selected 3.5 → short 0.5
    d = interval_delivery(
        site="s1",
        step=0,
        bounds=(T0, T0 + Q),
        direction="reduce",
        baseline_kw=5.0,
        baseline_source="forecast",
        samples=_at((0, 2.0), (5, 2.2), (10, 1.8)),
        selected_kw=3.5,
    )
    assert (d.actual_kw, d.delivered_kw, d.shortfall_kw, d.samples) == (2.0, 3.0, 0.5, 3)  # rounded to 1e-6
    # over-delivery has no negative shortfall
    more = interval_delivery(
        site="s1", step=0, bounds=(T0, T0 + Q), direction="reduce", baseline_kw=5.0,
        baseline_source="measured", samples=_at((-1, 1.0)), selected_kw=3.5,
    )  # fmt: skip
    assert (more.delivered_kw, more.shortfall_kw) == (4.0, 0.0)


def test_increase_delivery_and_no_telemetry() -> None:
    up = interval_delivery(
        site="s1", step=1, bounds=(T0, T0 + Q), direction="increase", baseline_kw=-1.0,
        baseline_source="forecast", samples=_at((0, 2.0), (7.5, 3.0)), selected_kw=4.0,
    )  # fmt: skip
    assert (up.actual_kw, up.delivered_kw, up.shortfall_kw) == (2.5, 3.5, 0.5)  # 2.5 - (-1.0)
    none = interval_delivery(
        site="s1", step=1, bounds=(T0, T0 + Q), direction="reduce", baseline_kw=5.0,
        baseline_source="forecast", samples=[], selected_kw=4.0,
    )  # fmt: skip
    assert (none.actual_kw, none.delivered_kw, none.shortfall_kw, none.samples) == (None, 0.0, 4.0, 0)


def test_baseline_from_the_plan_forecast_else_measured() -> None:
    forecast = [4.0, 6.0, 8.0, 10.0]  # 15-min periods from 17:00
    bounds = [(T0, T0 + 2 * Q), (T0 + Q, T0 + 3 * Q), (T0 + 3 * Q, T0 + 5 * Q)]
    kw, src = baseline_per_interval(bounds, plan_at=T0, period_s=900, forecast_kw=forecast, p_now_kw=3.3)
    # (4+6)/2, (6+8)/2, and the third runs past the plan's horizon: the measurement
    assert kw == [5.0, 7.0, 3.3] and src == ["forecast", "forecast", "measured"]
    half = [(T0 + Q / 2, T0 + Q + Q / 2)]  # half of period 0, half of period 1
    assert baseline_per_interval(half, plan_at=T0, period_s=900, forecast_kw=forecast, p_now_kw=None)[0] == [
        5.0
    ]
    kw, src = baseline_per_interval(bounds[:1], plan_at=None, period_s=0, forecast_kw=None, p_now_kw=None)
    assert (kw, src) == ([0.0], ["none"])


def test_selected_per_site_and_totals() -> None:
    sources = [
        {"site": "a", "asset": "bat1", "kw": [-3.0, -2.0]},
        {"site": "a", "asset": "ev1", "kw": [-1.0, 0.0]},
        {"site": "b", "asset": "bat1", "kw": [-2.0, -2.0]},
    ]
    assert site_selected_kw(sources, 2) == {"a": [4.0, 2.0], "b": [2.0, 2.0]}
    # a contracted site the selection gave 0 kW is not part of the delivery
    assert site_selected_kw([*sources, {"site": "c", "asset": "bat1", "kw": [0.0, 0.0]}], 2) == {
        "a": [4.0, 2.0],
        "b": [2.0, 2.0],
    }
    rows = [
        {"selected_kw": 4.0, "delivered_kw": 3.0, "shortfall_kw": 1.0},
        {"selected_kw": 2.0, "delivered_kw": 2.5, "shortfall_kw": 0.0},
    ]
    # 15-min intervals: kWh = kW * 0.25
    assert totals(rows, 0.25) == {
        "selected_kwh": 1.5,
        "delivered_kwh": 1.375,
        "shortfall_kwh": 0.25,
        "delivered_pct": pytest.approx(91.667),
    }


def test_the_forecast_baseline_counts_the_plans_periods_from_its_period_start() -> None:
    # b003's forecast of the 16:15 plan in the demo's 5-site twin, periods from 16:15; the plan ran 40 s late
    forecast = [0.63, -3.31, -1.36, -0.32, 5.9, 6.65, 2.49, 0.85]
    bounds = [(T0 + k * Q, T0 + (k + 1) * Q) for k in range(4)]  # 17:00-18:00: periods 3..6
    plan_at = T0 - 3 * Q + timedelta(seconds=40)
    kw, src = baseline_per_interval(bounds, plan_at=plan_at, period_s=900, forecast_kw=forecast, p_now_kw=0.8)
    # not 0.044 of period 2 and 0.956 of period 3 (-0.366 kW) for 17:00, and so on
    assert kw == pytest.approx([-0.32, 5.9, 6.65, 2.49]) and src == ["forecast"] * 4


def test_the_household_baseline_takes_the_metered_battery_out_of_the_meter() -> None:
    # b003 at 17:00-17:15 in the twin: meter 0.02 kW, battery -4.98 kW: the household drew 5.00 kW; the
    # forecast said -1.40 (yesterday's 0.76 less the faded error of an EV session yesterday, not today)
    meter, battery = _at((-1, 0.02)), _at((-1, -4.98))
    household = household_kw(meter, [battery], T0, T0 + Q)
    assert household == pytest.approx(5.0)
    assert household_kw(meter, [[]], T0, T0 + Q) is None  # a battery without a sample: no household figure
    assert household_kw([], [battery], T0, T0 + Q) is None
    kw = {"site": "b003", "step": 0, "bounds": (T0, T0 + Q), "direction": "reduce", "selected_kw": 4.984}
    by_forecast = interval_delivery(**kw, baseline_kw=-1.40, baseline_source="forecast", samples=meter)  # type: ignore[arg-type]
    by_household = interval_delivery(**kw, baseline_kw=household, baseline_source="household", samples=meter)  # type: ignore[arg-type]
    assert by_forecast.delivered_kw == pytest.approx(-1.42)
    assert by_forecast.shortfall_kw == pytest.approx(6.404)
    assert by_household.delivered_kw == pytest.approx(4.98)
    assert by_household.shortfall_kw == pytest.approx(0.004)
