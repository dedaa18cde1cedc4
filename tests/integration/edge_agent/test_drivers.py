"""Drivers against real servers: Modbus (pymodbus TCP server) and BACnet (BAC0 device) on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from edge_agent.config import BacnetClientConfig, BacnetDevice, ModbusDevice, PointConfig
from edge_agent.drivers import BacnetDriver, BacnetStack, DeviceError, ModbusDriver, PointRef
from edge_agent.drivers.registers import encode

from .servers import BacnetServer, ModbusServer

pytestmark = pytest.mark.integration


def _pt(name: str, **kw: object) -> PointConfig:
    return PointConfig.model_validate({"name": name, "device": "dev", **kw})


@pytest.fixture
async def modbus() -> AsyncIterator[ModbusServer]:
    server = await ModbusServer(unit_ids=(1, 7)).start()
    try:
        yield server
    finally:
        await server.stop()


def _driver(server: ModbusServer, unit_id: int = 1, timeout_s: float = 0.5) -> ModbusDriver:
    return ModbusDriver(
        ModbusDevice(
            id="dev",
            driver="modbus",
            host="127.0.0.1",
            port=server.port,
            unit_id=unit_id,
            timeout_s=timeout_s,
        )
    )


async def test_modbus_types_orders_scale_sign_and_sunspec_sf(modbus: ModbusServer) -> None:
    await modbus.set_holding(100, [0xFFFF & -4200, 0xFFFF & -2])  # W = -4200, W_SF = -2
    await modbus.set_holding(110, encode(123456, "int32", "little", "big"))
    await modbus.set_holding(120, encode(3.5, "float32", "big", "little"))
    await modbus.set_holding(130, [65000])
    await modbus.set_coil(5, True)
    await modbus.set_holding(100, [4000], unit_id=7)
    points = [
        PointRef(
            "pv",
            _pt("p_kw", table="holding", address=100, type="int16", scale=0.001, sf_address=101, sign=-1.0),
        ),
        PointRef("pv", _pt("e", table="holding", address=110, type="int32", word_order="little")),
        PointRef(
            "pv", _pt("f", table="holding", address=120, type="float32", byte_order="little", offset=1.0)
        ),
        PointRef("pv", _pt("u", table="holding", address=130, type="uint16", scale=0.1)),
        PointRef("pv", _pt("on", table="coil", address=5, type="bool")),
    ]
    drv = _driver(modbus)
    try:
        got = await drv.read(points)
        assert got["pv.p_kw"].value == pytest.approx(0.042)  # -1 * (-4200 * 0.001 * 10**-2)
        assert got["pv.e"].value == 123456
        assert got["pv.f"].value == pytest.approx(4.5)
        assert got["pv.u"].value == pytest.approx(6500.0)
        assert got["pv.on"].value == 1.0
        assert all(r.quality == "good" for r in got.values())
        other = await _driver(modbus, unit_id=7).read([points[0]])
        assert other["pv.p_kw"].value == pytest.approx(-4.0)  # unit 7: own registers, SF 0
    finally:
        await drv.close()


async def test_modbus_sunspec_not_implemented_is_bad(modbus: ModbusServer) -> None:
    await modbus.set_holding(100, [0x8000, 0])  # int16 "not implemented"
    point = PointRef("pv", _pt("var", table="holding", address=100, type="int16", sf_address=101))
    got = await _driver(modbus).read([point])
    assert got["pv.var"].quality == "bad" and "not implemented" in (got["pv.var"].reason or "")


async def test_modbus_write_scales_back_and_respects_sf(modbus: ModbusServer) -> None:
    await modbus.set_holding(161, [0xFFFF & -1])  # WMaxLimPct_SF = -1
    point = _pt("lim", table="holding", address=152, type="uint16", sf_address=161, writable=True)
    drv = _driver(modbus)
    await drv.write(point, 62.5)
    assert await modbus.get_holding(152) == [625]
    assert (await drv.read([PointRef("a", point)]))["a.lim"].value == pytest.approx(62.5)
    f32 = _pt("sp", table="holding", address=200, type="float32", sign=-1.0, writable=True)
    await drv.write(f32, -2.25)
    assert (await drv.read([PointRef("a", f32)]))["a.sp"].value == pytest.approx(-2.25)
    with pytest.raises(DeviceError):
        await drv.write(_pt("x", table="holding", address=300, type="uint16", writable=True), -5.0)
    await drv.close()


async def test_modbus_exception_code_makes_only_that_point_bad(modbus: ModbusServer) -> None:
    good = PointRef("a", _pt("good", table="holding", address=10, type="uint16"))
    bad = PointRef("a", _pt("bad", table="holding", address=5000, type="uint16"))  # beyond the 1000 registers
    await modbus.set_holding(10, [42])
    got = await _driver(modbus).read([good, bad])
    assert got["a.good"].value == 42
    assert got["a.bad"].quality == "bad" and "exception code 2" in (got["a.bad"].reason or "")


async def test_modbus_silent_device_fails_fast_and_recovers(modbus: ModbusServer) -> None:
    point = PointRef("a", _pt("v", table="holding", address=1, type="uint16"))
    drv = _driver(modbus, timeout_s=0.3)
    await modbus.set_holding(1, [7])
    assert (await drv.read([point]))["a.v"].value == 7
    await modbus.stop()
    t0 = time.monotonic()
    with pytest.raises(DeviceError):
        await drv.read([point])
    assert time.monotonic() - t0 < 1.0
    await modbus.start()  # a restarted device comes back with fresh registers
    await modbus.set_holding(1, [8])
    assert (await drv.read([point]))["a.v"].value == 8
    await drv.close()


async def test_bacnet_read_multiple_write_priority_relinquish() -> None:
    server = await BacnetServer(analog_values={3: 9.0}, analog_inputs={1: 21.5}).start()
    stack = BacnetStack(BacnetClientConfig())
    dev = BacnetDevice(
        id="bms", driver="bacnet", address=server.address, device_id=server.device_id, timeout_s=1.0
    )
    drv = BacnetDriver(dev, stack)
    try:
        lim = PointRef(
            "hp1", _pt("p_limit_kw", device="bms", object="analogValue:3", writable=True, priority=8)
        )
        t_c = PointRef("hp1", _pt("zone_t_c", device="bms", object="analogInput:1"))
        missing = PointRef("hp1", _pt("ghost", device="bms", object="analogValue:99"))
        got = await drv.read([lim, t_c])
        assert got["hp1.p_limit_kw"].value == 9.0 and got["hp1.zone_t_c"].value == 21.5
        await drv.write(lim.point, 5.5)
        assert server.present_value("av3") == 5.5
        await drv.relinquish(lim.point)
        assert server.present_value("av3") == 9.0
        got = await drv.read([lim, missing])
        assert got["hp1.ghost"].quality == "bad" and got["hp1.p_limit_kw"].value == 9.0
        # A device that is gone: a timeout, not a hang.
        gone = BacnetDriver(dev.model_copy(update={"address": "127.0.0.1:9", "timeout_s": 0.3}), stack)
        with pytest.raises(DeviceError):
            async with asyncio.timeout(3):
                await gone.read([t_c])
    finally:
        await stack.close()
        await server.stop()
