"""The envelope of the zone's assets from flexmodels: the AHU fan (CO2 dynamics) and the heat pump (RC + COP)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config import SiteConfig, load_config
from edge_agent.flex import asset_flex
from edge_agent.poller import Latest
from flexmodels import FanZone, fan_reduce_kw

NOW = datetime(2030, 1, 15, 12, tzinfo=UTC)
# The simulated zone's parameters (simulators/devices/zone.py): 300 m³, 3 people, 450 m³/h, 0.25 kW
FAN_MODEL = {"volume_m3": 300.0, "co2_gen_m3_h": 0.054, "fan_flow_max_m3_h": 450.0, "fan_p_max_kw": 0.25}


def _site(tmp_path: Path, zone_model: dict[str, Any], hp_model: dict[str, Any] | None = None) -> SiteConfig:
    bms = [
        ("zone_t_c", "analogInput:1", False),
        ("co2_ppm", "analogInput:2", False),
        ("outdoor_t_c", "analogInput:3", False),
        ("t_setpoint_c", "analogValue:1", True),
        ("fan_pct", "analogValue:2", True),
    ]
    points = [{"name": n, "device": "bms", "object": o, "writable": w} for n, o, w in bms]
    assets: list[dict[str, Any]] = [
        {
            "id": "zone1",
            "kind": "hvac",
            "points": points,
            "controls": {"t_setpoint_c": {"point": "t_setpoint_c"}, "fan_speed_pct": {"point": "fan_pct"}},
            "comfort": {"t_min_c": 20, "t_max_c": 24},
            "model": zone_model,
        }
    ]
    if hp_model is not None:
        assets.append({"id": "hp1", "kind": "hp", "p_nominal_kw": 9.0, "model": hp_model})
    doc = {
        "site": "s1",
        "buffer": {"path": str(tmp_path / "b.sqlite")},
        "devices": [{"id": "bms", "driver": "bacnet", "address": "127.0.0.1:47809", "device_id": 7}],
        "assets": assets,
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_config(path)


def _latest(**values: float) -> dict[str, Latest]:
    return {f"zone1.{k}": Latest(v, "good", NOW, 0.0) for k, v in values.items()}


def test_fan_envelope_follows_the_co2_dynamics(tmp_path: Path) -> None:
    site = _site(tmp_path, FAN_MODEL)
    flex = asset_flex(site.asset("zone1"), _latest(co2_ppm=600.0, fan_pct=40.0), NOW, site)
    p_now = 0.25 * 0.4**3  # affinity law: 0.016 kW at 40 %
    assert flex.p_now_kw == pytest.approx(p_now, abs=1e-4)
    first, last = flex.intervals[0], flex.intervals[-1]
    # one hour with the fan off: 600 + 0.054e6 / 300 = 780 ppm <= 1000, so all of it may go
    assert first.p_min_kw == 0.0
    assert first.p_max_kw == pytest.approx(0.25)  # full speed never breaks the CO2 limit
    # four hours off would reach 1320 ppm: the fan keeps the lowest speed holding 1000 ppm
    zone = FanZone(300.0, 0.054, 450.0, 0.25)
    assert last.p_min_kw == pytest.approx(p_now - fan_reduce_kw(zone, 600.0, 0.4, 4.0), abs=1e-3)
    assert 0.0 < last.p_min_kw < p_now
    assert (flex.t_min_c, flex.t_max_c) == (20.0, 24.0)


def test_fan_without_its_model_or_readings_keeps_the_plain_estimate(tmp_path: Path) -> None:
    site = _site(tmp_path, {})
    flex = asset_flex(site.asset("zone1"), _latest(co2_ppm=600.0, fan_pct=40.0), NOW, site)
    assert all(i.p_min_kw == i.p_max_kw for i in flex.intervals)
    site = _site(tmp_path, FAN_MODEL)
    flex = asset_flex(site.asset("zone1"), _latest(fan_pct=40.0), NOW, site)  # no CO2 reading
    assert all(i.p_min_kw == i.p_max_kw for i in flex.intervals)


def test_heat_pump_envelope_through_the_zone_rc_model_and_cop(tmp_path: Path) -> None:
    site = _site(tmp_path, {"r_k_per_kw": 5.0, "c_kwh_per_k": 8.0, "gains_kw": 0.3}, {"cop": 3.0})
    latest = _latest(zone_t_c=21.0, outdoor_t_c=0.0)
    flex = asset_flex(site.asset("hp1"), latest, NOW, site)
    # holding 21 °C at 0 °C outside: (21 - 0) / 5 - 0.3 = 3.9 kW of heat = 1.3 kW at COP 3;
    # over 3 h the setpoint may fall to 20 °C: 0.9226 kW less (the selection's worked example)
    three_h = flex.intervals[2]
    assert three_h.p_min_kw == pytest.approx(1.3 - 0.9226, abs=1e-3)
    assert all(i.p_min_kw <= 1.3 <= i.p_max_kw <= 9.0 for i in flex.intervals)
    assert flex.intervals[0].p_min_kw == 0.0  # one hour: the zone coasts inside the band, the HP may stop
    assert (flex.t_min_c, flex.t_max_c) == (20.0, 24.0)
    assert flex.p_guaranteed_min_kw == 4.2
