"""The same-time-of-day mean and pooled σ over several past days (forecast/multi_day.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud_controller.forecast.multi_day import MIN_DAYS, multi_day_profile

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
PERIOD_S = 900.0
PER_DAY = 96


def _rows(
    day_values: dict[int, float], *, evening_extra: dict[int, float] | None = None
) -> list[tuple[datetime, float]]:
    """A row per period on each past day d (1 = yesterday): its constant, plus an extra at 17:00-17:15."""
    rows = []
    for d, value in day_values.items():
        day_start = NOW - timedelta(days=d)
        for k in range(PER_DAY):
            t = day_start + timedelta(seconds=k * PERIOD_S)
            extra = (evening_extra or {}).get(d, 0.0) if (t.hour, t.minute) == (17, 0) else 0.0
            rows.append((t, value + extra))
    rows.sort()
    return rows


def test_the_mean_and_sigma_are_those_of_the_same_time_on_each_past_day() -> None:
    rows = _rows({1: 10.0, 2: 20.0, 3: 30.0, 4: 40.0})
    prof = multi_day_profile(rows, now=NOW, period_s=PERIOD_S, horizon=48, days=4)
    assert prof is not None and prof.days_used == 4
    assert np.allclose(prof.p50, 25.0)
    # sample variance of 10, 20, 30, 40 (ddof 1) = 166.67 at every step, so pooling keeps it
    assert np.allclose(prof.sigma, math.sqrt(500.0 / 3.0))


def test_sigma_is_pooled_over_two_steps_either_side_and_peaks_where_the_days_differ() -> None:
    # days identical except at 17:00: +0, +30, +60, +90 kW -> variance 1500 there, 0 elsewhere
    rows = _rows({1: 5.0, 2: 5.0, 3: 5.0, 4: 5.0}, evening_extra={1: 0.0, 2: 30.0, 3: 60.0, 4: 90.0})
    prof = multi_day_profile(rows, now=NOW, period_s=PERIOD_S, horizon=48, days=4)
    assert prof is not None
    k17 = 20  # 12:00 + 20 x 15 min
    assert prof.p50[k17] == pytest.approx(50.0)
    pooled = math.sqrt(1500.0 / 5)  # one step of variance 1500 among five
    assert np.allclose(prof.sigma[k17 - 2 : k17 + 3], pooled)
    assert np.allclose(prof.sigma[: k17 - 2], 0.0) and np.allclose(prof.sigma[k17 + 3 :], 0.0)


def test_a_missing_day_counts_as_missing_not_as_the_last_value_held() -> None:
    rows = _rows({1: 10.0, 2: 20.0, 4: 40.0})  # day 3 absent
    prof = multi_day_profile(rows, now=NOW, period_s=PERIOD_S, horizon=8, days=4)
    assert prof is not None and prof.days_used == 3
    assert np.allclose(prof.p50, 70.0 / 3.0)


def test_fewer_than_min_days_gives_none_for_the_caller_to_fall_back() -> None:
    two = _rows({1: 10.0, 2: 20.0})
    assert MIN_DAYS == 3
    assert multi_day_profile(two, now=NOW, period_s=PERIOD_S, horizon=8, days=7) is None
    assert (
        multi_day_profile(_rows({1: 1.0, 2: 2.0, 3: 3.0}), now=NOW, period_s=PERIOD_S, horizon=8, days=2)
        is None
    )
    assert multi_day_profile([], now=NOW, period_s=PERIOD_S, horizon=8, days=7) is None


def test_a_horizon_past_a_day_wraps_to_the_same_time_of_day() -> None:
    rows = _rows({1: 10.0, 2: 20.0, 3: 30.0}, evening_extra={1: 3.0, 2: 3.0, 3: 3.0})
    prof = multi_day_profile(rows, now=NOW, period_s=PERIOD_S, horizon=PER_DAY + 30, days=3)
    assert prof is not None
    assert prof.p50[20] == pytest.approx(23.0) and prof.p50[20 + PER_DAY] == pytest.approx(23.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon": 0}, "horizon"),
        ({"days": 0}, "days"),
        ({"min_days": 1}, "min_days"),
        ({"period_s": 700.0}, "divide"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs: dict[str, float], message: str) -> None:
    args: dict[str, float] = {"period_s": PERIOD_S, "horizon": 8, "days": 4} | kwargs
    with pytest.raises(ValueError, match=message):
        multi_day_profile([], now=NOW, **args)  # type: ignore[arg-type]
