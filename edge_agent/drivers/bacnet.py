"""BACnet/IP driver on BAC0: ReadPropertyMultiple, write with priority, relinquish with `null`.

All BACnet devices of a site share one BAC0 application (one UDP port), `BacnetStack`;
each device gets a light `BacnetDriver` that addresses it. BAC0 answers an unknown
object with `None` rather than an error; that becomes a `bad` reading, not a fault.

BAC0 is imported off the event loop (`asyncio.to_thread`): the import takes a second
or more on a gateway, and done on the agent's loop it stalled every Modbus poll at
start, which showed as false `device_fault` events and `bad` samples. `BAC0.start`
itself needs the running loop (it creates tasks), so it stays here; with its debug
notes made cheap (`bac0_logging`) it is short.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import socket
from collections.abc import Sequence
from typing import Any

from edge_agent.config import BacnetClientConfig, BacnetDevice, PointConfig
from edge_agent.drivers.base import DeviceError, PointRef, Reading

__all__ = ["BacnetDriver", "BacnetStack"]

log = logging.getLogger(__name__)

_BINARY = {"active": 1.0, "inactive": 0.0}


def _free_udp_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


def to_float(value: Any) -> float | None:
    """A BACnet property value as a number (binary active/inactive -> 1/0), None if it is none."""
    if value is None or value == ():
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower()
    if text in _BINARY:
        return _BINARY[text]
    try:
        return float(text)
    except ValueError:
        return None


class BacnetStack:
    """The agent's own BAC0 application, started on first use and shared by every BACnet device."""

    def __init__(self, config: BacnetClientConfig) -> None:
        self.config = config
        self._app: Any = None
        self._lock = asyncio.Lock()

    async def app(self) -> Any:
        """The shared BAC0 application, started on first use (BAC0 imported off the event loop)."""
        async with self._lock:
            if self._app is None:
                # heavy import, only for sites with BACnet devices, and never on the event loop
                BAC0: Any = await asyncio.to_thread(importlib.import_module, "BAC0")
                await asyncio.to_thread(importlib.import_module, "edge_agent.drivers.bac0_logging")

                from edge_agent.drivers.bac0_logging import make_bac0_logging_cheap

                BAC0.log_level("silence")
                make_bac0_logging_cheap()
                ip = self.config.ip
                port = self.config.port or _free_udp_port(ip.split("/")[0])
                try:
                    lite = BAC0.start(
                        ip=ip, port=port, deviceId=self.config.device_id, localObjName="gridflex-edge"
                    )
                    await lite.__aenter__()
                except Exception as exc:
                    raise DeviceError(f"cannot start BACnet stack on {ip} port {port}: {exc!r}") from exc
                self._app = lite
            return self._app

    async def close(self) -> None:
        """Stop the BAC0 application if it was started (bounded; a failure is only logged)."""
        async with self._lock:
            if self._app is not None:
                app, self._app = self._app, None
                try:
                    await asyncio.wait_for(app.__aexit__(None, None, None), 10)
                except Exception:  # closing on the way out; nothing left to act on
                    log.warning("BACnet stack did not stop cleanly", exc_info=True)


class BacnetDriver:
    """One BACnet device at `address` (ip:port), reached through the shared stack."""

    def __init__(self, device: BacnetDevice, stack: BacnetStack) -> None:
        self.device = device
        self.stack = stack

    @classmethod
    def from_config(cls, device: BacnetDevice, stack: BacnetStack) -> BacnetDriver:
        """A driver for `device` on the shared `stack`."""
        return cls(device, stack)

    def _obj(self, point: PointConfig) -> str:
        assert point.object is not None
        return f"{point.object} {point.bacnet_property}"

    async def _call(self, what: str, coro_fn: Any, arg: str) -> Any:
        app = await self.stack.app()
        try:
            async with asyncio.timeout(self.device.timeout_s):
                return await getattr(app, coro_fn)(arg)
        except TimeoutError as exc:
            raise DeviceError(f"{self.device.id}: {what} timed out after {self.device.timeout_s} s") from exc
        except Exception as exc:  # BAC0/bacpypes3 raise many unrelated types: one DeviceError
            raise DeviceError(f"{self.device.id}: {what} failed: {exc!r}") from exc

    async def read(self, points: Sequence[PointRef]) -> dict[str, Reading]:
        """Read `points` with one ReadPropertyMultiple, or one by one if that fails; unknown objects read as bad."""
        if not points:
            return {}
        addr = self.device.address
        out: dict[str, Reading] = {}
        values: list[Any] | None = None
        if len(points) > 1:
            request = addr + " " + " ".join(f"{r.point.object} {r.point.bacnet_property}" for r in points)
            try:
                result = await self._call("readMultiple", "readMultiple", request)
                if isinstance(result, list) and len(result) == len(points):
                    values = result
            except DeviceError:
                values = None  # fall back to single reads, which tell a dead device from a bad object
        if values is None:
            values = []
            for ref in points:
                values.append(
                    await self._call(f"read {ref.point.object}", "read", f"{addr} {self._obj(ref.point)}")
                )
        for ref, raw in zip(points, values, strict=True):
            number = to_float(raw)
            if number is None:
                out[ref.key] = Reading(None, "bad", f"{self.device.id}: no value for {ref.point.object}")
            else:
                out[ref.key] = Reading(ref.point.sign * (number * ref.point.scale + ref.point.offset))
        return out

    async def write(self, point: PointConfig, value: float, *, priority: int | None = None) -> None:
        """Write `value` (engineering units) at `priority`, else the point's, else 8."""
        raw = (value / point.sign - point.offset) / point.scale
        prio = priority or point.priority or 8
        text = repr(float(raw)) if point.object and point.object.startswith("analog") else str(round(raw))
        if point.object and point.object.startswith("binary"):
            text = "active" if raw >= 0.5 else "inactive"
        await self._call(
            f"write {point.object}", "_write", f"{self.device.address} {self._obj(point)} {text} - {prio}"
        )

    async def relinquish(self, point: PointConfig) -> None:
        """Release our write at the point's priority (default 8) by writing `null`."""
        prio = point.priority or 8
        await self._call(
            f"relinquish {point.object}", "_write", f"{self.device.address} {self._obj(point)} null - {prio}"
        )

    async def close(self) -> None:
        """The stack is shared; the agent closes it once."""
