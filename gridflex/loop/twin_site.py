"""One simulated building as its edge agent sees it, without sockets: the twin's equipment side.

Why: the twin must apply a command exactly as the agent would, or it judges a different
controller. So it does not restate the agent's rules: each building gets the site YAML
the test bed writes for it (`simulators.siteconfig.site_config`), each command goes
through the agent's own `edge_agent.decision.decide` (signature, replay and validity
checks, asset limits, §14a floor, point range, register resolution), and the decided
value is written the way the agent's Modbus driver writes it — engineering units to raw,
raw to registers — into the building's own register maps, whose fields drive the
physics. A command whose validity ends without a successor returns its asset to the
YAML's `safe_state`, with the agent's own bookkeeping (`edge_agent.fallback.FallbackPolicy`).
What is left out is transport: no message loss, no latency, no deadband.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from device_templates import expand_site
from edge_agent.config import AssetConfig, PointConfig, SiteConfig
from edge_agent.decision import Decision, decide
from edge_agent.drivers.registers import decode, encode, engineering_to_raw
from edge_agent.fallback import FallbackPolicy
from protocols.assets import METER
from protocols.messages import SITE_COMMAND_KINDS, Command
from protocols.signing import ReplayGuard
from protocols.testbed import ModbusEndpoint
from simulators.building import Building
from simulators.modbus import RegisterMap, battery_map, ev_map, hp_map, meter_map, pv_map
from simulators.siteconfig import site_config

__all__ = ["TwinSite", "equipment_maps"]

_MAP_NAME = {
    "meter": "sunspec-meter",
    "pv": "sunspec-pv",
    "battery": "vendor-battery",
    "ev": "vendor-ev",
    "hp": "vendor-hp",
}


def equipment_maps(b: Building) -> dict[str, RegisterMap]:
    """The register map of every Modbus device of `b`, by the device id its site YAML uses."""
    maps = {METER: meter_map(b.meter, serial=f"{b.site}-meter")}
    if b.pv is not None:
        maps["pv"] = pv_map(b.pv, serial=f"{b.site}-pv")
    if b.battery is not None:
        maps["battery"] = battery_map(b.battery)
    if b.ev is not None:
        maps["ev"] = ev_map(b.ev)
    if b.hp is not None:
        maps["hp"] = hp_map(b.hp)
    return maps


class TwinSite:
    """A building, its site YAML (without a BMS: the twin has no BACnet) and the agent's command state."""

    def __init__(self, building: Building) -> None:
        self.building = building
        self.maps = equipment_maps(building)
        endpoints = [
            ModbusEndpoint(device=dev, map=_MAP_NAME[dev], host="127.0.0.1", port=1, unit_id=1)
            for dev in self.maps
        ]
        doc = site_config(
            building,
            self.maps,
            endpoints,
            None,
            broker_host="127.0.0.1",
            broker_port=1883,
            state_dir=Path("twin-state"),  # never opened: the twin has no buffer
        )
        # the test bed writes `template:` devices; expand them as the agent's loader does
        self.config = SiteConfig.model_validate(expand_site(doc, file="<twin site YAML>", base=Path(".")))
        self.guard = ReplayGuard()
        # Only its validity bookkeeping is used: the twin has no broker to lose and sends a
        # command every period, so the "no valid command for after_s" rule never fires.
        self.policy = FallbackPolicy(self.config.fallback.after_s, last_valid_mono=0.0)

    def apply(self, cmd: Command, now: datetime) -> Decision:
        """Decide `cmd` as the agent does; write the decided value unless refused."""
        if cmd.kind in SITE_COMMAND_KINDS:  # held by the agent's connection guard, which the twin lacks
            return Decision("rejected", f"the twin does not hold site-level {cmd.kind} commands")
        d = decide(cmd, config=self.config, key=None, guard=self.guard, now=now, ramp=None, now_mono=0.0)
        if d.status in ("rejected", "expired"):
            return d
        assert d.asset is not None and d.control is not None and d.write_value is not None
        if d.control.enable is not None:
            self._write(d.asset.point(d.control.enable.point), d.control.enable.value)
        self._write(d.asset.point(d.control.point), d.write_value)
        self.policy.on_valid(cmd, 0.0)
        return d

    def expire(self, now: datetime) -> list[Command]:
        """Every command whose validity ended without a successor: its asset to the safe state."""
        ended = self.policy.pop_expired(now)
        for cmd in ended:
            self.safe_state(self.config.asset(cmd.asset))
        return ended

    def safe_state(self, asset: AssetConfig) -> None:
        """The YAML's safe-state steps of `asset` (a relinquish needs BACnet, which the twin has not)."""
        for step in asset.safe_state:
            if step.write is not None:
                self._write(asset.point(step.point), step.write)

    def _write(self, point: PointConfig, value: float) -> None:
        """What the agent's Modbus driver sends for `point` = `value`, applied to the register map."""
        assert point.address is not None and point.type is not None and point.device is not None
        m = self.maps[point.device]
        sf = 0
        if point.sf_address is not None:
            regs = m.read(point.sf_address, 1)
            assert isinstance(regs, list), f"{point.device}: no scale factor at {point.sf_address}"
            sf = int(decode(regs, "int16"))
        raw = engineering_to_raw(value, point, sf)
        err = m.write(point.address, encode(raw, point.type, point.word_order, point.byte_order))
        if err is not None:
            raise ValueError(f"{self.building.site}: {point.device} refused {point.name} = {value}: {err!r}")
