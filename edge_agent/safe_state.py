"""Writing safe states: each step as `fallback.plan_safe_state` allows it, never below the §14a floor.

The plan is pure; this is its shell: it reads the BMS relinquish defaults the plan needs
(once at start, again before a fallback if unknown), reports config the floor will
override, and performs the writes and relinquishes, each failure an event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.config import AssetConfig, SiteConfig
from edge_agent.drivers import DeviceError, Driver, PointRef
from edge_agent.fallback import plan_safe_state, relinquish_needs_check
from edge_agent.floor import floor_problems, min_power_kw

__all__ = ["SafeStateWriter"]

log = logging.getLogger(__name__)

EventSink = Callable[..., None]  # EdgeAgent.event(kind, severity, message, asset)


@dataclass
class SafeStateWriter:
    """Safe-state writes of one site; `relinquish_defaults`: asset -> point -> BMS default (None: unknown)."""

    config: SiteConfig
    drivers: dict[str, Driver]
    events: EventSink
    relinquish_defaults: dict[str, dict[str, float | None]] = field(default_factory=dict)

    async def check_at_start(self) -> None:
        """Report config the §14a floor will override, and read every BMS relinquish default it relies on."""
        for asset in self.config.assets:
            for problem in floor_problems(asset):
                self.events("floor_config", "warning", f"{asset.id}: {problem}", asset.id)
            for step in asset.safe_state:
                if step.relinquish and relinquish_needs_check(asset, step.point):
                    await self._read_relinquish_default(asset, step.point)

    async def _read_relinquish_default(self, asset: AssetConfig, point_name: str) -> float | None:
        point = asset.point(point_name)
        probe = point.model_copy(update={"bacnet_property": "relinquishDefault"})
        try:
            got = await self.drivers[point.device].read([PointRef(asset.id, probe)])
            value = got[f"{asset.id}.{probe.name}"].value
        except DeviceError as exc:
            log.warning("cannot read the relinquish default of %s.%s: %s", asset.id, point_name, exc)
            value = None
        self.relinquish_defaults.setdefault(asset.id, {})[point_name] = value
        plan = plan_safe_state(asset, self.relinquish_defaults[asset.id])
        step = next(w for w in plan if w.point == point_name)
        if value is not None and not step.relinquish:
            self.events(
                "unsafe_relinquish_default",
                "critical",
                f"{asset.id}.{point_name}: the BMS relinquish default {value:g} is below the guaranteed "
                f"minimum of {min_power_kw(asset):g} kW; fallback writes the minimum instead",
                asset.id,
            )
        return value

    async def apply(self, asset: AssetConfig) -> None:
        """Write `asset`'s safe state as `plan_safe_state` allows it (never below the §14a floor)."""
        defaults = self.relinquish_defaults.setdefault(asset.id, {})
        for step in asset.safe_state:
            if (
                step.relinquish
                and relinquish_needs_check(asset, step.point)
                and defaults.get(step.point) is None
            ):
                await self._read_relinquish_default(asset, step.point)  # unknown at start: try once more
        for safe in plan_safe_state(asset, defaults):
            point = asset.point(safe.point)
            if safe.skip:
                self.events(
                    "safe_state_refused", "critical", f"{asset.id}.{safe.point}: {safe.note}", asset.id
                )
                continue
            if safe.note is not None:
                self.events(
                    "safe_state_floored", "warning", f"{asset.id}.{safe.point}: {safe.note}", asset.id
                )
            driver = self.drivers[point.device]
            try:
                if safe.relinquish:
                    await driver.relinquish(point)
                else:
                    assert safe.value is not None
                    await driver.write(point, safe.value, priority=point.priority)
            except DeviceError as exc:
                self.events("safe_state_failed", "critical", f"{asset.id}.{safe.point}: {exc}", asset.id)
