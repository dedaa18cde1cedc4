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

`sync()` applies the commandable objects' present values (the highest-priority entry
of their 16-level priority array, else the relinquish default) to the physics and
publishes the measured values; the test bed calls it after every physics step.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from simulators.building import Building

__all__ = ["BmsDevice", "free_udp_port", "quiet_bac0"]

log = logging.getLogger(__name__)

ZONE_SETPOINT_DEFAULT_C = 21.0
FAN_DEFAULT_PCT = 40.0
_lock = asyncio.Lock()  # BAC0's ObjectFactory is a process-wide registry: build one device at a time


def free_udp_port(host: str = "127.0.0.1") -> int:
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


class BmsDevice:
    """The BMS of one building: a BAC0 device whose objects mirror and command the physics."""

    def __init__(self, building: Building, *, device_id: int, host: str = "127.0.0.1", port: int = 0) -> None:
        self.building = building
        self.device_id = device_id
        self.host = host
        self.port = port
        self._dev: Any = None
        self._ctx: Any = None
        self._obj: dict[str, Any] = {}

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        import BAC0
        from BAC0.core.devices.local.factory import (
            ObjectFactory,
            analog_input,
            analog_value,
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
        b = self.building
        async with _lock:
            ObjectFactory.clear_objects()
            c = {"units": "degreesCelsius"}
            analog_input(instance=1, name="zone_t_c", presentValue=b.zone.t_c, properties=c)
            analog_input(
                instance=2,
                name="zone_co2_ppm",
                presentValue=b.zone.co2_ppm,
                properties={"units": "partsPerMillion"},
            )
            analog_input(instance=3, name="outdoor_t_c", presentValue=b.t_amb_c, properties=c)
            analog_input(
                instance=4, name="ahu_fan_kw", presentValue=b.zone.p_fan_kw, properties={"units": "kilowatts"}
            )
            analog_value(
                instance=1,
                name="zone_setpoint_c",
                presentValue=ZONE_SETPOINT_DEFAULT_C,
                is_commandable=True,
                relinquishDefault=ZONE_SETPOINT_DEFAULT_C,
                properties=c,
            )
            analog_value(
                instance=2,
                name="ahu_fan_pct",
                presentValue=FAN_DEFAULT_PCT,
                is_commandable=True,
                relinquishDefault=FAN_DEFAULT_PCT,
                properties={"units": "percent"},
            )
            binary_value(instance=1, name="ahu_enable", presentValue=True, is_commandable=True)
            if b.hp is not None:
                analog_input(instance=5, name="tank_t_c", presentValue=b.hp.t_tank_c, properties=c)
                analog_value(
                    instance=3,
                    name="hp_p_limit_kw",
                    presentValue=b.hp.p_max_kw,
                    is_commandable=True,
                    relinquishDefault=b.hp.p_max_kw,
                    properties={"units": "kilowatts"},
                )
                binary_value(instance=2, name="hp_running", presentValue=b.hp.running)
            objects = dict(ObjectFactory.objects)
            ObjectFactory.clear_objects()
        app = self._dev.this_application.app
        for obj in objects.values():
            app.add_object(obj)
        self._obj = objects
        self.sync()
        log.info("%s: BACnet device %d on %s", self.building.site, self.device_id, self.address)

    async def stop(self) -> None:
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            await ctx.__aexit__(None, None, None)

    def sync(self) -> None:
        """Commands in (present values of the commandable objects) → physics; measurements out."""
        o, b = self._obj, self.building
        if not o:
            return
        b.zone.setpoint_c = float(o["zone_setpoint_c"].presentValue)
        fan_on = _is_active(o["ahu_enable"].presentValue)
        b.zone.fan_cmd_pct = float(o["ahu_fan_pct"].presentValue) if fan_on else 0.0
        o["zone_t_c"].presentValue = round(b.zone.t_c, 3)
        o["zone_co2_ppm"].presentValue = round(b.zone.co2_ppm, 1)
        o["outdoor_t_c"].presentValue = round(b.t_amb_c, 3)
        o["ahu_fan_kw"].presentValue = round(b.zone.p_fan_kw, 4)
        if b.hp is not None:
            limit = float(o["hp_p_limit_kw"].presentValue)
            b.hp.p_limit_bms_kw = None if limit >= b.hp.p_max_kw else max(0.0, limit)
            o["tank_t_c"].presentValue = round(b.hp.t_tank_c, 3)
            o["hp_running"].presentValue = "active" if b.hp.running else "inactive"
