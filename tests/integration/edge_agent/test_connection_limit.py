"""The site connection limit and the DSO cap on a real simulated building, a real Mosquitto and the agent.

The building (meter, battery, EV charger) is the test bed's physics behind real Modbus
servers; the agent reads and writes them like any site. Limits are checked on the
building's own grid power (the simulator's truth), counted in the agent's meter polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.agent import EdgeAgent
from edge_agent.config import load_config
from gridflex.ops.broker import MosquittoBroker
from protocols.assets import BATTERY, EV, METER
from protocols.clock import SimClock
from protocols.codec import encode
from protocols.messages import Command
from simulators.building import Building
from simulators.fleet import SiteSpec
from simulators.testbed import TestBed, TestBedConfig

from .cloud import Cloud
from .helpers import running_agent

pytestmark = pytest.mark.integration

START = datetime(2030, 1, 15, 18, tzinfo=UTC)
SITE = "b001"
POLL_S = 0.1
N_POLLS = 6  # the site is within its limit this many meter polls after the excess appears


@dataclass
class Site:
    bed: TestBed
    building: Building
    agent: EdgeAgent
    cloud: Cloud
    trace: list[tuple[int, float, float | None]]  # (meter reads, grid kW, EV charger limit kW) per step

    def meter_reads(self) -> int:
        return next(p.reads for p in self.agent._pollers if p.device_id == METER)

    async def polls(self, n: int) -> None:
        """Wait until the agent has read its meter `n` more times."""
        target = self.meter_reads() + n
        await self.cloud.wait_for(lambda: self.meter_reads() >= target)


@contextlib.asynccontextmanager
async def _site(
    mosquitto: MosquittoBroker, tmp_path: Path, grid_connection: dict[str, Any] | None, *, battery: bool
) -> AsyncIterator[Site]:
    spec = SiteSpec(
        site=SITE,
        index=0,
        annual_kwh=4000.0,
        heat_annual_kwh=12000.0,
        battery_kwh=16.0 if battery else None,
        battery_kw=5.0 if battery else None,
        ev_kw=11.0,
    )
    bed_cfg = TestBedConfig(
        n_sites=1,
        start=START,
        step_s=0.025,
        broker_port=mosquitto.port,
        bacnet=False,
        profile_days=1.0,
        specs=(spec,),
    )
    async with TestBed(bed_cfg, SimClock(START, speed=1.0), tmp_path / "bed") as bed:
        path = bed.manifest.sites[0].config
        data = yaml.safe_load(path.read_text())
        data["poll"]["interval_s"] = POLL_S
        if grid_connection is not None:
            data["grid_connection"] = grid_connection
        path.write_text(yaml.safe_dump(data))
        building = bed.buildings[SITE]
        trace: list[tuple[int, float, float | None]] = []
        async with Cloud(SITE, mosquitto.port).running() as cloud, running_agent(load_config(path)) as agent:
            site = Site(bed, building, agent, cloud, trace)

            async def physics() -> None:
                while True:
                    await asyncio.sleep(bed_cfg.step_s)
                    bed.step(bed_cfg.step_s)
                    ev = building.ev
                    trace.append((site.meter_reads(), building.p_net_kw, ev.p_limit_kw if ev else None))

            stepper = asyncio.create_task(physics())
            try:
                await cloud.wait_for(lambda: cloud.states)
                await site.polls(3)
                yield site
            finally:
                stepper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stepper


def _cmd(cmd_id: str, asset: str, kind: str, value: float, ttl_s: float = 60.0) -> Command:
    now = datetime.now(UTC)
    return Command.model_validate(
        {
            "site": SITE,
            "ts": now,
            "cmd_id": cmd_id,
            "asset": asset,
            "kind": kind,
            "value": value,
            "valid_from": now - timedelta(seconds=1),
            "valid_until": now + timedelta(seconds=ttl_s),
        }
    )


def _within(
    trace: list[tuple[int, float, float | None]], since_reads: int, limit_kw: float, until_reads: float = 1e18
) -> bool:
    """The building's grid power stayed within `limit_kw` at every physics step in [since, until) reads."""
    return all(p <= limit_kw + 0.05 for reads, p, _ in trace if since_reads <= reads < until_reads)


async def _under(site: Site, limit_kw: float, since_reads: int) -> int:
    """Meter polls from `since_reads` until the building's grid power is within `limit_kw`."""
    await site.cloud.wait_for(lambda: site.building.p_net_kw <= limit_kw + 0.05, timeout_s=10)
    return site.meter_reads() - since_reads


async def test_a_site_above_its_import_limit_is_brought_under_it_within_n_polls_and_stays(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    limit = 5.0
    async with _site(mosquitto, tmp_path, {"import_max_kw": limit}, battery=True) as site:
        ev, bat, cloud = site.building.ev, site.building.battery, site.cloud
        assert ev is not None and bat is not None
        # A cloud plan charges the battery at 3 kW, then a car arrives: 11 + 3 kW + the house.
        # 3 kW leaves room for the house's evening load (up to ~1.5 kW here) under the 5 kW limit.
        await cloud.send(_cmd("c1", BATTERY, "p_setpoint_kw", 3.0))
        await cloud.wait_for(lambda: len(cloud.acks) == 1)
        assert cloud.acks[0].status == "applied"
        await site.polls(2)
        assert site.building.p_net_kw <= limit  # the battery charging alone stays inside
        reads0 = site.meter_reads()
        ev.plug_in(e_need_kwh=60.0, departure_s=10**9)
        await cloud.wait_for(lambda: site.building.p_net_kw > limit)
        polls = await _under(site, limit, reads0)
        print(f"import limit {limit} kW: under it {polls} meter polls after the excess appeared")
        assert polls <= N_POLLS, f"{polls} polls to get under {limit} kW"
        settled = site.meter_reads()
        await site.polls(5)
        assert _within(site.trace, settled + 1, limit), "the site left its limit again"
        # Battery first (charge 3 -> discharge), then the EV capped: the order of measures
        assert bat.setpoint_kw < 0 and bat.remote
        assert ev.p_limit_kw is not None and 4.2 <= ev.p_limit_kw < 11.0
        assert site.agent.stats.limit_active and site.agent.stats.limit_import_max_kw == limit
        engaged = next(e for e in cloud.events if e.kind == "connection_limit_engaged")
        assert "import_max_kw 5 kW" in engaged.message
        # Cloud commands are targets; the local limit only tightens them, and says so in the ack
        await cloud.send(_cmd("c2", BATTERY, "p_setpoint_kw", 3.0))
        await cloud.send(_cmd("c3", EV, "p_limit_kw", 11.0))
        await cloud.wait_for(lambda: len(cloud.acks) == 3)
        for ack in cloud.acks[1:]:
            assert ack.status == "clamped", ack
            assert "connection limit import_max_kw 5 kW" in (ack.reason or "")
        battery_value = cloud.acks[1].applied_value
        assert isinstance(battery_value, float) and battery_value < 0  # still discharging, not 3 kW charge
        assert cloud.acks[2].applied_value == pytest.approx(ev.p_limit_kw, abs=0.01)
        await site.polls(3)
        assert _within(site.trace, settled + 1, limit)
        await cloud.wait_for(
            lambda: any(s.point == "limit_active" and s.value == 1.0 for s in cloud.samples.values())
        )
        limit_samples = cloud.values(METER, "limit_import_max_kw")
        assert limit_samples and limit_samples[-1].value == limit


async def test_the_limit_never_takes_an_ev_below_its_guaranteed_minimum_and_reports_the_rest(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    limit = 3.0  # below the EV's 4.2 kW minimum plus the house: it cannot be met, and must not be forced
    async with _site(mosquitto, tmp_path, {"import_max_kw": limit}, battery=False) as site:
        ev, cloud = site.building.ev, site.cloud
        assert ev is not None
        ev.plug_in(e_need_kwh=60.0, departure_s=10**9)
        await cloud.wait_for(lambda: any(e.kind == "connection_limit_exceeded" for e in cloud.events))
        await site.polls(8)
        limits = [lim for _, _, lim in site.trace if lim is not None]
        assert limits and min(limits) == pytest.approx(4.2)  # held at the minimum, never below
        assert ev.p_kw == pytest.approx(4.2)  # and the car still charges at it
        event = next(e for e in cloud.events if e.kind == "connection_limit_exceeded")
        excess = event.details["excess_kw"]
        assert isinstance(excess, float)
        assert excess == pytest.approx(site.building.p_net_kw - limit, abs=0.15)
        assert "guaranteed minimum" in event.message
        stats = site.agent.stats
        assert stats.limit_exceeded == 1 and stats.limit_excess_kw == pytest.approx(excess, abs=0.15)
        await cloud.wait_for(lambda: bool(cloud.values(METER, "limit_excess_kw")))
        assert cloud.values(METER, "limit_excess_kw")[-1].value == pytest.approx(excess, abs=0.15)


async def test_a_dso_cap_is_applied_enforced_and_released_at_expiry(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    cap = 6.0
    async with _site(mosquitto, tmp_path, None, battery=False) as site:  # no static limit at all
        ev, cloud = site.building.ev, site.cloud
        assert ev is not None
        ev.plug_in(e_need_kwh=60.0, departure_s=10**9)
        await cloud.wait_for(lambda: site.building.p_net_kw > 11.0)
        reads0 = site.meter_reads()
        await cloud.send(_cmd("dso1", METER, "site_import_max_kw", cap, ttl_s=2.5))
        await cloud.wait_for(lambda: len(cloud.acks) == 1)
        ack = cloud.acks[0]
        assert (ack.status, ack.applied_value) == ("applied", cap)
        polls = await _under(site, cap, reads0)
        print(f"DSO cap {cap} kW: under it {polls} meter polls after the command")
        assert polls <= N_POLLS
        settled = site.meter_reads()
        assert site.agent.stats.limit_import_max_kw == cap and site.agent.stats.limit_active
        await cloud.wait_for(lambda: any(e.kind == "dso_cap_expired" for e in cloud.events), timeout_s=10)
        assert _within(site.trace, settled + 1, cap, until_reads=site.meter_reads() - 2)  # held while valid
        await cloud.wait_for(lambda: site.building.p_net_kw > 11.0)  # the car charges at full power again
        assert ev.p_limit_kw is None or ev.p_limit_kw >= 11.0  # its safe state: no limit (the rating)
        assert site.agent.stats.limit_import_max_kw is None and not site.agent.stats.limit_active
        kinds = [e.kind for e in cloud.events]
        assert kinds.index("dso_cap_applied") < kinds.index("dso_cap_expired")


async def test_invalid_cap_commands_are_rejected_with_their_reason_and_never_reach_a_device(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with _site(mosquitto, tmp_path, None, battery=False) as site:
        cloud = site.cloud
        writes0 = site.bed.modbus_writes
        negative = json.loads(encode(_cmd("bad1", METER, "site_import_max_kw", 5.0)))
        negative["value"] = -2.0
        await cloud.send(json.dumps(negative).encode())
        await cloud.send(_cmd("bad2", EV, "site_import_max_kw", 5.0))  # a cap addressed to a device
        await cloud.wait_for(lambda: len(cloud.acks) == 2)
        acks = {a.cmd_id: a for a in cloud.acks}
        assert acks["bad1"].status == "rejected" and "positive kW" in (acks["bad1"].reason or "")
        assert acks["bad2"].status == "rejected" and "site's meter" in (acks["bad2"].reason or "")
        await site.polls(3)
        assert site.bed.modbus_writes == writes0  # nothing written anywhere
        assert site.agent.limiter.cap is None and site.agent.stats.limit_import_max_kw is None
