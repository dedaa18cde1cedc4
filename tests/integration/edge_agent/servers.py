# mypy: disable-error-code="no-untyped-call"
"""Real field-bus servers on 127.0.0.1 free ports for the agent's tests (no mocks).

`ModbusServer` wraps pymodbus' TCP server (stop/start on the same port to play a
device that goes silent); `BacnetDevice` is a BAC0 device with analog objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ModbusServer:
    """A Modbus TCP server with `size` holding/input registers and coils per unit id (PDU address 0..)."""

    def __init__(
        self, *, unit_ids: tuple[int, ...] = (1,), size: int = 1000, input_values: list[int] | None = None
    ) -> None:
        self.port = free_port()
        devices: dict[int, Any] = {}
        for uid in unit_ids:
            devices[uid] = ModbusDeviceContext(
                hr=ModbusSequentialDataBlock(1, [0] * size),
                ir=ModbusSequentialDataBlock(1, input_values or [0] * size),
                co=ModbusSequentialDataBlock(1, [False] * size),
                di=ModbusSequentialDataBlock(1, [False] * size),
            )
        self.context = ModbusServerContext(devices=devices, single=False)
        self._server: ModbusTcpServer | None = None
        self._task: asyncio.Task[Any] | None = None
        self._client: AsyncModbusTcpClient | None = None

    async def start(self) -> ModbusServer:
        self._server = ModbusTcpServer(self.context, address=("127.0.0.1", self.port))
        self._task = asyncio.create_task(self._server.serve_forever())
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return self
            except OSError:
                await asyncio.sleep(0.02)
        raise RuntimeError("modbus server did not start")

    async def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _c(self) -> AsyncModbusTcpClient:
        if self._client is None or not self._client.connected:
            self._client = AsyncModbusTcpClient("127.0.0.1", port=self.port, timeout=2, retries=0)
            await self._client.connect()
        return self._client

    async def set_holding(self, address: int, values: list[int], unit_id: int = 1) -> None:
        """Set registers the way a device's firmware would see them (through a real client)."""
        resp = await (await self._c()).write_registers(address, values, device_id=unit_id)
        assert not resp.isError(), resp

    async def get_holding(self, address: int, count: int = 1, unit_id: int = 1) -> list[int]:
        resp = await (await self._c()).read_holding_registers(address, count=count, device_id=unit_id)
        assert not resp.isError(), resp
        return list(resp.registers)

    async def set_coil(self, address: int, value: bool, unit_id: int = 1) -> None:
        resp = await (await self._c()).write_coil(address, value, device_id=unit_id)
        assert not resp.isError(), resp


class BacnetServer:
    """A BAC0 device on 127.0.0.1:<free udp port> with the given analog values (commandable)."""

    def __init__(
        self,
        *,
        device_id: int = 1001,
        analog_values: dict[int, float] | None = None,
        analog_inputs: dict[int, float] | None = None,
    ) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        self.device_id = device_id
        self.analog_values = analog_values or {}
        self.analog_inputs = analog_inputs or {}
        self.app: Any = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> BacnetServer:
        import BAC0
        from BAC0.core.devices.local.factory import analog_input, analog_value

        BAC0.log_level("silence")
        self.app = BAC0.start(
            ip="127.0.0.1/8", port=self.port, deviceId=self.device_id, localObjName=f"sim-{self.device_id}"
        )
        await self.app.__aenter__()
        for inst, v in self.analog_values.items():
            analog_value(
                instance=inst, name=f"av{inst}", presentValue=v, is_commandable=True
            ).add_objects_to_application(self.app)
        for inst, v in self.analog_inputs.items():
            analog_input(instance=inst, name=f"ai{inst}", presentValue=v).add_objects_to_application(self.app)
        return self

    def object(self, name: str) -> Any:
        return self.app.this_application.app.get_object_name(name)

    def present_value(self, name: str) -> float:
        return float(self.object(name).presentValue)

    def set_input(self, instance: int, value: float) -> None:
        self.object(f"ai{instance}").presentValue = value

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.__aexit__(None, None, None)
            self.app = None
