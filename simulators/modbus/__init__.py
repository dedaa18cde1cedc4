"""Modbus TCP side of the simulators: register maps over the physics and one server per device."""

from __future__ import annotations

from simulators.modbus.regmap import ExcCode, Field, RegisterMap
from simulators.modbus.server import FAULT_KINDS, FaultKind, ModbusDeviceServer
from simulators.modbus.sunspec import SUNSPEC_BASE, meter_map, pv_map
from simulators.modbus.vendor import battery_map, ev_map, hp_map

__all__ = [
    "FAULT_KINDS",
    "SUNSPEC_BASE",
    "ExcCode",
    "FaultKind",
    "Field",
    "ModbusDeviceServer",
    "RegisterMap",
    "battery_map",
    "ev_map",
    "hp_map",
    "meter_map",
    "pv_map",
]
