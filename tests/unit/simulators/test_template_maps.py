"""The register maps built from the device templates serve exactly the registers the hand-written
maps served (images snapshotted before the move to templates, same physics state)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.devices import Battery, EvCharger, HeatPump, Meter, PvInverter
from simulators.modbus import RegisterMap, battery_map, ev_map, hp_map, meter_map, pv_map

SNAPSHOT = json.loads((Path(__file__).parent / "register_images_before_templates.json").read_text())


def _maps() -> dict[str, RegisterMap]:
    pv = PvInverter(kwp=6.5, inverter_kw=6.0)
    pv.p_kw, pv.poa_w_m2, pv.e_generated_kwh, pv.t_module_c = -3.21, 500.0, 1234.5, 31.4
    pv.limit_pct, pv.limit_enabled = 55.5, True
    m = Meter()
    m.p_kw, m.e_import_kwh, m.e_export_kwh = 2.345, 345.6, 78.9
    bat = Battery(capacity_kwh=12.0, p_charge_max_kw=4.0, p_discharge_max_kw=3.5)
    bat.soc_pct, bat.p_kw, bat.setpoint_kw, bat.remote, bat.grid_target_kw = 63.21, -1.5, -1.5, True, 0.7
    bat.e_charged_kwh, bat.e_discharged_kwh = 11.1, 9.9
    ev = EvCharger(p_max_kw=7.4)
    ev.plugged, ev.p_kw, ev.limit_a, ev.p_limit_kw = True, 3.3, 12.5, 5.0
    ev.e_session_kwh, ev.e_total_kwh, ev.e_remaining_kwh, ev.departure_s = 4.4, 555.0, 7.7, 40000.0
    hp = HeatPump(p_max_kw=6.0)
    hp.p_kw, hp.p_limit_kw, hp.t_tank_c, hp.cop, hp.q_heat_kw = 2.2, 4.5, 49.3, 3.21, 7.06
    hp.running, hp.e_el_kwh, hp.e_deficit_kwh = True, 321.0, 1.25
    return {
        "sunspec-pv": pv_map(pv, serial="b007-pv", unit_id=3),
        "sunspec-meter": meter_map(m, serial="b007-meter"),
        "vendor-battery": battery_map(bat),
        "vendor-ev": ev_map(ev),
        "vendor-hp": hp_map(hp),
    }


@pytest.mark.parametrize("name", list(SNAPSHOT))
def test_template_map_serves_the_same_registers_as_before(name: str) -> None:
    m = _maps()[name]
    m.refresh()
    assert m.base == SNAPSHOT[name]["base"]
    assert m.image == SNAPSHOT[name]["image"]


def test_write_limits_follow_the_ratings() -> None:
    bat = battery_map(Battery(p_charge_max_kw=4.0, p_discharge_max_kw=3.5)).by_name["p_setpoint_w"]
    assert (bat.min, bat.max) == (-3500.0, 4000.0)
    ev = ev_map(EvCharger(p_max_kw=7.4)).by_name["p_limit_w"]
    assert (ev.min, ev.max) == (0.0, 7400.0)
