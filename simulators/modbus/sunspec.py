"""SunSpec register maps: PV inverter (models 1, 103, 120, 123) and meter (models 1, 203).

Addresses are PDU addresses, 0-based: `SunS` (0x5375 0x6E53) at 40000, then each model
as ID, L (length) and L registers, ended by 0xFFFF 0. A client finds everything by
walking ID/L from 40002, as real SunSpec tools do. Registers of a model that the
simulator does not fill read 0. The layout is the device templates `sunspec-inverter`
and `sunspec-meter` (device_templates/builtin/), the agent's points come from the same files.
"""

from __future__ import annotations

from device_templates import SUNSPEC_BASE, builtin
from simulators.devices import Meter, PvInverter
from simulators.modbus.regmap import RegisterMap
from simulators.modbus.template_map import register_map
from simulators.quantities import ST_MPPT, ST_SLEEPING, ST_THROTTLED, meter_quantities, pv_quantities

__all__ = ["ST_MPPT", "ST_SLEEPING", "ST_THROTTLED", "SUNSPEC_BASE", "meter_map", "pv_map"]


def pv_map(pv: PvInverter, *, serial: str, unit_id: int = 1) -> RegisterMap:
    """SunSpec PV inverter over `pv`. WMaxLimPct (%, SF −1) with WMaxLim_Ena curtails the physics."""
    return register_map(builtin("sunspec-inverter"), pv_quantities(pv, serial=serial), unit_id=unit_id)


def meter_map(meter: Meter, *, serial: str, unit_id: int = 1) -> RegisterMap:
    """SunSpec wye meter (model 203) over `meter`. W is import-positive (load-positive)."""
    return register_map(builtin("sunspec-meter"), meter_quantities(meter, serial=serial), unit_id=unit_id)
