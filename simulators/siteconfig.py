"""Edge-agent site YAML for a simulated building, following docs/site-config.md to the letter.

Addresses come from the same register maps the servers serve (looked up by field name),
so a YAML can never point at a register the simulator does not have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from protocols.testbed import BacnetEndpoint, ModbusEndpoint
from simulators.building import Building
from simulators.modbus import RegisterMap

__all__ = ["GUARANTEED_MIN_KW", "site_config"]

GUARANTEED_MIN_KW = 4.2  # §14a EnWG
GRID_TARGET_RANGE_KW = 100.0  # a house connection's range for the inverter's grid target


def _point(
    m: RegisterMap,
    field: str,
    name: str,
    device: str,
    *,
    unit: str,
    scale: float = 1.0,
    sign: float = 1.0,
    writable: bool = False,
    lo: float | None = None,
    hi: float | None = None,
    deadband: float | None = None,
) -> dict[str, Any]:
    """A Modbus point over map field `field`; `scale` turns the field's engineering unit into `unit`."""
    f = m.by_name[field]
    p: dict[str, Any] = {
        "name": name,
        "device": device,
        "table": "holding",
        "address": f.address,
        "type": "uint32" if f.type == "acc32" else f.type,
    }
    if f.sf_address is not None:
        p["scale"] = f.scale * scale
        p["sf_address"] = f.sf_address
    else:
        p["scale"] = f.factor * scale
    if sign != 1.0:
        p["sign"] = sign
    p["unit"] = unit
    if deadband is not None:
        p["deadband"] = deadband
    if writable:
        p.update({"writable": True, "min": lo, "max": hi})
    return p


def _bacnet_point(
    name: str,
    obj: str,
    unit: str,
    *,
    writable: bool = False,
    lo: float | None = None,
    hi: float | None = None,
) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "device": "bms", "object": obj, "unit": unit}
    if writable:
        p.update({"writable": True, "priority": 8, "min": lo, "max": hi})
    return p


def site_config(
    b: Building,
    maps: dict[str, RegisterMap],
    modbus: list[ModbusEndpoint],
    bacnet: BacnetEndpoint | None,
    *,
    broker_host: str,
    broker_port: int,
    state_dir: Path,
) -> dict[str, Any]:
    """The YAML document (as a dict) for building `b` served at `modbus` / `bacnet`."""
    devices: list[dict[str, Any]] = [
        {
            "id": e.device,
            "driver": "modbus",
            "host": e.host,
            "port": e.port,
            "unit_id": e.unit_id,
            "timeout_s": 1.0,
        }
        for e in modbus
    ]
    if bacnet is not None:
        devices.append(
            {
                "id": bacnet.device,
                "driver": "bacnet",
                "address": bacnet.address,
                "device_id": bacnet.device_id,
                "timeout_s": 2.0,
            }
        )
    assets: list[dict[str, Any]] = []
    m = maps["meter"]
    meter: dict[str, Any] = {
        "id": "meter",
        "kind": "meter",
        "points": [
            _point(m, "W", "p_kw", "meter", unit="kW", scale=0.001, deadband=0.01),
            _point(m, "TotWhImp", "e_import_kwh", "meter", unit="kWh", scale=0.001),
            _point(m, "TotWhExp", "e_export_kwh", "meter", unit="kWh", scale=0.001),
        ],
    }
    if b.battery is not None:
        # The site's grid power, held by the battery inverter's own loop (mode 0): a
        # `p_setpoint_kw` command on the meter sets the target the inverter tracks.
        mb = maps["battery"]
        meter["points"] += [
            _point(
                mb,
                "grid_target_w",
                "grid_target_kw",
                "battery",
                unit="kW",
                scale=0.001,
                writable=True,
                lo=-GRID_TARGET_RANGE_KW,
                hi=GRID_TARGET_RANGE_KW,
            ),
            _point(mb, "mode", "battery_mode", "battery", unit="", writable=True, lo=0.0, hi=1.0),
        ]
        meter["controls"] = {
            "p_setpoint_kw": {"point": "grid_target_kw", "enable": {"point": "battery_mode", "value": 0}}
        }
        meter["safe_state"] = [{"point": "grid_target_kw", "write": 0}]
    assets.append(meter)
    if b.pv is not None:
        m = maps["pv"]
        kw = b.pv.inverter_kw
        assets.append(
            {
                "id": "pv1",
                "kind": "pv",
                "p_nominal_kw": kw,
                "points": [
                    _point(m, "W", "p_kw", "pv", unit="kW", scale=0.001, sign=-1.0, deadband=0.01),
                    _point(m, "WMaxLimPct", "wmaxlim_pct", "pv", unit="%", writable=True, lo=0.0, hi=100.0),
                    _point(m, "WMaxLim_Ena", "wmaxlim_ena", "pv", unit="", writable=True, lo=0.0, hi=1.0),
                ],
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
        m, bat = maps["battery"], b.battery
        assets.append(
            {
                "id": "bat1",
                "kind": "battery",
                "p_nominal_kw": bat.p_charge_max_kw,
                "points": [
                    _point(m, "soc_pct", "soc_pct", "battery", unit="%", deadband=0.1),
                    _point(m, "p_w", "p_kw", "battery", unit="kW", scale=0.001, deadband=0.01),
                    _point(m, "mode", "mode", "battery", unit="", writable=True, lo=0.0, hi=1.0),
                    _point(
                        m,
                        "p_setpoint_w",
                        "p_setpoint_kw",
                        "battery",
                        unit="kW",
                        scale=0.001,
                        writable=True,
                        lo=-bat.p_discharge_max_kw,
                        hi=bat.p_charge_max_kw,
                    ),
                ],
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
        m, kw = maps["ev"], b.ev.p_max_kw
        assets.append(
            {
                "id": "ev1",
                "kind": "ev",
                "p_nominal_kw": kw,
                "points": [
                    _point(m, "p_w", "p_kw", "ev", unit="kW", scale=0.001, deadband=0.01),
                    _point(m, "state", "state", "ev", unit=""),
                    _point(m, "e_remaining_wh", "e_remaining_kwh", "ev", unit="kWh", scale=0.001),
                    _point(
                        m,
                        "p_limit_w",
                        "p_limit_kw",
                        "ev",
                        unit="kW",
                        scale=0.001,
                        writable=True,
                        lo=0.0,
                        hi=kw,
                    ),
                ],
                "controls": {"p_limit_kw": {"point": "p_limit_kw"}},
                "limits": {"p_min_kw": 0.0, "p_max_kw": kw, "p_guaranteed_min_kw": GUARANTEED_MIN_KW},
                "safe_state": [{"point": "p_limit_kw", "write": kw}],
                "model": {"p_max_kw": kw},
            }
        )
    if b.hp is not None:
        m, kw = maps["hp"], b.hp.p_max_kw
        points = [
            _point(m, "p_w", "p_kw", "hp", unit="kW", scale=0.001, deadband=0.01),
            _point(m, "t_tank_c", "t_tank_c", "hp", unit="degC", deadband=0.1),
            _point(m, "cop", "cop", "hp", unit=""),
            _point(m, "p_limit_w", "p_limit_kw", "hp", unit="kW", scale=0.001, writable=True, lo=0.0, hi=kw),
        ]
        safe: list[dict[str, Any]] = [{"point": "p_limit_kw", "write": kw}]
        if bacnet is not None:
            points.append(
                _bacnet_point("bms_p_limit_kw", "analogValue:3", "kW", writable=True, lo=0.0, hi=kw)
            )
            safe.append({"point": "bms_p_limit_kw", "relinquish": True})
        assets.append(
            {
                "id": "hp1",
                "kind": "hp",
                "p_nominal_kw": kw,
                "points": points,
                "controls": {"p_limit_kw": {"point": "p_limit_kw"}},
                "limits": {"p_min_kw": 0.0, "p_max_kw": kw, "p_guaranteed_min_kw": GUARANTEED_MIN_KW},
                "safe_state": safe,
                "model": {"tank_kwh": round(b.hp.tank_kwh, 3)},
            }
        )
    if bacnet is not None:
        assets.append(
            {
                "id": "zone1",
                "kind": "hvac",
                "points": [
                    _bacnet_point("zone_t_c", "analogInput:1", "degC"),
                    _bacnet_point("co2_ppm", "analogInput:2", "ppm"),
                    _bacnet_point("outdoor_t_c", "analogInput:3", "degC"),
                    _bacnet_point("fan_kw", "analogInput:4", "kW"),
                    _bacnet_point("t_setpoint_c", "analogValue:1", "degC", writable=True, lo=16.0, hi=26.0),
                    _bacnet_point("fan_pct", "analogValue:2", "%", writable=True, lo=0.0, hi=100.0),
                ],
                "controls": {"t_setpoint_c": {"point": "t_setpoint_c"}},
                "safe_state": [
                    {"point": "t_setpoint_c", "relinquish": True},
                    {"point": "fan_pct", "relinquish": True},
                ],
                "model": {"t_min_c": 19.0, "t_max_c": 24.0},
            }
        )
    return {
        "site": b.site,
        "broker": {"host": broker_host, "port": broker_port, "tls": None, "keepalive_s": 30},
        "cloud": {"watermark": True},
        "signing": {"key_file": None},
        "buffer": {
            "path": str(state_dir / f"{b.site}.sqlite"),
            "max_rows": 1_000_000,
            "max_age_s": 604_800,
            "batch_max": 500,
        },
        "fallback": {"after_s": 300},
        "health": {"host": "127.0.0.1", "port": None},
        "poll": {"interval_s": 1.0, "max_age_s": 60.0},
        "devices": devices,
        "assets": assets,
    }
