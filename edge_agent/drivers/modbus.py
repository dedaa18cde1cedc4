"""Modbus TCP driver on pymodbus' async client: coalesced reads, typed and scaled values.

pymodbus' own reconnect loop is switched off (`reconnect_delay=0`, `retries=0`): the
poller owns reconnects and their backoff, so one policy covers every driver, and a
dead device costs exactly one timed-out call per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge_agent.config import ModbusDevice, PointConfig
from edge_agent.drivers.base import DeviceError, PointRef, Reading
from edge_agent.drivers.registers import (
    ReadBlock,
    decode,
    encode,
    engineering_to_raw,
    plan_reads,
    raw_to_engineering,
    sf_wants,
)

__all__ = ["ModbusDriver"]

#: SunSpec "not implemented" sentinels (for points with a scale factor, i.e. SunSpec models).
SF_RANGE = 10  # SunSpec scale factors (sunssf) lie in -10..10
_SUNSPEC_NOT_IMPLEMENTED = {"int16": -32768.0, "uint16": 65535.0, "int32": -(2.0**31), "uint32": 2.0**32 - 1}

log = logging.getLogger(__name__)


class ModbusDriver:
    """One Modbus TCP device (host, port, unit id)."""

    def __init__(self, device: ModbusDevice) -> None:
        self.device = device
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()  # one transaction at a time keeps read-back after write ordered

    @classmethod
    def from_config(cls, device: ModbusDevice) -> ModbusDriver:
        """A driver for `device` (connects on first use)."""
        return cls(device)

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        await self.close()
        dev = self.device
        client = AsyncModbusTcpClient(
            dev.host, port=dev.port, timeout=dev.timeout_s, retries=0, reconnect_delay=0
        )
        try:
            async with asyncio.timeout(dev.timeout_s):
                ok = await client.connect()
        except (TimeoutError, OSError, ModbusException) as exc:
            client.close()
            raise DeviceError(f"{dev.id}: cannot connect to {dev.host}:{dev.port}: {exc!r}") from exc
        if not ok:
            client.close()
            raise DeviceError(f"{dev.id}: cannot connect to {dev.host}:{dev.port}")
        self._client = client
        return client

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one request under the per-call timeout; library errors become DeviceError."""
        client = await self._connected()
        try:
            async with asyncio.timeout(self.device.timeout_s):
                return await getattr(client, fn)(*args, device_id=self.device.unit_id, **kwargs)
        except (TimeoutError, OSError, ModbusException) as exc:
            await self.close()
            raise DeviceError(f"{self.device.id}: {what} failed: {exc!r}") from exc

    async def _read_block(self, block: ReadBlock) -> list[int] | list[bool] | str:
        fn = {
            "holding": "read_holding_registers",
            "input": "read_input_registers",
            "coil": "read_coils",
            "discrete": "read_discrete_inputs",
        }[block.table]
        resp = await self._call(
            f"read {block.table} {block.address}+{block.count}", fn, block.address, count=block.count
        )
        if resp.isError():
            return f"exception code {getattr(resp, 'exception_code', '?')}"
        if block.table in ("coil", "discrete"):
            return list(resp.bits[: block.count])
        return list(resp.registers)

    async def _read_points(
        self, points: Sequence[PointConfig]
    ) -> tuple[dict[tuple[str, int], int | bool], dict[tuple[str, int], str]]:
        values: dict[tuple[str, int], int | bool] = {}
        errors: dict[tuple[str, int], str] = {}
        for block in plan_reads(sf_wants(points), max_gap=self.device.max_gap):
            data = await self._read_block(block)
            if isinstance(data, str):
                if len(block.addresses) > 1:  # isolate the bad address, keep the good ones
                    for address in sorted(block.addresses):
                        single = ReadBlock(
                            block.table, address, 2 if block.table in ("holding", "input") else 1, {address}
                        )
                        sub = await self._read_block(single)
                        if isinstance(sub, str):
                            sub = await self._read_block(ReadBlock(block.table, address, 1, {address}))
                        if isinstance(sub, str):
                            errors[(block.table, address)] = sub
                        else:
                            for i, v in enumerate(sub):
                                values[(block.table, address + i)] = v
                else:
                    for address in block.addresses:
                        errors[(block.table, address)] = data
                continue
            for i, v in enumerate(data):
                values[(block.table, block.address + i)] = v
        return values, errors

    async def read(self, points: Sequence[PointRef]) -> dict[str, Reading]:
        """Read `points` in coalesced blocks; a point whose block failed reads as bad."""
        async with self._lock:
            values, errors = await self._read_points([r.point for r in points])
        out: dict[str, Reading] = {}
        for ref in points:
            p = ref.point
            assert p.table is not None and p.address is not None and p.type is not None
            err = errors.get((p.table, p.address))
            if err is None and p.sf_address is not None:
                err = errors.get((p.table, p.sf_address))
            if err is not None:
                out[ref.key] = Reading(None, "bad", f"{self.device.id}: {err}")
                continue
            try:
                if p.type == "bool":
                    raw = float(bool(values[(p.table, p.address)]))
                else:
                    regs = [int(values[(p.table, p.address + i)]) for i in range(p.register_count)]
                    raw = decode(regs, p.type, p.word_order, p.byte_order)
                sf = 0
                if p.sf_address is not None and raw == _SUNSPEC_NOT_IMPLEMENTED.get(p.type):
                    out[ref.key] = Reading(None, "bad", "SunSpec value not implemented")
                    continue
                if p.sf_address is not None:
                    sf = int(decode([int(values[(p.table, p.sf_address)])], "int16"))
                    if sf == -32768:  # SunSpec "not implemented"
                        out[ref.key] = Reading(None, "bad", "scale factor not implemented")
                        continue
                    if not -SF_RANGE <= sf <= SF_RANGE:  # a faulty device: 10**sf would overflow
                        out[ref.key] = Reading(
                            None, "bad", f"scale factor {sf} outside SunSpec's ±{SF_RANGE}"
                        )
                        continue
                value = raw_to_engineering(raw, p, sf)
                if not math.isfinite(value):  # NaN/inf float32 from the device is no measurement
                    out[ref.key] = Reading(None, "bad", "value is not a finite number")
                    continue
                out[ref.key] = Reading(value)
            except KeyError:
                out[ref.key] = Reading(None, "bad", "register missing from response")
        return out

    async def write(self, point: PointConfig, value: float, *, priority: int | None = None) -> None:
        """Write `value` (engineering units), reading the point's scale-factor register first if it has one."""
        del priority  # Modbus has no command priorities
        p = point
        assert p.table is not None and p.address is not None and p.type is not None
        async with self._lock:
            sf = 0
            if p.sf_address is not None:
                values, errors = await self._read_points(
                    [p.model_copy(update={"sf_address": None, "address": p.sf_address, "type": "int16"})]
                )
                if errors:
                    raise DeviceError(f"{self.device.id}: cannot read scale factor of {p.name}")
                sf = int(decode([int(values[(p.table, p.sf_address)])], "int16"))
            try:
                raw = engineering_to_raw(value, p, sf)
                if p.type == "bool":
                    resp = await self._call(
                        f"write coil {p.address}", "write_coil", p.address, bool(round(raw))
                    )
                else:
                    regs = encode(raw, p.type, p.word_order, p.byte_order)
                    if len(regs) == 1:
                        resp = await self._call(f"write {p.address}", "write_register", p.address, regs[0])
                    else:
                        resp = await self._call(f"write {p.address}", "write_registers", p.address, regs)
            except ValueError as exc:
                raise DeviceError(f"{self.device.id}: {p.name}: {exc}") from exc
            if resp.isError():
                raise DeviceError(
                    f"{self.device.id}: write {p.name} refused: exception code {getattr(resp, 'exception_code', '?')}"
                )

    async def relinquish(self, point: PointConfig) -> None:
        """Always fails: Modbus has no priorities, so a safe state writes a value instead."""
        raise DeviceError(f"{self.device.id}: Modbus has no priorities to relinquish ({point.name})")

    async def close(self) -> None:
        """Close the TCP connection, if any; the next read or write reconnects."""
        if self._client is not None:
            self._client.close()
            self._client = None
