"""One Modbus TCP server per simulated device (pymodbus 3 asyncio server on loopback).

Each device listens on its own port, as a real inverter or charger has its own IP:
faults then hit one device, not the building. The server's datastore is a small
context over the device's `RegisterMap` (pymodbus calls `async_getValues` /
`async_setValues`); a returned exception code becomes a Modbus exception response.

Faults on demand: `silent` (no response at all), `exception` (every request answered
with 0x04 SERVER DEVICE FAILURE), `stale` (registers stop following the physics),
`out_of_range` (measured registers read 0x7FFF…), `disconnect` (open connections are
dropped, and so is every new one at its first request).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal, get_args

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice

from simulators.modbus.regmap import ExcCode, RegisterMap

__all__ = ["FAULT_KINDS", "FaultKind", "ModbusDeviceServer"]

log = logging.getLogger(__name__)

FaultKind = Literal["none", "silent", "exception", "stale", "out_of_range", "disconnect"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

_READ_FC = frozenset({3, 4, 6, 16, 22, 23})  # register tables (writes read back); input mirrors holding
_WRITE_FC = frozenset({6, 16, 22, 23})


class _Context:
    """What pymodbus's request handler needs of a datastore, over one device."""

    def __init__(self, dev: ModbusDeviceServer) -> None:
        self._dev = dev

    def device_ids(self) -> list[int]:
        return [self._dev.unit_id]

    def _gate(self, device_id: int) -> ExcCodes | None:
        dev = self._dev
        if dev.fault == "silent":
            raise NoSuchIdException("silent fault")  # server ignores it: no response
        if dev.fault == "disconnect":
            dev.drop_connections()
            raise NoSuchIdException("disconnect fault")
        if dev.fault == "exception":
            return ExcCodes.DEVICE_FAILURE
        if device_id != dev.unit_id:
            return ExcCodes.GATEWAY_PATH_UNAVIABLE
        return None

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        gated = self._gate(device_id)
        if gated is not None:
            return gated
        if func_code not in _READ_FC:
            return ExcCodes.ILLEGAL_ADDRESS  # no coils or discrete inputs
        self._dev.reads += 1
        out = self._dev.regmap.read(address, count)
        return ExcCodes(int(out)) if isinstance(out, ExcCode) else out

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        gated = self._gate(device_id)
        if gated is not None:
            return gated
        if func_code not in _WRITE_FC:
            return ExcCodes.ILLEGAL_ADDRESS
        rc = self._dev.regmap.write(address, [int(v) for v in values])
        if rc is not None:
            self._dev.rejected += 1
            log.debug("%s: write %s at %d rejected: %s", self._dev.name, list(values), address, rc.name)
            return ExcCodes(int(rc))
        self._dev.writes += 1
        return None


class ModbusDeviceServer:
    """A Modbus TCP server on `host:port` (0 = the OS picks a free port) for one device."""

    def __init__(
        self, name: str, regmap: RegisterMap, *, unit_id: int = 1, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.name = name
        self.regmap = regmap
        self.unit_id = unit_id
        self.host = host
        self._want_port = port
        self.port = 0
        self.fault: FaultKind = "none"
        self.reads = 0
        self.writes = 0
        self.rejected = 0
        self._server: ModbusTcpServer | None = None
        regmap.refresh()

    async def start(self) -> None:
        """Listen on `host`:`port` (a free port when 0) in the background; `port` then holds the bound one."""
        server = ModbusTcpServer(
            SimDevice(self.unit_id, simdata=[SimData(0, values=0)]),  # placeholder, replaced below
            address=(self.host, self._want_port),
            ignore_missing_devices=True,
        )
        server.context = _Context(self)  # type: ignore[assignment]
        await server.serve_forever(background=True)
        sockets = server.transport.sockets  # type: ignore[attr-defined]
        self.port = int(sockets[0].getsockname()[1])
        self._server = server

    async def stop(self) -> None:
        """Close every connection and shut the server down; a no-op when it is not running."""
        if self._server is not None:
            self.drop_connections()
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    def refresh(self) -> None:
        """Copy the physics into the registers, unless a fault freezes or garbles them."""
        if self.fault == "stale":
            return
        self.regmap.refresh(garbage=self.fault == "out_of_range")

    def set_fault(self, kind: FaultKind) -> None:
        """Inject fault `kind` (`FAULT_KINDS`): "disconnect" drops clients now, "none" clears and refreshes."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
        self.fault = kind
        if kind == "disconnect":
            self.drop_connections()
        elif kind == "none":
            self.refresh()
        log.info("%s: fault %s", self.name, kind)

    def drop_connections(self) -> None:
        """Close every open client connection (the clients see the device go away)."""
        if self._server is None:
            return
        for conn in list(self._server.active_connections.values()):
            conn.close()

    @property
    def connections(self) -> int:
        """How many clients are connected now."""
        return 0 if self._server is None else len(self._server.active_connections)
