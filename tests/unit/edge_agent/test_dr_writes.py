"""DR writes' shell without a network: priority, end of validity, veto with its acks and events, hysteresis.

The device is a small priority array per point (what a BACnet commandable object keeps);
the same behaviour over a real BAC0 BMS and Mosquitto is in
tests/integration/edge_agent/test_dr_bms.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config import PointConfig, SiteConfig, load_config
from edge_agent.dr_writes import DrWrites
from edge_agent.drivers.base import PointRef, Reading
from edge_agent.poller import Latest
from protocols.clock import SimClock
from protocols.errors import ConfigError
from protocols.messages import Ack, Command

T0 = datetime(2030, 1, 15, 12, tzinfo=UTC)


class PriorityDevice:
    """Points with a 16-slot priority array: write fills a slot, relinquish empties the point's slot."""

    def __init__(self) -> None:
        self.slots: dict[str, dict[int, float]] = {}

    async def read(self, points: Sequence[PointRef]) -> dict[str, Reading]:
        out = {}
        for r in points:
            slots = self.slots.get(r.point.name, {})
            out[r.key] = Reading(slots[min(slots)] if slots else 21.0)
        return out

    async def write(self, point: PointConfig, value: float, *, priority: int | None = None) -> None:
        self.slots.setdefault(point.name, {})[priority or point.priority or 8] = value

    async def relinquish(self, point: PointConfig) -> None:
        self.slots.setdefault(point.name, {}).pop(point.priority or 8, None)

    async def close(self) -> None:
        return None


def _site(tmp_path: Path, **dr: Any) -> SiteConfig:
    doc = {
        "site": "s1",
        "buffer": {"path": str(tmp_path / "b.sqlite")},
        "health": {"port": None},
        "dr": dr,
        "devices": [{"id": "bms", "driver": "bacnet", "address": "127.0.0.1:47809", "device_id": 7}],
        "assets": [
            {
                "id": "zone1",
                "kind": "hvac",
                "points": [
                    {"name": "zone_t_c", "device": "bms", "object": "analogInput:1"},
                    {"name": "co2_ppm", "device": "bms", "object": "analogInput:2"},
                    {
                        "name": "t_setpoint_c",
                        "device": "bms",
                        "object": "analogValue:1",
                        "writable": True,
                        "priority": 8,
                        "min": 16,
                        "max": 26,
                    },
                    {
                        "name": "fan_pct",
                        "device": "bms",
                        "object": "analogValue:2",
                        "writable": True,
                        "priority": 8,
                        "min": 0,
                        "max": 100,
                    },
                ],
                "controls": {
                    "t_setpoint_c": {"point": "t_setpoint_c"},
                    "fan_speed_pct": {"point": "fan_pct"},
                },
                "comfort": {"t_min_c": 20, "t_max_c": 23},
            }
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_config(path)


def _cmd(cmd_id: str, kind: str, value: float, minutes: float = 30.0) -> Command:
    return Command.model_validate({"site": "s1", "ts": T0, "cmd_id": cmd_id, "asset": "zone1", "kind": kind,
                                   "value": value, "valid_from": T0,
                                   "valid_until": T0 + timedelta(minutes=minutes)})  # fmt: skip


class Rig:
    def __init__(self, tmp_path: Path, **dr: Any) -> None:
        self.cfg = _site(tmp_path, **dr)
        self.clock = SimClock(T0)
        self.device = PriorityDevice()
        self.latest: dict[str, Latest] = {}
        self.events: list[tuple[str, str, str]] = []
        self.acks: list[Ack] = []
        self.dr = DrWrites(
            self.cfg, self.clock, {"bms": self.device}, self.latest, self._event, self._ack, {}
        )
        self.read(21.5, 700.0)

    def _event(self, kind: str, severity: str, message: str, asset: str | None, details: Any = None) -> None:
        self.events.append((kind, severity, message))

    async def _ack(self, ack: Ack) -> None:
        self.acks.append(ack)

    def read(self, t_c: float, co2: float) -> None:
        self.latest["zone1.zone_t_c"] = Latest(t_c, "good", T0, 0.0)
        self.latest["zone1.co2_ppm"] = Latest(co2, "good", T0, 0.0)

    async def write(self, cmd: Command) -> None:
        """What the command worker does for an accepted DR command."""
        assert self.dr.is_dr(cmd) and self.dr.refusal(cmd) is None
        point = self.cfg.asset("zone1").point(self.cfg.asset("zone1").controls[cmd.kind].point)
        assert not isinstance(cmd.value, str)
        await self.device.write(point, cmd.value, priority=self.dr.priority(cmd))
        await self.dr.on_written(cmd, point, self.dr.priority(cmd))


async def test_a_dr_write_holds_at_priority_9_and_is_relinquished_when_its_validity_ends(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    await rig.write(_cmd("sp", "t_setpoint_c", 20.5, minutes=10))
    await rig.write(_cmd("fan", "fan_speed_pct", 15.0, minutes=20))
    assert rig.device.slots == {"t_setpoint_c": {9: 20.5}, "fan_pct": {9: 15.0}}
    rig.clock.advance(599.0)
    await rig.dr.tick()
    assert rig.device.slots["t_setpoint_c"] == {9: 20.5}
    rig.clock.advance(1.0)  # valid_until is exclusive
    await rig.dr.tick()
    assert rig.device.slots == {"t_setpoint_c": {}, "fan_pct": {9: 15.0}}
    assert [e[0] for e in rig.events] == ["dr_released"] and "validity ended" in rig.events[0][2]
    rig.clock.advance(600.0)
    await rig.dr.tick()
    assert rig.device.slots["fan_pct"] == {} and rig.dr.holds == {}
    assert rig.acks == []  # an ordinary end is no new ack


async def test_the_configured_priority_and_a_commands_own_priority_are_used(tmp_path: Path) -> None:
    rig = Rig(tmp_path, bacnet_priority=12)
    await rig.write(_cmd("a", "t_setpoint_c", 22.0))
    assert rig.device.slots["t_setpoint_c"] == {12: 22.0}
    own = _cmd("b", "t_setpoint_c", 22.5).model_copy(update={"priority": 10})
    await rig.write(own)  # the successor at another priority frees its predecessor's slot
    assert rig.device.slots["t_setpoint_c"] == {10: 22.5}


async def test_co2_at_the_limit_releases_every_dr_write_on_the_zone_acks_clamped_and_holds_off(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    await rig.write(_cmd("sp", "t_setpoint_c", 20.5))
    await rig.write(_cmd("fan", "fan_speed_pct", 10.0))
    await rig.dr.tick()
    assert rig.acks == []
    rig.read(21.0, 1012.0)
    await rig.dr.tick()
    assert rig.device.slots == {"t_setpoint_c": {}, "fan_pct": {}}
    assert sorted((a.cmd_id, a.status) for a in rig.acks) == [("fan", "clamped"), ("sp", "clamped")]
    assert all((a.reason or "").startswith("co2: 1012 ppm ≥ 1000; DR write released") for a in rig.acks)
    assert [e[0] for e in rig.events].count("comfort_veto") == 1
    assert rig.dr.counts == {"comfort_veto": 2}
    # no new DR write until back by the margins (900 ppm), and the vetoed ones never come back
    rig.read(21.0, 950.0)
    await rig.dr.tick()
    assert "held off" in (rig.dr.refusal(_cmd("n1", "fan_speed_pct", 10.0)) or "")
    rig.read(21.0, 880.0)
    await rig.dr.tick()
    assert rig.events[-1][0] == "comfort_veto_cleared"
    assert rig.dr.refusal(_cmd("n2", "fan_speed_pct", 10.0)) is None
    assert rig.device.slots == {"t_setpoint_c": {}, "fan_pct": {}}


async def test_a_zone_leaving_its_band_releases_the_setpoint_with_the_temperature_in_the_reason(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    await rig.write(_cmd("sp", "t_setpoint_c", 23.5))
    rig.read(23.6, 700.0)
    await rig.dr.tick()
    assert rig.acks[0].status == "clamped" and rig.acks[0].requested == 23.5
    assert (rig.acks[0].reason or "").startswith("comfort: zone 23.6 °C above band 20–23 °C")
    assert rig.dr.refusal(_cmd("x", "t_setpoint_c", 21.0)) is not None


async def test_a_command_for_a_zone_already_out_of_its_limits_is_refused(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.read(19.0, 700.0)
    assert rig.dr.refusal(_cmd("x", "t_setpoint_c", 21.0)) == (
        "comfort: zone 19.0 °C below band 20–23 °C: no DR write on 'zone1' now"
    )


async def test_safe_state_and_start_release_the_dr_priority(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.device.slots = {"t_setpoint_c": {9: 25.0, 16: 21.0}, "fan_pct": {9: 0.0}}  # left by a crashed run
    await rig.dr.clear_at_start()
    assert rig.device.slots == {"t_setpoint_c": {16: 21.0}, "fan_pct": {}}
    await rig.write(_cmd("sp", "t_setpoint_c", 22.0))
    await rig.dr.release_asset(rig.cfg.asset("zone1"), "safe state")
    assert rig.device.slots["t_setpoint_c"] == {16: 21.0} and rig.dr.holds == {}


def test_a_dr_control_on_a_modbus_point_is_refused_with_its_key(tmp_path: Path) -> None:
    doc = {
        "site": "s1",
        "buffer": {"path": str(tmp_path / "b.sqlite")},
        "devices": [{"id": "plc", "driver": "modbus", "host": "127.0.0.1", "port": 1502, "unit_id": 1}],
        "assets": [
            {
                "id": "zone1",
                "kind": "hvac",
                "points": [
                    {
                        "name": "sp",
                        "device": "plc",
                        "table": "holding",
                        "address": 1,
                        "type": "int16",
                        "writable": True,
                    }
                ],
                "controls": {"t_setpoint_c": {"point": "sp"}},
            }
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "assets[0].controls.t_setpoint_c.point"
    assert "BACnet" in str(err.value)
