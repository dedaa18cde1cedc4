"""σ from meter class, forecast quantiles and sample quality (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.grid.estimate import (
    LoadForecast,
    LoadReadings,
    MeterClass,
    QualityPolicy,
    SensorSpec,
    age_widened_sigma,
    load_sensors,
    meter_sigma,
    pseudo_sigma_kw,
)


@pytest.mark.parametrize(
    ("value", "rated", "cls", "sigma"),
    [
        (6.0, 10.0, MeterClass(1.0), 0.02),  # 1 % of 6 kW over 3
        (6.0, 10.0, MeterClass(0.5), 0.01),
        (0.1, 10.0, MeterClass(1.0), 1.0 / 100 * 0.5 / 3),  # below 5 % of rating: the floor
        (-6.0, 10.0, MeterClass(2.0), 0.04),  # feed-in: magnitude
    ],
    ids=["class1", "class0.5", "low-current-floor", "feed-in"],
)
def test_meter_class_sets_sigma_to_a_third_of_the_class_limit(
    value: float, rated: float, cls: MeterClass, sigma: float
) -> None:
    assert float(meter_sigma(value, rated, cls)) == pytest.approx(sigma, rel=1e-12)


def test_pseudo_sigma_is_the_p10_p90_width_over_2_563_with_a_floor() -> None:
    s = pseudo_sigma_kw(np.array([1.0, 2.0]), np.array([3.5632, 2.0]), 0.05)
    assert s == pytest.approx([1.0, 0.05], rel=1e-4)


@pytest.mark.parametrize(
    ("quality", "age_s", "expected"),
    [
        ("good", 0.0, 0.01),
        ("good", 1050.0, 0.01 + 0.5 * (1.0 - 0.01)),  # half-way from 300 s to 1800 s: half-way to the prior
        ("stale", 0.0, 0.01),  # flagged stale counts as 300 s old: still the meter's σ
        ("good", 1800.1, np.inf),  # too old: dropped
        ("bad", 0.0, np.inf),
    ],
    ids=["fresh", "aged-blended", "flagged-stale", "too-old-dropped", "bad-dropped"],
)
def test_quality_and_age_widen_or_drop_a_reading(quality: str, age_s: float, expected: float) -> None:
    s = age_widened_sigma(
        np.array([0.01]), np.array([1.0]), np.array([age_s]), np.array([quality]), QualityPolicy()
    )
    assert float(s[0]) == pytest.approx(expected)


def test_voltage_without_prior_is_widened_by_the_stale_factor() -> None:
    s = age_widened_sigma(np.array([0.002]), None, np.array([600.0]), np.array(["good"]), QualityPolicy())
    assert float(s[0]) == pytest.approx(0.006)


def test_a_dropped_site_reading_falls_back_to_its_pseudo_measurement() -> None:
    read = np.array([[3.0, 4.0]])
    sens = load_sensors(
        np.array([0, 1]),
        LoadReadings(read, quality=np.array([["good", "bad"]])),
        LoadForecast(np.array([[1.0, 1.0]]), np.array([[2.0, 2.0]]), np.array([[3.5632, 3.5632]])),
        SensorSpec(MeterClass(1.0), rated_kw=10.0),
    )
    assert sens.metered.tolist() == [[True, False]]
    assert sens.p_kw.tolist() == [[3.0, 2.0]]
    assert sens.sigma_p_kw[0] == pytest.approx([0.01, 1.0], rel=1e-4)
    assert np.all(sens.sigma_q_kvar > sens.sigma_p_kw[0, 0])  # Q from a power factor, never "metered"
