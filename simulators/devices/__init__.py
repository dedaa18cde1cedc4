"""Pure device physics (no I/O): battery, PV inverter, EV charger, heat pump + tank, BMS zone, meter, substation meter."""

from __future__ import annotations

from simulators.devices.battery import Battery
from simulators.devices.ev import EvCharger
from simulators.devices.heatpump import HeatPump
from simulators.devices.meter import Meter
from simulators.devices.pv import PvInverter
from simulators.devices.substation import SubstationMeter
from simulators.devices.zone import Zone

__all__ = ["Battery", "EvCharger", "HeatPump", "Meter", "PvInverter", "SubstationMeter", "Zone"]
