"""Flex envelope arithmetic (battery energy bounds, §14a floor, PV curtailment) and the sample filter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge_agent.config import AssetConfig, PointConfig, PollConfig
from edge_agent.drivers.base import PointRef, Reading
from edge_agent.flex import asset_flex, flex_signature
from edge_agent.poller import Latest, SampleFilter

NOW = datetime(2030, 1, 15, 12, 0, 30, tzinfo=UTC)


def _latest(**values: float) -> dict[str, Latest]:
    return {k.replace("__", "."): Latest(v, "good", NOW, 0.0) for k, v in values.items()}


def test_battery_bounds_follow_energy_and_efficiency() -> None:
    bat = AssetConfig.model_validate(
        {
            "id": "bat1",
            "kind": "battery",
            "limits": {"p_min_kw": -5, "p_max_kw": 5},
            "model": {
                "capacity_kwh": 10,
                "soc_min_pct": 10,
                "soc_max_pct": 90,
                "eta_charge": 0.9,
                "eta_discharge": 0.9,
            },
        }
    )
    flex = asset_flex(bat, _latest(bat1__soc_pct=80.0, bat1__p_kw=1.0), NOW)
    assert (flex.e_now_kwh, flex.e_min_kwh, flex.e_max_kwh) == (8.0, 1.0, 9.0)
    first, second = flex.intervals[0], flex.intervals[1]
    assert first.p_max_kw == pytest.approx(1.0 / 0.9, abs=1e-3)  # 1 kWh of room in one hour
    assert first.p_min_kw == -5.0  # 7 kWh available: the inverter limits
    assert second.p_max_kw == pytest.approx(1.0 / 0.9 / 2, abs=1e-3)
    assert first.start == NOW.replace(microsecond=0) and len(flex.intervals) == 4


def test_ev_envelope_keeps_the_guaranteed_minimum_and_pv_curtails_to_zero() -> None:
    ev = AssetConfig.model_validate({"id": "ev1", "kind": "ev"})
    flex = asset_flex(ev, _latest(ev1__p_kw=11.0), NOW)
    assert flex.p_guaranteed_min_kw == 4.2
    assert (flex.intervals[0].p_min_kw, flex.intervals[0].p_max_kw) == (4.2, 11.0)
    low = asset_flex(ev, _latest(ev1__p_kw=2.0), NOW)
    assert (low.intervals[0].p_min_kw, low.intervals[0].p_max_kw) == (2.0, 2.0)
    pv = AssetConfig.model_validate({"id": "pv1", "kind": "pv"})
    flex = asset_flex(pv, _latest(pv1__p_kw=-6.0), NOW)
    assert (flex.intervals[0].p_min_kw, flex.intervals[0].p_max_kw) == (-6.0, 0.0)
    assert flex_signature([flex]) == flex_signature([asset_flex(pv, _latest(pv1__p_kw=-6.01), NOW)])
    assert flex_signature([flex]) != flex_signature([asset_flex(pv, _latest(pv1__p_kw=-5.0), NOW)])


def test_filter_deadband_heartbeat_and_quality_change() -> None:
    ref = PointRef(
        "a",
        PointConfig(
            name="p", device="d", table="holding", address=0, type="int16", deadband=0.5, max_age_s=10
        ),
    )
    f = SampleFilter(PollConfig(interval_s=1.0, max_age_s=60))
    assert f.accept(ref, Reading(1.0), 0.0)
    assert not f.accept(ref, Reading(1.4), 1.0)  # inside the deadband
    assert f.accept(ref, Reading(1.6), 2.0)
    assert not f.accept(ref, Reading(1.6), 11.0)
    assert f.accept(ref, Reading(1.6), 11.8)  # heartbeat (10 s minus a quarter interval of slack)
    assert f.accept(ref, Reading(None, "bad", "timeout"), 12.0)
    assert not f.accept(ref, Reading(None, "bad", "timeout"), 13.0)
    assert f.accept(ref, Reading(1.6), 14.0)  # back to good
