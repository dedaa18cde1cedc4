"""The twin applies a command as the edge agent does: its decision, its clamps, its safe state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridflex.loop.reference_run import demo_specs
from gridflex.loop.twin_site import TwinSite
from protocols.assets import BATTERY, EV, METER, PV
from protocols.messages import Command
from simulators.building import Building, build
from simulators.fleet import fleet_profiles
from simulators.siteconfig import GUARANTEED_MIN_KW

NOW = datetime(2030, 1, 15, 17, tzinfo=UTC)


@pytest.fixture(scope="module")
def building() -> Building:
    """A building of the demo fleet with PV, a battery and an EV (the first such site)."""
    specs = [s for s in demo_specs(40, seed=1) if s.pv_kwp and s.battery_kwh and s.ev_kw]
    spec = specs[0]
    (profiles,) = fleet_profiles([spec], start=NOW - timedelta(hours=1), seed=1, days=0.2)
    b = build(spec, profiles)
    b.step(NOW, 0.0)
    return b


def _cmd(cmd_id: str, asset: str, kind: str, value: float, *, minutes: float = 15.0) -> Command:
    return Command.model_validate(
        {
            "site": "b001",
            "ts": NOW,
            "cmd_id": cmd_id,
            "asset": asset,
            "kind": kind,
            "value": value,
            "valid_from": NOW,
            "valid_until": NOW + timedelta(minutes=minutes),
        }
    )


def test_an_ev_limit_below_the_guaranteed_minimum_is_clamped_to_it(building: Building) -> None:
    site = TwinSite(building)
    d = site.apply(_cmd("c1", EV, "p_limit_kw", 1.0), NOW)
    assert d.status == "clamped"
    assert building.ev is not None
    assert building.ev.p_limit_kw == pytest.approx(GUARANTEED_MIN_KW, abs=1e-3)


def test_a_battery_setpoint_switches_to_remote_within_the_inverter_limits(building: Building) -> None:
    site = TwinSite(building)
    assert building.battery is not None
    d = site.apply(_cmd("c2", BATTERY, "p_setpoint_kw", 99.0), NOW)
    assert d.status == "clamped"
    assert building.battery.remote
    assert building.battery.setpoint_kw == pytest.approx(building.battery.p_charge_max_kw, abs=1e-3)


def test_a_meter_setpoint_becomes_the_inverters_grid_target(building: Building) -> None:
    site = TwinSite(building)
    assert building.battery is not None
    assert site.apply(_cmd("c3", METER, "p_setpoint_kw", 2.5), NOW).status == "applied"
    assert not building.battery.remote
    assert building.battery.grid_target_kw == pytest.approx(2.5, abs=1e-3)


def test_a_pv_limit_is_written_as_percent_of_the_inverter(building: Building) -> None:
    site = TwinSite(building)
    assert building.pv is not None
    kw = building.pv.inverter_kw
    assert site.apply(_cmd("c4", PV, "p_limit_kw", kw / 2), NOW).status == "applied"
    assert building.pv.limit_enabled
    assert building.pv.limit_pct == pytest.approx(50.0, abs=0.1)  # the register holds 0.1 %


def test_a_replayed_or_expired_command_is_never_written(building: Building) -> None:
    site = TwinSite(building)
    assert building.ev is not None
    assert site.apply(_cmd("c5", EV, "p_limit_kw", 6.0), NOW).status == "applied"
    assert site.apply(_cmd("c5", EV, "p_limit_kw", 9.0), NOW).status == "rejected"
    late = NOW + timedelta(minutes=20)
    assert site.apply(_cmd("c6", EV, "p_limit_kw", 9.0), late).status == "expired"
    assert building.ev.p_limit_kw == pytest.approx(6.0, abs=1e-3)


def test_a_command_that_ends_without_a_successor_returns_to_the_yaml_safe_state(building: Building) -> None:
    site = TwinSite(building)
    assert building.ev is not None and building.battery is not None
    site.apply(_cmd("c7", EV, "p_limit_kw", 5.0, minutes=5), NOW)
    site.apply(_cmd("c8", BATTERY, "p_setpoint_kw", -2.0, minutes=10), NOW)
    assert [c.cmd_id for c in site.expire(NOW + timedelta(minutes=5))] == ["c7"]
    # safe: full power (the charger reports a limit at its rating as no limit)
    assert building.ev.p_limit_kw is None or building.ev.p_limit_kw == pytest.approx(building.ev.p_max_kw)
    assert building.battery.remote  # the battery's command still runs
    assert [c.cmd_id for c in site.expire(NOW + timedelta(minutes=10))] == ["c8"]
    assert not building.battery.remote  # safe: mode 0, local control
