"""Edge-agent site YAML for a simulated building, following docs/site-config.md to the letter.

Devices are written as `template:` devices (device_templates/builtin/): the agent expands
them at config load into the points the simulators' own register maps were built from,
so a YAML can never point at a register the simulator does not have. Only what depends
on the building (ratings as write limits, controls, safe states, models) is written here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from device_templates import builtin
from flexmodels import CO2_LIMIT_PPM
from protocols.assets import BATTERY, EV, HP, METER, PV, ZONE, Role
from protocols.testbed import BacnetEndpoint, ModbusEndpoint
from simulators.building import Building
from simulators.devices.zone import CO2_PER_PERSON_M3_H
from simulators.modbus import RegisterMap
from simulators.modbus.sunspec import SUBSTATION_METER_TEMPLATE

__all__ = [
    "DEVICE_TEMPLATES",
    "GRID_TARGET_RANGE_KW",
    "GUARANTEED_MIN_KW",
    "METERING_FALLBACK_AFTER_S",
    "SUBSTATION_TEMPLATE",
    "site_config",
    "substation_site_config",
]

GUARANTEED_MIN_KW = 4.2  # §14a EnWG

#: The template each simulated device serves, by device id (the device ids are role names).
DEVICE_TEMPLATES: Final[dict[str, str]] = {
    Role.METER: "sunspec-meter",
    Role.PV: "sunspec-inverter",
    Role.BATTERY: "vendor-battery",
    Role.EV: "vendor-ev",
    Role.HP: "vendor-hp",
}
BMS_TEMPLATE: Final = "bacnet-bms"
#: A metering-only site's command watchdog (s): it has nothing to command or make safe.
METERING_FALLBACK_AFTER_S: Final = 365 * 86_400.0
#: The template a secondary substation's meter serves.
SUBSTATION_TEMPLATE: Final = SUBSTATION_METER_TEMPLATE


def _grid_target_range_kw() -> float:
    point = next(p for p in builtin("vendor-battery").points if p.name == "grid_target_kw")
    assert point.max is not None
    return point.max


#: A house connection's range for the battery inverter's grid target (the template's limit).
GRID_TARGET_RANGE_KW: Final = _grid_target_range_kw()


def _devices(
    b: Building, modbus: list[ModbusEndpoint], bacnet: BacnetEndpoint | None, modbus_timeout_s: float = 1.0
) -> list[dict[str, Any]]:
    """The `devices:` entries: each served device by its template, with the building's own limits."""
    overrides: dict[str, dict[str, Any]] = {}
    if b.battery is not None:
        bat = b.battery
        overrides[Role.BATTERY] = {
            "p_setpoint_kw": {"min": -bat.p_discharge_max_kw, "max": bat.p_charge_max_kw}
        }
    if b.ev is not None:
        overrides[Role.EV] = {"p_limit_kw": {"max": b.ev.p_max_kw}}
    if b.hp is not None:
        overrides[Role.HP] = {"p_limit_kw": {"max": b.hp.p_max_kw}}
    devices: list[dict[str, Any]] = []
    for e in modbus:
        dev: dict[str, Any] = {
            "id": e.device,
            "driver": "modbus",
            "template": DEVICE_TEMPLATES[e.device],
            "host": e.host,
            "port": e.port,
            "unit_id": e.unit_id,
            "timeout_s": modbus_timeout_s,
        }
        if e.device in overrides:
            dev["overrides"] = overrides[e.device]
        devices.append(dev)
    if bacnet is not None:
        bms: dict[str, Any] = {
            "id": bacnet.device,
            "driver": "bacnet",
            "template": BMS_TEMPLATE,
            "address": bacnet.address,
            "device_id": bacnet.device_id,
            "timeout_s": 2.0,
        }
        if b.hp is not None:
            bms["overrides"] = {"bms_p_limit_kw": {"max": b.hp.p_max_kw}}
        devices.append(bms)
    return devices


def _common(site: str, *, broker_host: str, broker_port: int, state_dir: Path) -> dict[str, Any]:
    """The top-level sections every generated site YAML shares (broker, buffer, poll, ...)."""
    return {
        "site": site,
        "broker": {"host": broker_host, "port": broker_port, "tls": None, "keepalive_s": 30},
        "cloud": {"watermark": True},
        "signing": {"key_file": None},
        "buffer": {
            "path": str(state_dir / f"{site}.sqlite"),
            "max_rows": 1_000_000,
            "max_age_s": 604_800,
            "batch_max": 500,
        },
        "fallback": {"after_s": 300},
        "health": {"host": "127.0.0.1", "port": None},
        "poll": {"interval_s": 1.0, "max_age_s": 60.0},
    }


def _zone_asset(b: Building) -> dict[str, Any]:
    """The BMS zone: setpoint and fan-speed DR writes, its comfort limits and its models' keys.

    The model keys are the simulated zone's own parameters (`simulators.devices.zone.Zone`),
    so the agent's envelopes (`edge_agent.flex_zone`) model the building the test bed runs;
    CO2 generation is at full occupancy (the conservative end of the schedule).
    """
    z = b.zone
    return {
        "id": ZONE,
        "kind": Role.HVAC.value,
        "controls": {
            "t_setpoint_c": {"point": "t_setpoint_c"},
            "fan_speed_pct": {"point": "fan_pct"},
        },
        "safe_state": [
            {"point": "t_setpoint_c", "relinquish": True},
            {"point": "fan_pct", "relinquish": True},
        ],
        "model": {
            "t_min_c": 19.0,
            "t_max_c": 24.0,
            "r_k_per_kw": z.r_k_per_kw,
            "c_kwh_per_k": z.c_kwh_per_k,
            "gains_kw": z.gains_kw,
            "volume_m3": z.volume_m3,
            "co2_gen_m3_h": round(CO2_PER_PERSON_M3_H * z.people, 6),
            "fan_flow_max_m3_h": z.fan_flow_max_m3_h,
            "fan_p_max_kw": z.fan_p_max_kw,
        },
        "comfort": {"co2_max_ppm": CO2_LIMIT_PPM},
    }


def substation_site_config(
    site: str,
    *,
    host: str,
    port: int,
    unit_id: int = 1,
    broker_host: str,
    broker_port: int,
    state_dir: Path,
) -> dict[str, Any]:
    """The YAML document for the agent at a secondary substation: one meter, nothing to command.

    Its asset is a `meter` like a house's (id `meter`): the template adds `q_kvar`,
    `v_ln_v`, `i_a` and `f_hz` (`protocols.assets.Points`) to `p_kw` and the energies.
    """
    device = {
        "id": METER,
        "driver": "modbus",
        "template": SUBSTATION_TEMPLATE,
        "host": host,
        "port": port,
        "unit_id": unit_id,
        "timeout_s": 1.0,
    }
    doc = _common(site, broker_host=broker_host, broker_port=broker_port, state_dir=state_dir)
    # Nothing is ever commanded here: the command watchdog must not report a metering
    # site in `fallback` because no command came (a year, not 300 s).
    doc["fallback"] = {"after_s": METERING_FALLBACK_AFTER_S}
    return {**doc, "devices": [device], "assets": [{"id": METER, "kind": Role.METER.value}]}


def site_config(
    b: Building,
    maps: dict[str, RegisterMap],
    modbus: list[ModbusEndpoint],
    bacnet: BacnetEndpoint | None,
    *,
    broker_host: str,
    broker_port: int,
    state_dir: Path,
    modbus_timeout_s: float = 1.0,
) -> dict[str, Any]:
    """The YAML document (as a dict) for building `b` served at `modbus` / `bacnet`.

    `maps` is accepted for callers that built the servers' maps; the points now come from
    the same templates those maps were built from. `modbus_timeout_s` is the agent's per-request
    timeout (a loaded test bed's simulated devices answer late).
    """
    del maps
    devices = _devices(b, modbus, bacnet, modbus_timeout_s)
    assets: list[dict[str, Any]] = []
    meter: dict[str, Any] = {"id": METER, "kind": Role.METER.value}
    if b.battery is not None:
        # The site's grid power, held by the battery inverter's own loop (mode 0): a
        # `p_setpoint_kw` command on the meter sets the target the inverter tracks
        # (the battery template gives the meter its `grid_target_kw` and `battery_mode`).
        meter["controls"] = {
            "p_setpoint_kw": {"point": "grid_target_kw", "enable": {"point": "battery_mode", "value": 0}}
        }
        meter["safe_state"] = [{"point": "grid_target_kw", "write": 0}]
    assets.append(meter)
    if b.pv is not None:
        kw = b.pv.inverter_kw
        assets.append(
            {
                "id": PV,
                "kind": Role.PV.value,
                "p_nominal_kw": kw,
                "controls": {
                    "p_limit_kw": {
                        "point": "wmaxlim_pct",
                        "factor": 100.0 / kw,
                        "offset": 0.0,
                        "read_back": "wmaxlim_pct",
                        "enable": {"point": "wmaxlim_ena", "value": 1},
                    },
                },
                "limits": {"p_min_kw": 0.0, "p_max_kw": kw},
                "safe_state": [{"point": "wmaxlim_ena", "write": 0}],
            }
        )
    if b.battery is not None:
        bat = b.battery
        assets.append(
            {
                "id": BATTERY,
                "kind": Role.BATTERY.value,
                "p_nominal_kw": bat.p_charge_max_kw,
                "controls": {
                    "p_setpoint_kw": {"point": "p_setpoint_kw", "enable": {"point": "mode", "value": 1}},
                },
                "limits": {"p_min_kw": -bat.p_discharge_max_kw, "p_max_kw": bat.p_charge_max_kw},
                "safe_state": [{"point": "mode", "write": 0}],
                "model": {
                    "capacity_kwh": bat.capacity_kwh,
                    "soc_min_pct": bat.soc_min_pct,
                    "soc_max_pct": bat.soc_max_pct,
                    "eta_charge": bat.eta_charge,
                    "eta_discharge": bat.eta_discharge,
                },
            }
        )
    if b.ev is not None:
        kw = b.ev.p_max_kw
        assets.append(
            {
                "id": EV,
                "kind": Role.EV.value,
                "p_nominal_kw": kw,
                "controls": {"p_limit_kw": {"point": "p_limit_kw"}},
                "limits": {"p_min_kw": 0.0, "p_max_kw": kw, "p_guaranteed_min_kw": GUARANTEED_MIN_KW},
                "safe_state": [{"point": "p_limit_kw", "write": kw}],
                "model": {"p_max_kw": kw},
            }
        )
    if b.hp is not None:
        kw = b.hp.p_max_kw
        safe: list[dict[str, Any]] = [{"point": "p_limit_kw", "write": kw}]
        if bacnet is not None:
            safe.append({"point": "bms_p_limit_kw", "relinquish": True})
        assets.append(
            {
                "id": HP,
                "kind": Role.HP.value,
                "p_nominal_kw": kw,
                "controls": {"p_limit_kw": {"point": "p_limit_kw"}},
                "limits": {"p_min_kw": 0.0, "p_max_kw": kw, "p_guaranteed_min_kw": GUARANTEED_MIN_KW},
                "safe_state": safe,
                "model": {"tank_kwh": round(b.hp.tank_kwh, 3), "cop": b.hp.cop},
            }
        )
    if bacnet is not None:
        assets.append(_zone_asset(b))
    doc = _common(b.site, broker_host=broker_host, broker_port=broker_port, state_dir=state_dir)
    return {**doc, "devices": devices, "assets": assets}
