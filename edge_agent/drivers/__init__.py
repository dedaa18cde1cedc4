"""Field-bus drivers behind one async interface (`Driver`), built from the site config."""

from __future__ import annotations

from edge_agent.config import BacnetDevice, ModbusDevice
from edge_agent.drivers.bacnet import BacnetDriver, BacnetStack
from edge_agent.drivers.base import DeviceError, Driver, PointRef, Reading
from edge_agent.drivers.modbus import ModbusDriver

__all__ = [
    "BacnetDriver",
    "BacnetStack",
    "DeviceError",
    "Driver",
    "ModbusDriver",
    "PointRef",
    "Reading",
    "make_driver",
]


def make_driver(device: ModbusDevice | BacnetDevice, stack: BacnetStack) -> Driver:
    """The driver for one configured device (the registry is the `driver` discriminator)."""
    if isinstance(device, ModbusDevice):
        return ModbusDriver.from_config(device)
    return BacnetDriver.from_config(device, stack)
