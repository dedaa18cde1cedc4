"""One BACnet/IP BMS device per building (BAC0 on bacpypes3), each on its own UDP port.

Objects (instance numbers are fixed so site configs can name them):

| object | name | unit | meaning |
|---|---|---|---|
| analogInput:1 | zone_t_c | °C | zone air temperature |
| analogInput:2 | zone_co2_ppm | ppm | zone CO2 |
| analogInput:3 | outdoor_t_c | °C | outdoor air temperature |
| analogInput:4 | ahu_fan_kw | kW | AHU fan electric power |
| analogInput:5 | tank_t_c | °C | heat-pump tank temperature (heat-pump sites) |
| analogValue:1 | zone_setpoint_c | °C | commandable, relinquish default 21 |
| analogValue:2 | ahu_fan_pct | % | commandable, relinquish default 40 (fixed-speed schedule) |
| analogValue:3 | hp_p_limit_kw | kW | commandable, relinquish default = HP rating (= no limit) (heat-pump sites) |
| binaryValue:1 | ahu_enable | - | commandable, relinquish default active; inactive stops the fan |
| binaryValue:2 | hp_running | - | compressor on (heat-pump sites), read-only |

The objects are the device template `bacnet-bms` (device_templates/builtin/), the same
file the edge agent's BACnet points are expanded from; this module binds each object's
`quantity` to the building's physics. `sync()` applies the commandable objects' present
values (the highest-priority entry of their 16-level priority array, else the relinquish
default) to the physics and publishes the measured values; the test bed calls it after
every physics step.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Any

from device_templates import BacnetObject, DeviceTemplate, builtin
from protocols.assets import Role
from simulators.building import Building
from simulators.quantities import Quantity

__all__ = ["BmsDevice", "free_udp_port", "quiet_bac0"]

log = logging.getLogger(__name__)

ZONE_SETPOINT_DEFAULT_C = 21.0
FAN_DEFAULT_PCT = 40.0
_lock = asyncio.Lock()  # BAC0's ObjectFactory is a process-wide registry: build one device at a time


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port free on `host` now (bound and released; another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def quiet_bac0() -> None:
    """BAC0 gives every class its own logger with INFO handlers on stdout; keep them to errors."""
    import BAC0
    import BAC0.core.devices.local.factory  # noqa: F401
    from BAC0.core.utils.notes import LogList

    for lg in list(LogList.LOGGERS):
        for h in lg.handlers:
            h.setLevel(max(h.level, logging.ERROR))


def _is_active(value: Any) -> bool:
    return str(value).strip().lower() in ("active", "1", "true")


@dataclass
class _Ahu:
    """The air handler's two commands: the fan runs at `pct` only while `on`."""

    pct: float = FAN_DEFAULT_PCT
    on: bool = True


def bms_quantities(b: Building) -> dict[str, Quantity]:
    """What the `bacnet-bms` template's objects name, over building `b` (heat-pump ones if it has one)."""
    ahu = _Ahu()

    def set_setpoint(v: float) -> None:
        b.zone.setpoint_c = v

    def set_fan_pct(v: float) -> None:
        ahu.pct = v
        b.zone.fan_cmd_pct = ahu.pct if ahu.on else 0.0

    def set_enable(v: float) -> None:
        ahu.on = bool(v)
        b.zone.fan_cmd_pct = ahu.pct if ahu.on else 0.0

    q = {
        "zone_t_c": Quantity(lambda: b.zone.t_c),
        "zone_co2_ppm": Quantity(lambda: b.zone.co2_ppm),
        "outdoor_t_c": Quantity(lambda: b.t_amb_c),
        "ahu_fan_kw": Quantity(lambda: b.zone.p_fan_kw),
        "zone_setpoint_c": Quantity(lambda: b.zone.setpoint_c, set_setpoint),
        "ahu_fan_pct": Quantity(lambda: ahu.pct, set_fan_pct),
        "ahu_enable": Quantity(lambda: float(ahu.on), set_enable),
    }
    hp = b.hp
    if hp is not None:

        def set_limit(v: float) -> None:
            hp.p_limit_bms_kw = None if v >= hp.p_max_kw else max(0.0, v)

        q |= {
            "tank_t_c": Quantity(lambda: hp.t_tank_c),
            "hp_p_max_kw": Quantity(lambda: hp.p_max_kw),
            "hp_p_limit_kw": Quantity(lambda: hp.p_max_kw, set_limit),
            "hp_running": Quantity(lambda: float(hp.running)),
        }
    return q


def _has(b: Building, role: Role | None) -> bool:
    """Whether building `b` has an asset of `role` (every building has a meter and a zone)."""
    present = {Role.PV: b.pv, Role.BATTERY: b.battery, Role.EV: b.ev, Role.HP: b.hp}
    return role is None or present.get(role, True) is not None


class BmsDevice:
    """The BMS of one building: a BAC0 device whose objects mirror and command the physics."""

    def __init__(
        self,
        building: Building,
        *,
        device_id: int,
        host: str = "127.0.0.1",
        port: int = 0,
        template: DeviceTemplate | None = None,
    ) -> None:
        self.building = building
        self.template = template or builtin("bacnet-bms")
        self._q = bms_quantities(building)
        self._objects: list[BacnetObject] = [o for o in self.template.objects if _has(building, o.requires)]
        self.device_id = device_id
        self.host = host
        self.port = port
        self._dev: Any = None
        self._ctx: Any = None
        self._obj: dict[str, Any] = {}

    @property
    def address(self) -> str:
        """The BACnet/IP address "host:port" clients reach the device at."""
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        """Start the BAC0 device with the template's objects, at the physics' current values."""
        import BAC0
        from BAC0.core.devices.local.factory import (
            ObjectFactory,
            analog_input,
            analog_value,
            binary_input,
            binary_value,
        )

        quiet_bac0()
        if not self.port:
            self.port = free_udp_port(self.host)
        self._ctx = BAC0.start(
            ip=f"{self.host}/8",
            port=self.port,
            deviceId=self.device_id,
            localObjName=f"{self.building.site}-bms",
        )
        self._dev = await self._ctx.__aenter__()
        async with _lock:
            ObjectFactory.clear_objects()
            factories = {
                "analogInput": analog_input,
                "analogValue": analog_value,
                "binaryInput": binary_input,
                "binaryValue": binary_value,
            }
            for o in self._objects:
                kind, instance = o.object.split(":")
                kwargs: dict[str, Any] = {"instance": int(instance), "name": o.name}
                if o.commandable:
                    default = self._default(o)
                    kwargs["presentValue"] = True if default is None else default
                    kwargs["is_commandable"] = True
                    if default is not None:
                        kwargs["relinquishDefault"] = default
                else:
                    value = self._q[o.quantity or ""].get()
                    kwargs["presentValue"] = bool(value) if kind.startswith("binary") else value
                if o.units is not None:
                    kwargs["properties"] = {"units": o.units}
                factories[kind](**kwargs)
            objects = dict(ObjectFactory.objects)
            ObjectFactory.clear_objects()
        app = self._dev.this_application.app
        for obj in objects.values():
            app.add_object(obj)
        self._obj = objects
        self.sync()
        log.info("%s: BACnet device %d on %s", self.building.site, self.device_id, self.address)

    async def stop(self) -> None:
        """Stop the BAC0 device; a no-op when it is not running."""
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            await ctx.__aexit__(None, None, None)

    def _default(self, o: BacnetObject) -> float | None:
        if o.default is None or isinstance(o.default, float | int):
            return o.default
        return float(self._q[o.default].get())

    def sync(self) -> None:
        """Commands in (present values of the commandable objects) → physics; measurements out."""
        objs = self._obj
        if not objs:
            return
        for o in self._objects:
            if o.commandable and o.quantity is not None:
                setter = self._q[o.quantity].set
                assert setter is not None, o.name
                value = objs[o.name].presentValue
                setter(float(_is_active(value)) if o.object.startswith("binary") else float(value))
        for o in self._objects:
            if o.commandable or o.quantity is None:
                continue
            v = self._q[o.quantity].get()
            if o.object.startswith("binary"):
                objs[o.name].presentValue = "active" if v else "inactive"
            else:
                objs[o.name].presentValue = round(float(v), o.digits) if o.digits is not None else v
