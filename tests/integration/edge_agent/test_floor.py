"""The §14a floor on the real simulators: `mode` and `p_setpoint_kw` commands, and a BMS relinquish default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import ControlConfig, SiteConfig, load_config
from gridflex.ops.broker import MosquittoBroker
from protocols.assets import EV, HP
from protocols.clock import SimClock
from protocols.messages import Command
from simulators.testbed import TestBed, TestBedConfig

from .cloud import Cloud
from .helpers import make_config, running_agent
from .servers import BacnetServer, ModbusServer

pytestmark = pytest.mark.integration


def _cmd(site: str, cmd_id: str, asset: str, kind: str, value: float | str) -> Command:
    now = datetime.now(UTC)
    return Command.model_validate(
        {
            "site": site,
            "ts": now,
            "cmd_id": cmd_id,
            "asset": asset,
            "kind": kind,
            "value": value,
            "valid_from": now,
            "valid_until": now + timedelta(seconds=60),
        }
    )


def _with_setpoint_and_mode(cfg: SiteConfig) -> SiteConfig:
    """The simulated EV charger's power-limit register, also driven by `p_setpoint_kw` and `mode`."""
    ev = cfg.asset(EV)
    limit = ev.controls["p_limit_kw"].point
    controls = dict(ev.controls) | {
        "p_setpoint_kw": ControlConfig(point=limit),
        "mode": ControlConfig(point=limit, values={"hold": 0.0, "auto": 11.0}),  # hold = stop charging
    }
    assets = [a.model_copy(update={"controls": controls}) if a.id == EV else a for a in cfg.assets]
    return cfg.model_copy(update={"assets": assets})


async def test_mode_and_setpoint_commands_below_the_floor_are_clamped_on_the_simulated_ev(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    noon = datetime(2030, 6, 15, 12, tzinfo=UTC)
    bed_cfg = TestBedConfig(n_sites=4, seed=1, start=noon, broker_port=mosquitto.port, bacnet=False)
    async with TestBed(bed_cfg, SimClock(noon, speed=1.0), tmp_path / "bed") as bed:
        configs = [load_config(s.config) for s in bed.manifest.sites]
        cfg = _with_setpoint_and_mode(next(c for c in configs if any(a.id == EV for a in c.assets)))
        charger = bed.buildings[cfg.site].ev
        assert charger is not None
        async with Cloud(cfg.site, mosquitto.port).running() as cloud, running_agent(cfg):
            await cloud.wait_for(lambda: cloud.states)
            below: list[tuple[str, float | str]] = [
                ("mode", "hold"),
                ("p_setpoint_kw", 1.0),
                ("p_setpoint_kw", -3.0),
            ]
            for n, (kind, value) in enumerate(below):
                await cloud.send(_cmd(cfg.site, f"c{n}", EV, kind, value))
                await cloud.wait_for(lambda n=n: len(cloud.acks) == n + 1)
                ack = cloud.acks[n]
                assert ack.status == "clamped", ack
                assert ack.applied_value == pytest.approx(4.2) and ack.read_back == pytest.approx(4.2)
                assert "4.2" in (ack.reason or "")  # the floor is named in the reason
                bed.step(1.0)
                assert charger.p_limit_kw == pytest.approx(4.2)  # what the simulated charger obeys
            await cloud.send(_cmd(cfg.site, "c9", EV, "mode", "auto"))  # above the floor: as asked
            await cloud.wait_for(lambda: len(cloud.acks) == 4)
            assert cloud.acks[3].status == "applied"
            bed.step(1.0)
            assert charger.p_limit_kw is None or charger.p_limit_kw >= 11.0 - 1e-6  # at its rating: no limit


async def test_bms_relinquish_default_below_the_floor_is_reported_at_start_and_never_used(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    modbus = await ModbusServer().start()
    bms = await BacnetServer(analog_values={3: 9.0}).start()
    bms.object("av3").relinquishDefault = 2.0  # a BMS whose default would limit the HP to 2 kW

    def add_hp(data: dict[str, Any]) -> None:
        data["fallback"]["after_s"] = 1.0
        data["devices"].append(
            {
                "id": "bms",
                "driver": "bacnet",
                "address": bms.address,
                "device_id": bms.device_id,
                "timeout_s": 1.0,
            }
        )
        data["assets"].append(
            {
                "id": HP,
                "kind": "hp",
                "points": [
                    {
                        "name": "p_limit_kw",
                        "device": "bms",
                        "object": "analogValue:3",
                        "unit": "kW",
                        "writable": True,
                        "priority": 8,
                        "min": 0,
                        "max": 9,
                    }
                ],
                "controls": {"p_limit_kw": {"point": "p_limit_kw"}},
                "safe_state": [{"point": "p_limit_kw", "relinquish": True}],
            }
        )

    try:
        cfg = make_config(
            tmp_path, broker_port=mosquitto.port, modbus_port=modbus.port, interval_s=0.2, overrides=add_hp
        )
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg) as agent:
            await cloud.wait_for(lambda: any(e.kind == "unsafe_relinquish_default" for e in cloud.events))
            event = next(e for e in cloud.events if e.kind == "unsafe_relinquish_default")
            assert event.severity == "critical" and event.asset == HP and "2" in event.message
            await cloud.wait_for(lambda: agent.stats.state == "fallback", timeout_s=8)
            # the relinquish would have left 2 kW; the agent wrote the guaranteed minimum instead
            await cloud.wait_for(lambda: bms.present_value("av3") == pytest.approx(4.2), timeout_s=5)
            await cloud.wait_for(lambda: any(e.kind == "safe_state_floored" for e in cloud.events))
    finally:
        await bms.stop()
        await modbus.stop()
