"""The agent against the simulators' test bed: a simulated building's YAML, registers and BMS, end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.drivers import BacnetStack
from gridflex.ops.broker import MosquittoBroker
from protocols.clock import SimClock
from protocols.messages import Command
from simulators.modbus.server import FaultKind
from simulators.testbed import TestBed, TestBedConfig

from .cloud import Cloud
from .helpers import running_agent

pytestmark = pytest.mark.integration


def _cmd(site: str, cmd_id: str, asset: str, value: float) -> Command:
    now = datetime.now(UTC)
    return Command.model_validate(
        {
            "site": site,
            "ts": now,
            "cmd_id": cmd_id,
            "asset": asset,
            "kind": "p_limit_kw",
            "value": value,
            "valid_from": now,
            "valid_until": now + timedelta(seconds=60),
        }
    )


async def test_simulated_building_telemetry_and_commands(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    noon = datetime(2030, 6, 15, 12, tzinfo=UTC)
    bed_cfg = TestBedConfig(n_sites=5, seed=1, start=noon, broker_port=mosquitto.port)
    # a simulated clock at real speed from June noon: the sun must be up whatever the hour of the run
    async with TestBed(bed_cfg, SimClock(noon, speed=1.0), tmp_path / "bed") as bed:
        configs = [
            load_config(s.config) for s in bed.manifest.sites
        ]  # every file the simulators write validates
        cfg = max(configs, key=lambda c: len(c.assets))  # the building with the most assets
        site = cfg.site
        kinds = {a.kind for a in cfg.assets}
        assert {"meter", "pv", "battery", "ev", "hvac"} <= kinds
        bed.step(1.0)  # registers now hold one consistent physics state
        truth = bed.buildings[site]
        other = next(c for c in configs if c.site != site)
        stack = BacnetStack(cfg.bacnet)  # two agents in one process share one BACnet stack
        async with (
            Cloud(site, mosquitto.port).running() as cloud,
            Cloud(other.site, mosquitto.port).running() as other_cloud,
            running_agent(cfg, bacnet_stack=stack) as agent,
            running_agent(other, bacnet_stack=stack),
        ):
            await cloud.wait_for(
                lambda: (
                    cloud.values("meter", "p_kw")
                    and cloud.values("pv1", "p_kw")
                    and cloud.values("bat1", "soc_pct")
                    and cloud.values("zone1", "zone_t_c")
                ),
                timeout_s=20,
            )
            meter = cloud.values("meter", "p_kw")[0]
            assert meter.unit == "kW" and meter.value == pytest.approx(truth.p_net_kw, abs=0.02)
            pv = cloud.values("pv1", "p_kw")[0]
            assert truth.pv is not None and pv.value is not None
            assert pv.value < 0 and pv.value == pytest.approx(
                truth.pv.p_kw, abs=0.02
            )  # generation is negative
            assert truth.battery is not None
            assert cloud.values("bat1", "soc_pct")[0].value == pytest.approx(truth.battery.soc_pct, abs=0.02)
            assert cloud.values("zone1", "zone_t_c")[0].quality == "good"
            seqs = [s.seq for s in cloud.samples.values()]
            assert seqs == list(range(len(seqs)))

            await cloud.send(_cmd(site, "pv-1", "pv1", 2.0))
            await cloud.send(_cmd(site, "ev-1", "ev1", 1.0))
            await cloud.wait_for(lambda: len(cloud.acks) == 2)
            acks = {a.cmd_id: a for a in cloud.acks}
            assert acks["pv-1"].status == "applied" and acks["pv-1"].read_back == pytest.approx(2.0, abs=0.1)
            assert acks["ev-1"].status == "clamped" and acks["ev-1"].applied_value == pytest.approx(4.2)
            bed.step(1.0)
            assert truth.pv.p_kw >= -2.0 - 1e-6  # the inverter follows the limit
            assert agent.stats.commands == {"applied": 1, "clamped": 1}
            await other_cloud.wait_for(lambda: other_cloud.values("zone1", "zone_t_c"), timeout_s=20)

            # The simulators' own faults: exception codes, then a silent device; both recover.
            faults: tuple[tuple[FaultKind, str], ...] = (
                ("exception", "point_bad"),
                ("silent", "device_fault"),
            )
            for kind, event in faults:
                n = len(cloud.samples)
                bed.fault(site, "pv", kind)
                await cloud.wait_for(
                    lambda n=n: any(s.quality == "bad" for s in cloud.values("pv1", "p_kw") if s.seq >= n),
                    timeout_s=15,
                )
                await cloud.wait_for(lambda event=event: any(e.kind == event for e in cloud.events))
                read_at = agent.latest["meter.p_kw"].ts  # the meter keeps being read meanwhile
                await cloud.wait_for(
                    lambda r=read_at: (
                        agent.latest["meter.p_kw"].ts > r and agent.latest["meter.p_kw"].quality == "good"
                    )
                )
                n = len(cloud.samples)
                bed.fault(site, "pv", "none")
                await cloud.wait_for(
                    lambda n=n: any(s.quality == "good" for s in cloud.values("pv1", "p_kw") if s.seq >= n),
                    timeout_s=20,
                )
        await stack.close()
