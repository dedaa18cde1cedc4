"""Modbus servers against an independent pymodbus client: SunSpec walk, curtailment, validation, faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from simulators.devices import Battery, Meter, PvInverter
from simulators.modbus import ModbusDeviceServer, battery_map, meter_map, pv_map

pytestmark = pytest.mark.integration


def s16(raw: int) -> int:
    return raw - 0x10000 if raw >= 0x8000 else raw


async def read(client: AsyncModbusTcpClient, address: int, count: int = 1) -> list[int]:
    rr = await client.read_holding_registers(address, count=count, device_id=1)
    assert not rr.isError(), rr
    return list(rr.registers)


async def walk_sunspec(client: AsyncModbusTcpClient) -> dict[int, tuple[int, int]]:
    """Client-side SunSpec discovery: model id -> (address of first data register, length)."""
    assert await read(client, 40000, 2) == [0x5375, 0x6E53]  # "SunS"
    models: dict[int, tuple[int, int]] = {}
    addr = 40002
    for _ in range(20):
        model_id, length = await read(client, addr, 2)
        if model_id == 0xFFFF:
            assert length == 0
            return models
        models[model_id] = (addr + 2, length)
        addr += 2 + length
    raise AssertionError("no end model")


async def scaled(client: AsyncModbusTcpClient, address: int, sf_address: int, signed: bool = True) -> float:
    raw = (await read(client, address))[0]
    sf = s16((await read(client, sf_address))[0])
    return (s16(raw) if signed else raw) * 10.0**sf


@pytest.fixture
async def pv_server() -> AsyncIterator[tuple[PvInverter, ModbusDeviceServer]]:
    pv = PvInverter(kwp=8.0, inverter_kw=8.0)
    pv.step(1.0, poa_w_m2=1000.0, t_amb_c=10.0)
    srv = ModbusDeviceServer("pv", pv_map(pv, serial="b001-pv"), unit_id=1)
    await srv.start()
    try:
        yield pv, srv
    finally:
        await srv.stop()


@pytest.fixture
async def client_for(pv_server: tuple[PvInverter, ModbusDeviceServer]) -> AsyncIterator[AsyncModbusTcpClient]:
    client = AsyncModbusTcpClient("127.0.0.1", port=pv_server[1].port, timeout=1.0, retries=0)
    assert await client.connect()
    try:
        yield client
    finally:
        client.close()


async def test_sunspec_model_chain_walks_from_40000(
    pv_server: tuple[PvInverter, ModbusDeviceServer], client_for: AsyncModbusTcpClient
) -> None:
    async with asyncio.timeout(10):
        models = await walk_sunspec(client_for)
        assert list(models) == [1, 103, 120, 123]
        assert [length for _, length in models.values()] == [66, 50, 26, 24]
        common = await read(client_for, models[1][0], 16)
        assert b"".join(r.to_bytes(2, "big") for r in common).rstrip(b"\0") == b"GridFlex Sim"
        d103 = models[103][0]
        w = await scaled(client_for, d103 + 12, d103 + 13)
        assert w == pytest.approx(-pv_server[0].p_kw * 1000.0, abs=1.0)
        n120 = models[120][0]
        assert await scaled(client_for, n120 + 1, n120 + 2, signed=False) == 8000.0


async def test_wmaxlimpct_30_curtails_ac_power_on_the_next_step(
    pv_server: tuple[PvInverter, ModbusDeviceServer], client_for: AsyncModbusTcpClient
) -> None:
    pv, srv = pv_server
    async with asyncio.timeout(10):
        models = await walk_sunspec(client_for)
        d103, n120, k123 = models[103][0], models[120][0], models[123][0]
        w_rtg = await scaled(client_for, n120 + 1, n120 + 2, signed=False)
        before = await scaled(client_for, d103 + 12, d103 + 13)
        assert before > 0.5 * w_rtg  # sunny: well above the coming limit
        sf = s16((await read(client_for, k123 + 21))[0])  # WMaxLimPct_SF
        rq = await client_for.write_register(k123 + 3, round(30 / 10.0**sf), device_id=1)
        assert not rq.isError()
        rq = await client_for.write_register(k123 + 7, 1, device_id=1)  # WMaxLim_Ena
        assert not rq.isError()
        pv.step(1.0, poa_w_m2=1000.0, t_amb_c=10.0)
        srv.refresh()
        after = await scaled(client_for, d103 + 12, d103 + 13)
        assert after <= 0.30 * w_rtg + 1.0
        assert after == pytest.approx(2400.0, abs=1.0)
        assert (await read(client_for, d103 + 36))[0] == 5  # St: throttled
        assert await scaled(client_for, k123 + 3, k123 + 21, signed=False) == pytest.approx(30.0)


async def test_out_of_range_and_read_only_writes_get_exceptions_not_applied(
    pv_server: tuple[PvInverter, ModbusDeviceServer], client_for: AsyncModbusTcpClient
) -> None:
    pv, srv = pv_server
    async with asyncio.timeout(10):
        models = await walk_sunspec(client_for)
        k123, d103 = models[123][0], models[103][0]
        rq = await client_for.write_register(k123 + 3, 1010, device_id=1)  # 101.0 %
        assert rq.isError() and rq.exception_code == 3
        rq = await client_for.write_register(k123 + 7, 2, device_id=1)  # Ena must be 0/1
        assert rq.isError() and rq.exception_code == 3
        rq = await client_for.write_register(d103 + 12, 0, device_id=1)  # W is read-only
        assert rq.isError() and rq.exception_code == 2
        rq = await client_for.write_registers(k123 + 3, [300, 0, 0, 0, 7], device_id=1)  # spans read-only
        assert rq.isError()
        assert pv.limit_pct == 100.0 and not pv.limit_enabled
        assert srv.rejected == 4
        rr = await client_for.read_holding_registers(39990, count=5, device_id=1)
        assert rr.isError() and rr.exception_code == 2
        assert await read(client_for, 40000, 2) == [0x5375, 0x6E53]  # still serving


async def test_battery_setpoint_in_remote_mode_moves_the_physics() -> None:
    bat = Battery(capacity_kwh=16.0, soc_pct=50.0)
    srv = ModbusDeviceServer("bat", battery_map(bat), unit_id=3)
    await srv.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=srv.port, timeout=1.0, retries=0)
    try:
        async with asyncio.timeout(10):
            assert await client.connect()
            rq = await client.write_registers(7, [0xFFFF, 0xF448], device_id=3)  # -3000 W, int32
            assert not rq.isError()
            assert (await client.write_register(6, 1, device_id=3)).isError() is False  # remote
            bat.step(60.0)
            srv.refresh()
            rr = await client.read_holding_registers(0, count=3, device_id=3)
            raw = (rr.registers[1] << 16) | rr.registers[2]
            assert raw - (1 << 32) == -3000
            assert rr.registers[0] / 100 < 50.0
            rq = await client.write_registers(7, [0, 9000], device_id=3)  # above 5 kW
            assert rq.isError() and rq.exception_code == 3
            assert bat.setpoint_kw == -3.0
            rr = await client.read_holding_registers(0, count=1, device_id=9)  # wrong unit id
            assert rr.isError() and rr.exception_code == 0x0A
    finally:
        client.close()
        await srv.stop()


async def test_meter_reports_import_positive_power() -> None:
    meter = Meter()
    meter.step(3600.0, p_kw=-2.5)
    srv = ModbusDeviceServer("meter", meter_map(meter, serial="m"), unit_id=1)
    await srv.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=srv.port, timeout=1.0, retries=0)
    try:
        async with asyncio.timeout(10):
            assert await client.connect()
            models = await walk_sunspec(client)
            assert list(models) == [1, 203]
            d = models[203][0]
            assert await scaled(client, d + 16, d + 20) == pytest.approx(-2500.0)
            exp = await read(client, d + 36, 2)
            assert (exp[0] << 16 | exp[1]) == 2500
    finally:
        client.close()
        await srv.stop()


async def test_faults_on_demand(pv_server: tuple[PvInverter, ModbusDeviceServer]) -> None:
    pv, srv = pv_server
    client = AsyncModbusTcpClient("127.0.0.1", port=srv.port, timeout=0.5, retries=0)
    try:
        async with asyncio.timeout(20):
            assert await client.connect()
            w0 = await read(client, 40084)
            srv.set_fault("exception")
            rr = await client.read_holding_registers(40084, count=1, device_id=1)
            assert rr.isError() and rr.exception_code == 4
            srv.set_fault("stale")
            pv.step(1.0, poa_w_m2=200.0, t_amb_c=10.0)
            srv.refresh()
            assert await read(client, 40084) == w0  # frozen
            srv.set_fault("out_of_range")
            srv.refresh()
            assert await read(client, 40084) == [0x7FFF]
            srv.set_fault("none")
            assert await read(client, 40084) != w0  # follows the physics again
            srv.set_fault("silent")
            with pytest.raises(ModbusIOException):
                await client.read_holding_registers(40084, count=1, device_id=1)
            srv.set_fault("disconnect")
            await asyncio.sleep(0.05)
            assert srv.connections == 0
            client.close()
            fresh = AsyncModbusTcpClient("127.0.0.1", port=srv.port, timeout=0.5, retries=0)
            assert await fresh.connect()
            with pytest.raises((ModbusIOException, ConnectionException)):
                await fresh.read_holding_registers(40084, count=1, device_id=1)
            fresh.close()
            srv.set_fault("none")
            again = AsyncModbusTcpClient("127.0.0.1", port=srv.port, timeout=1.0, retries=0)
            assert await again.connect()
            assert (await again.read_holding_registers(40000, count=2, device_id=1)).registers == [
                0x5375,
                0x6E53,
            ]
            again.close()
    finally:
        client.close()
