"""BMS device against a BAC0 client: read present values, write at priority 8, relinquish."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from simulators.bacnet import BmsDevice, free_udp_port, quiet_bac0
from simulators.building import build
from simulators.fleet import AssetMix, draw_specs, fleet_profiles

pytestmark = pytest.mark.integration

START = datetime(2030, 1, 15, 17, tzinfo=UTC)


async def test_bms_priority_write_drives_the_physics_and_relinquish_restores_default() -> None:
    import BAC0

    quiet_bac0()
    spec = draw_specs(1, seed=1, mix=AssetMix(hp_share=1.0))[0]
    b = build(spec, fleet_profiles([spec], start=START, seed=1, days=1)[0])
    assert b.hp is not None
    now = START
    b.step(now, 1.0)
    bms = BmsDevice(b, device_id=4101)
    await bms.start()
    try:
        async with (
            asyncio.timeout(60),
            BAC0.start(ip="127.0.0.1/8", port=free_udp_port(), deviceId=4999) as c,
        ):
            addr = bms.address
            t_zone = await c.read(f"{addr} analogInput 1 presentValue")
            assert t_zone == pytest.approx(b.zone.t_c, abs=0.01)
            assert await c.read(f"{addr} analogInput 3 presentValue") == pytest.approx(b.t_amb_c, abs=0.01)
            assert await c.read(f"{addr} analogValue 1 presentValue") == 21.0
            assert await c.read(f"{addr} analogValue 3 presentValue") == pytest.approx(b.hp.p_max_kw)

            await c._write(f"{addr} analogValue 1 presentValue 23.5 - 8")
            await c._write(f"{addr} analogValue 3 presentValue 4.2 - 8")
            bms.sync()
            assert b.zone.setpoint_c == 23.5
            assert b.hp.p_cap_kw == pytest.approx(4.2)
            t0 = b.zone.t_c
            for _ in range(30):
                now += timedelta(seconds=60)
                b.step(now, 60.0)
                assert b.hp.p_kw <= 4.2 + 1e-9
            bms.sync()
            assert b.zone.t_c > t0 + 0.3  # heating towards 23.5 °C
            assert await c.read(f"{addr} analogInput 1 presentValue") == pytest.approx(b.zone.t_c, abs=0.01)

            await c._write(f"{addr} analogValue 1 presentValue null - 8")
            await c._write(f"{addr} analogValue 3 presentValue null - 8")
            await c._write(f"{addr} binaryValue 1 presentValue inactive - 8")
            bms.sync()
            assert await c.read(f"{addr} analogValue 1 presentValue") == 21.0
            assert b.zone.setpoint_c == 21.0
            assert b.hp.p_limit_bms_kw is None and b.hp.p_cap_kw == b.hp.p_max_kw
            assert b.zone.fan_cmd_pct == 0.0
    finally:
        await bms.stop()
