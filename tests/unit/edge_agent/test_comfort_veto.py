"""The comfort veto's pure decision: band and CO2 checks, their reasons, the hysteresis, where limits come from."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from edge_agent.comfort_veto import ComfortLimits, check, cleared, comfort_limits
from edge_agent.config import AssetConfig, PointConfig
from edge_agent.config_dr import DR_BACNET_PRIORITY, DrConfig
from protocols.messages import Command

LIMITS = ComfortLimits(
    20.0, 23.0, 1000.0, "zone_t_c", "co2_ppm", t_hysteresis_k=0.5, co2_hysteresis_ppm=100.0
)


@pytest.mark.parametrize(
    ("t_c", "co2", "reason"),
    [
        (21.5, 700.0, None),
        (23.0, 999.9, None),  # the band's edges are inside; CO2 just below the limit holds
        (20.0, 600.0, None),
        (23.6, 700.0, "comfort: zone 23.6 °C above band 20–23 °C"),
        (19.4, 700.0, "comfort: zone 19.4 °C below band 20–23 °C"),
        (21.5, 1012.0, "co2: 1012 ppm ≥ 1000"),
        (21.5, 1000.0, "co2: 1000 ppm ≥ 1000"),  # reaching the limit is enough
        (23.6, 1012.0, "comfort: zone 23.6 °C above band 20–23 °C"),  # temperature is named first
        (None, 700.0, "comfort: no good reading of zone_t_c"),
        (21.5, None, "co2: no good reading of co2_ppm"),
    ],
)
def test_check_names_the_limit_and_the_reading(
    t_c: float | None, co2: float | None, reason: str | None
) -> None:
    veto = check(LIMITS, t_c, co2)
    assert (veto.reason if veto is not None else None) == reason


def test_check_skips_points_the_zone_does_not_have() -> None:
    no_co2 = ComfortLimits(20.0, 23.0, 1000.0, "zone_t_c", None)
    assert check(no_co2, 21.0, None) is None
    assert check(no_co2, 21.0, 5000.0) is None
    no_points = ComfortLimits(20.0, 23.0, 1000.0, None, None)
    assert check(no_points, None, None) is None


@pytest.mark.parametrize(
    ("t_c", "co2", "back"),
    [
        (22.4, 800.0, True),
        (22.6, 800.0, False),  # inside the band but not by 0.5 K
        (20.4, 800.0, False),
        (20.5, 900.0, True),  # exactly at both margins
        (21.5, 901.0, False),  # below the limit but not by 100 ppm
        (21.5, None, False),  # unreadable is never back
        (None, 800.0, False),
    ],
)
def test_cleared_needs_the_hysteresis_margins(t_c: float | None, co2: float | None, back: bool) -> None:
    assert cleared(LIMITS, t_c, co2) is back


def test_a_band_narrower_than_twice_the_hysteresis_still_clears_in_its_middle() -> None:
    narrow = ComfortLimits(21.0, 21.6, 1000.0, "zone_t_c", None, t_hysteresis_k=0.5)
    assert cleared(narrow, 21.3, None)
    assert not cleared(narrow, 21.5, None)


def _zone(**extra: Any) -> AssetConfig:
    points = [
        PointConfig(name="zone_t_c", device="bms", object="analogInput:1"),
        PointConfig(name="co2_ppm", device="bms", object="analogInput:2"),
    ]
    return AssetConfig.model_validate({"id": "zone1", "kind": "hvac", "points": points, **extra})


def test_limits_come_from_comfort_then_model_then_the_adaptive_band() -> None:
    own = comfort_limits(
        _zone(
            comfort={"t_min_c": 20, "t_max_c": 23, "co2_max_ppm": 900}, model={"t_min_c": 19, "t_max_c": 24}
        )
    )
    assert (own.t_min_c, own.t_max_c, own.co2_max_ppm) == (20.0, 23.0, 900.0)
    model = comfort_limits(_zone(model={"t_min_c": 19, "t_max_c": 24}))
    assert (model.t_min_c, model.t_max_c, model.co2_max_ppm) == (19.0, 24.0, 1000.0)
    # EN 15251 cat. II at a running mean of 10 °C: 0.33 x 10 + 18.8 = 22.1 ± 3 K
    default = comfort_limits(_zone())
    assert (default.t_min_c, default.t_max_c) == pytest.approx((19.1, 25.1))
    # ASHRAE 55, 90 % acceptability, at 20 °C: 0.31 x 20 + 17.8 = 24.0 ± 2.5 K
    ashrae = comfort_limits(
        _zone(comfort={"standard": "ashrae55", "category": "90", "running_mean_outdoor_c": 20})
    )
    assert (ashrae.t_min_c, ashrae.t_max_c) == pytest.approx((21.5, 26.5))
    assert (default.t_point, default.co2_point) == ("zone_t_c", "co2_ppm")
    renamed = comfort_limits(_zone(comfort={"co2_point": "co2_return_ppm"}))
    assert renamed.co2_point is None  # the zone has no such point: not checked


@pytest.mark.parametrize(
    ("comfort", "needle"),
    [
        ({"t_min_c": 20}, "go together"),
        ({"t_min_c": 23, "t_max_c": 20}, "must be below"),
        ({"co2_max_ppm": 0}, "greater than 0"),
        ({"standard": "ashrae55", "category": "II"}, "ASHRAE 55 acceptability"),
    ],
)
def test_bad_comfort_keys_are_refused(comfort: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        _zone(comfort=comfort)


def test_dr_priority_defaults_to_9_and_stays_a_bacnet_priority() -> None:
    assert DrConfig().bacnet_priority == DR_BACNET_PRIORITY == 9
    with pytest.raises(ValidationError):
        DrConfig(bacnet_priority=17)


def _fan(value: float) -> dict[str, Any]:
    now = datetime(2030, 1, 15, 12, tzinfo=UTC)
    return {"site": "s1", "ts": now, "cmd_id": "c1", "asset": "zone1", "kind": "fan_speed_pct", "value": value,
            "valid_from": now, "valid_until": now + timedelta(minutes=30)}  # fmt: skip


@pytest.mark.parametrize("value", [-0.1, 100.5, math.nan, math.inf])
def test_fan_speed_outside_0_to_100_or_not_finite_is_refused_by_the_contract(value: float) -> None:
    with pytest.raises(ValidationError):
        Command.model_validate(_fan(value))


def test_fan_speed_inside_the_range_is_a_command() -> None:
    assert Command.model_validate(_fan(0.0)).value == 0.0
    assert Command.model_validate(_fan(100.0)).kind == "fan_speed_pct"
