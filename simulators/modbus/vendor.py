"""Vendor-like register maps (holding registers from 0) for battery inverter, EV charger, heat pump.

Simple, documented maps in the style of real devices: 16/32-bit integers with fixed
scales, load-positive powers, setpoints and limits writable with range checks. The
layouts are the device templates `vendor-battery`, `vendor-ev` and `vendor-hp`.
"""

from __future__ import annotations

from device_templates import builtin
from simulators.devices import Battery, EvCharger, HeatPump
from simulators.modbus.regmap import RegisterMap
from simulators.modbus.template_map import register_map
from simulators.quantities import battery_quantities, ev_quantities, hp_quantities

__all__ = ["battery_map", "ev_map", "hp_map"]


def battery_map(bat: Battery) -> RegisterMap:
    """Battery inverter register map.

    `mode` 0 = local control: hold the site's grid power at `grid_target_w`
    (0 W = self-consumption, the default); 1 = remote (follow `p_setpoint_w`).
    """
    return register_map(builtin("vendor-battery"), battery_quantities(bat))


def ev_map(ev: EvCharger) -> RegisterMap:
    """EV charger. `p_limit_w` = p_max_w means no limit; below 4140 W (6 A) the charger pauses."""
    return register_map(builtin("vendor-ev"), ev_quantities(ev))


def hp_map(hp: HeatPump) -> RegisterMap:
    """Heat pump with tank. `p_limit_w` = p_max_w means no limit."""
    return register_map(builtin("vendor-hp"), hp_quantities(hp))
