"""DR writes on a real BACnet BMS: the simulated building's BAC0 device, the real agent and Mosquitto.

What is checked is what the BMS holds, read by a second, independent BAC0 client: the
priority array of the zone setpoint (AV1) and the fan speed (AV2). The agent writes DR
commands at priority 9 (the documented default), the BMS's own value comes back when the
command's validity ends, and a comfort veto (CO2 driven to the limit by a crowded room
with the fan stopped) relinquishes the write, acks it `clamped` and publishes an event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config import load_config
from edge_agent.config_dr import DR_BACNET_PRIORITY
from gridflex.ops.broker import MosquittoBroker
from protocols.assets import ZONE
from protocols.messages import Command
from protocols.testbed import BacnetEndpoint
from simulators.bacnet import BmsDevice, free_udp_port, quiet_bac0
from simulators.building import Building, build
from simulators.fleet import AssetMix, draw_specs, fleet_profiles
from simulators.siteconfig import site_config

from .cloud import Cloud
from .helpers import running_agent

pytestmark = pytest.mark.integration

START = datetime(2030, 1, 15, 17, tzinfo=UTC)  # 18:00 in Berlin: the household is home
SETPOINT, FAN = "analogValue 1", "analogValue 2"


def _cmd(site: str, cmd_id: str, kind: str, value: float, valid_s: float) -> Command:
    now = datetime.now(UTC)
    return Command.model_validate(
        {
            "site": site,
            "ts": now,
            "cmd_id": cmd_id,
            "asset": ZONE,
            "kind": kind,
            "value": value,
            "valid_from": now,
            "valid_until": now + timedelta(seconds=valid_s),
        }
    )


@dataclass
class Rig:
    """The building, its BMS, the independent BACnet client and the cloud's view of the site."""

    building: Building
    bms: BmsDevice
    client: Any
    cloud: Cloud

    async def slot(self, obj: str, priority: int = DR_BACNET_PRIORITY) -> float | None:
        """The value at `priority` in `obj`'s priority array (None = relinquished), read independently."""
        entry = (await self.client.read(f"{self.bms.address} {obj} priorityArray"))[priority - 1]
        return None if entry._choice == "null" else float(getattr(entry, entry._choice))

    async def present(self, obj: str) -> float:
        return float(await self.client.read(f"{self.bms.address} {obj} presentValue"))

    async def wait_slot(self, obj: str, want: float | None, timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while await self.slot(obj) != want:
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def rig(mosquitto: MosquittoBroker, tmp_path: Path) -> AsyncIterator[Rig]:
    import BAC0

    quiet_bac0()
    spec = draw_specs(1, seed=3, mix=AssetMix(pv_share=0.0, ev_share=0.0, hp_share=0.0))[0]
    b = build(spec, fleet_profiles([spec], start=START, seed=3, days=1)[0])
    b.step(START, 1.0)
    bms = BmsDevice(b, device_id=4201)
    await bms.start()
    try:
        endpoint = BacnetEndpoint(address=bms.address, device_id=bms.device_id)
        doc = site_config(
            b, {}, [], endpoint, broker_host="127.0.0.1", broker_port=mosquitto.port, state_dir=tmp_path
        )
        doc["poll"]["interval_s"] = 0.25
        path = tmp_path / "site.yaml"
        path.write_text(yaml.safe_dump(doc))
        cfg = load_config(path)
        async with (
            asyncio.timeout(90),
            BAC0.start(ip="127.0.0.1/8", port=free_udp_port(), deviceId=4998) as client,
            Cloud(cfg.site, mosquitto.port).running() as cloud,
            running_agent(cfg),
        ):
            await cloud.wait_for(lambda: cloud.values(ZONE, "co2_ppm"), timeout_s=30)
            yield Rig(b, bms, client, cloud)
    finally:
        await bms.stop()


@pytest.mark.slow  # the default run's short variant: the veto test below, with its setpoint write
async def test_setpoint_and_fan_writes_hold_at_the_dr_priority_and_are_relinquished_when_validity_ends(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path) as r:
        site = r.cloud.site
        await r.cloud.send(_cmd(site, "sp-1", "t_setpoint_c", 22.5, valid_s=4.0))
        await r.cloud.send(_cmd(site, "fan-1", "fan_speed_pct", 10.0, valid_s=4.0))
        await r.cloud.wait_for(lambda: len(r.cloud.acks) == 2)
        acks = {a.cmd_id: a for a in r.cloud.acks}
        assert acks["sp-1"].status == "applied" and acks["sp-1"].read_back == pytest.approx(22.5)
        assert acks["fan-1"].status == "applied" and acks["fan-1"].read_back == pytest.approx(10.0)
        # held at priority 9, nothing at the operator's 8: read from the BMS by another client
        assert await r.slot(SETPOINT) == pytest.approx(22.5) and await r.slot(SETPOINT, 8) is None
        assert await r.slot(FAN) == pytest.approx(10.0)
        r.bms.sync()
        assert r.building.zone.setpoint_c == pytest.approx(22.5)
        assert r.building.zone.fan_cmd_pct == pytest.approx(10.0)

        await r.wait_slot(SETPOINT, None)  # the end of validity relinquishes priority 9
        await r.wait_slot(FAN, None)
        assert await r.present(SETPOINT) == 21.0 and await r.present(FAN) == 40.0  # the BMS's own values
        r.bms.sync()
        assert r.building.zone.setpoint_c == 21.0 and r.building.zone.fan_cmd_pct == 40.0
        await r.cloud.wait_for(lambda: sum(e.kind == "dr_released" for e in r.cloud.events) == 2)
        assert all("validity ended" in e.message for e in r.cloud.events if e.kind == "dr_released")
        assert not any(e.kind == "command_expired" for e in r.cloud.events)  # no asset-wide safe state


async def test_co2_reaching_the_limit_vetoes_the_fan_write_relinquishes_acks_clamped_and_publishes_an_event(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path) as r:
        site = r.cloud.site
        # a short setpoint write beside the fan's: held at 9, relinquished when its validity ends
        await r.cloud.send(_cmd(site, "sp-short", "t_setpoint_c", 21.5, valid_s=2.0))
        await r.cloud.send(_cmd(site, "fan-0", "fan_speed_pct", 0.0, valid_s=600.0))
        await r.cloud.wait_for(lambda: len(r.cloud.acks) == 2)
        assert [a.status for a in r.cloud.acks] == ["applied", "applied"]
        assert await r.slot(FAN) == 0.0
        assert await r.slot(SETPOINT) in (21.5, None)  # (None: its 2 s may already be over)
        await r.wait_slot(SETPOINT, None)
        await r.cloud.wait_for(lambda: any(e.kind == "dr_released" for e in r.cloud.events))
        assert await r.slot(FAN) == 0.0  # the fan's own command still holds
        # the envelope covers the fan (flexmodels' CO2 dynamics), not only the battery
        await r.cloud.wait_for(lambda: any(a.asset == ZONE for f in r.cloud.flex for a in f.assets))
        fan = next(a for a in r.cloud.flex[-1].assets if a.asset == ZONE)
        assert fan.intervals and fan.intervals[0].p_max_kw == pytest.approx(0.25)  # full speed
        assert fan.intervals[0].p_min_kw <= fan.intervals[-1].p_min_kw  # a longer hold keeps more air
        zone = r.building.zone
        zone.people = 40.0  # a crowded room with its fan stopped: CO2 rises ~20 ppm per 30 s step
        start_ppm = zone.co2_ppm
        assert start_ppm < 900.0

        async def physics() -> None:
            now = START
            while True:
                now += timedelta(seconds=30)
                r.building.step(now, 30.0)
                r.bms.sync()
                await asyncio.sleep(0.1)  # pacing the simulated room, not waiting for the agent

        task = asyncio.create_task(physics())
        try:
            await r.cloud.wait_for(lambda: any(e.kind == "comfort_veto" for e in r.cloud.events), 60)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        veto = next(e for e in r.cloud.events if e.kind == "comfort_veto")
        assert veto.asset == ZONE and veto.severity == "warning"
        assert veto.details["cause"] == "co2" and veto.details["co2_max_ppm"] == 1000.0
        co2_seen = veto.details["co2_ppm"]
        # a reading the BMS served: at the limit or above, and not above where the room got to
        assert isinstance(co2_seen, float) and 1000.0 <= co2_seen <= zone.co2_ppm + 0.1
        await r.cloud.wait_for(lambda: len(r.cloud.acks) == 3)
        ack = r.cloud.acks[2]
        assert (ack.cmd_id, ack.status, ack.requested) == ("fan-0", "clamped", 0.0)
        assert (ack.reason or "").startswith(f"co2: {co2_seen:.0f} ppm ≥ 1000; DR write released")
        assert await r.slot(FAN) is None and await r.present(FAN) == 40.0  # the BMS's own speed again
        r.bms.sync()
        assert zone.fan_cmd_pct == 40.0

        # the zone is still above the limit: a new DR write is refused, not written
        await r.cloud.send(_cmd(site, "fan-again", "fan_speed_pct", 5.0, valid_s=600.0))
        await r.cloud.wait_for(lambda: len(r.cloud.acks) == 4)
        again = r.cloud.acks[3]
        assert again.status == "rejected" and "held off" in (again.reason or "")
        assert await r.slot(FAN) is None
