"""The connection limit's shell: every poll, read the meter, ask `decide_limit`, write, report.

`ConnectionGuard` holds the site's `grid_connection` limits and a DSO's `site_import_max_kw`
cap locally, with or without a cloud. It acts only on a meter reading taken after its
last write (a reading from before would make it tighten twice for one excess), writes
through the same control mapping and §14a floor as commands, and shares one lock with the
command worker so a cloud command and a local measure never interleave on a device.

Composing with the cloud: a cloud command is the asset's target (`on_command`); the
local override can only tighten it (`tighten`, used by the command worker, which acks
`clamped` naming the limit); releasing a measure restores the target, or the asset's
safe state when no command is in force.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from edge_agent.config import AssetConfig, SiteConfig
from edge_agent.connection_limit import (
    Lever,
    LeverRole,
    Limits,
    Override,
    SiteCap,
    decide_limit,
    effective_limits,
    tighter_kw,
)
from edge_agent.drivers.base import DeviceError, Driver
from edge_agent.floor import floor_write, min_power_kw
from edge_agent.health import AgentStats
from edge_agent.poller import Latest, PendingSample
from protocols.assets import Points
from protocols.clock import Clock
from protocols.messages import Command, CommandKind

__all__ = ["LIMIT_POINTS", "ConnectionGuard"]

log = logging.getLogger(__name__)

#: The points the agent publishes on the site meter's asset about the limit (telemetry),
#: named once in `protocols.assets.Points` (the controller reads them from there too).
LIMIT_POINTS: dict[str, str] = {
    Points.LIMIT_IMPORT_MAX_KW.point: "kW",
    Points.LIMIT_EXPORT_MAX_KW.point: "kW",
    Points.LIMIT_ACTIVE.point: "bool",
    Points.LIMIT_EXCESS_KW.point: "kW",
}
_SOC_SLACK_PCT = 0.5
_FRESH_WAIT_POLLS = 5
_CONTROL: dict[LeverRole, CommandKind] = {
    "battery": "p_setpoint_kw",
    "ev": "p_limit_kw",
    "hp": "p_limit_kw",
    "pv": "p_limit_kw",
}

EventSink = Callable[..., None]  # EdgeAgent.event(kind, severity, message, asset, details)
Restore = Callable[[AssetConfig], Awaitable[None]]


@dataclass
class ConnectionGuard:
    """The site's connection limit, held locally; `overrides` and `targets` are by asset id."""

    config: SiteConfig
    clock: Clock
    drivers: dict[str, Driver]
    latest: dict[str, Latest]
    events: EventSink
    stats: AgentStats
    restore: Restore | None = None  # an asset's safe state (release without a cloud target)
    sink: Callable[[Sequence[PendingSample]], None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    overrides: dict[str, Override] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    cap: SiteCap | None = None
    excess_kw: float = 0.0
    _last_write_mono: float = -math.inf
    _published: dict[str, float] = field(default_factory=dict)
    _blind: bool = False

    # ---- limits ------------------------------------------------------------------------------

    def limits(self) -> Limits:
        """The effective limits now: the static ones tightened by a valid DSO cap."""
        gc = self.config.grid_connection
        return effective_limits(gc.import_max_kw, gc.export_max_kw, gc.margin_kw, self.cap, self.clock.now())

    def source(self, side: str) -> str:
        """Which limit binds on `side`, for reasons and events."""
        gc = self.config.grid_connection
        if side == "export":
            return f"connection limit export_max_kw {gc.export_max_kw:g} kW"
        cap = self.cap
        if (
            cap is not None
            and self.clock.now() < cap.valid_until
            and (gc.import_max_kw is None or cap.import_max_kw < gc.import_max_kw)
        ):
            return f"DSO site cap {cap.import_max_kw:g} kW (command {cap.cmd_id})"
        return f"connection limit import_max_kw {gc.import_max_kw:g} kW"

    def apply_cap(self, cmd: Command) -> None:
        """A verified `site_import_max_kw` command: the cap in force until its `valid_until`."""
        assert isinstance(cmd.value, float | int)
        self.cap = SiteCap(float(cmd.value), cmd.valid_until, cmd.cmd_id)
        self.events(
            "dso_cap_applied",
            "info",
            f"site import capped at {cmd.value:g} kW until {cmd.valid_until.isoformat()}",
            cmd.asset,
            {"import_max_kw": float(cmd.value), "cmd_id": cmd.cmd_id},
        )

    # ---- composing with commands -------------------------------------------------------------

    def tighten(self, asset: AssetConfig, kind: str, value_kw: float) -> tuple[float, str | None]:
        """The value a cloud command may write: the tighter of it and the local override, and why."""
        role = _role(asset)
        override = self.overrides.get(asset.id)
        if role is None or override is None or _CONTROL[role] != kind:
            return value_kw, None
        tight = tighter_kw(role, override.side, value_kw, override.value_kw)
        if abs(tight - value_kw) <= 1e-6:
            return value_kw, None
        return tight, f"{self.source(override.side)} holds {asset.id} at {tight:g} kW"

    def on_command(self, asset_id: str, kind: str, value_kw: float) -> None:
        """A cloud command was written: its (asset-clamped) value is the asset's target from now on."""
        try:
            role = _role(self.config.asset(asset_id))
        except KeyError:
            return
        if role is not None and _CONTROL[role] == kind:
            self.targets[asset_id] = value_kw
            self._last_write_mono = self.clock.monotonic()  # wait for readings that show it

    def forget(self, asset_id: str) -> None:
        """The asset went to its safe state: no target, no override (re-engaged next poll if needed)."""
        self.targets.pop(asset_id, None)
        self.overrides.pop(asset_id, None)

    # ---- the poll ----------------------------------------------------------------------------

    async def run(self, stopping: Callable[[], bool]) -> None:
        """Hold the limit every poll interval until stopped."""
        while not stopping():
            await self.tick()
            await self.clock.sleep(self.config.poll.interval_s)

    async def tick(self) -> None:
        """One poll: expire the cap, decide on a fresh meter reading, write what changed, report."""
        cap = self.cap
        if cap is not None and self.clock.now() >= cap.valid_until:
            self.cap = None
            self.events(
                "dso_cap_expired",
                "info",
                f"DSO site cap {cap.import_max_kw:g} kW (command {cap.cmd_id}) ended: released",
                self._meter_id(),
                {"import_max_kw": cap.import_max_kw, "cmd_id": cap.cmd_id},
            )
        limits = self.limits()
        self.stats.limit_import_max_kw = limits.import_max_kw
        self.stats.limit_export_max_kw = limits.export_max_kw
        if limits.import_max_kw is None and limits.export_max_kw is None and not self.overrides:
            self._report(limits)
            return
        meter = self._meter_id()
        reading = self.latest.get(f"{meter}.p_kw") if meter is not None else None
        if reading is None or reading.value is None or reading.quality == "bad":
            if not self._blind:
                self._blind = True
                self.events(
                    "connection_limit_blind",
                    "warning",
                    "no good meter reading: the connection limit holds its measures as they are",
                    meter,
                )
            return
        self._blind = False
        if not self._fresh(reading):
            return  # readings from before the last write do not show its effect yet
        async with self.lock:
            await self._decide(reading.value, limits)
        self._report(limits)

    def _fresh(self, meter: Latest) -> bool:
        """The meter and every lever were read after the last write (ours or a command's).

        Bounded: a lever polled less often than the meter does not block the limit for
        more than `_FRESH_WAIT_POLLS` poll intervals.
        """
        last = self._last_write_mono
        if meter.mono <= last:
            return False
        if self.clock.monotonic() - last > _FRESH_WAIT_POLLS * self.config.poll.interval_s:
            return True
        for asset in self.config.assets:
            if _role(asset) is None:
                continue
            for name in ("p_kw", "soc_pct"):
                got = self.latest.get(f"{asset.id}.{name}")
                if got is not None and got.quality != "bad" and got.mono <= last:
                    return False
        return True

    async def _decide(self, net_kw: float, limits: Limits) -> None:
        levers = self._levers()
        before = dict(self.overrides)
        decision = decide_limit(net_kw, limits, levers, before)
        self.overrides = dict(decision.overrides)
        by_id = {lv.asset: lv for lv in levers}
        for asset_id in decision.changed:
            asset = self.config.asset(asset_id)
            override = self.overrides.get(asset_id)
            if override is not None:
                lever = by_id[asset_id]
                value = override.value_kw
                if lever.target_kw is not None:
                    value = tighter_kw(lever.role, override.side, value, lever.target_kw)
                await self._write(asset, value)
            else:
                await self._release(asset)
        if not before and self.overrides:
            side = next(iter(self.overrides.values())).side
            self.events(
                "connection_limit_engaged",
                "warning",
                f"site at {net_kw:.2f} kW: {self.source(side)} held by "
                + ", ".join(f"{a} {o.value_kw:g} kW" for a, o in self.overrides.items()),
                self._meter_id(),
                {"net_kw": round(net_kw, 3)},
            )
        elif before and not self.overrides:
            self.events(
                "connection_limit_released",
                "info",
                f"site at {net_kw:.2f} kW: every local measure released",
                self._meter_id(),
            )
        self._on_excess(decision.excess_kw, net_kw, limits)

    def _on_excess(self, excess_kw: float, net_kw: float, limits: Limits) -> None:
        if excess_kw > 0 and self.excess_kw <= 0:
            self.stats.limit_exceeded += 1
            side = (
                "import" if limits.import_max_kw is not None and net_kw > limits.import_max_kw else "export"
            )
            self.events(
                "connection_limit_exceeded",
                "warning",
                f"site at {net_kw:.2f} kW, {excess_kw:.2f} kW above the {self.source(side)} with every "
                "measure taken (EV/HP held at their guaranteed minimum, not lower)",
                self._meter_id(),
                {"excess_kw": round(excess_kw, 3), "net_kw": round(net_kw, 3)},
            )
        elif excess_kw <= 0 < self.excess_kw:
            self.events("connection_limit_excess_cleared", "info", "back within the limit", self._meter_id())
        self.excess_kw = excess_kw

    # ---- levers, writes, reports ------------------------------------------------------------

    def _meter_id(self) -> str | None:
        meter = self.config.site_meter()
        return meter.id if meter is not None else None

    def _levers(self) -> list[Lever]:
        out = []
        for asset in self.config.assets:
            role = _role(asset)
            if role is None:
                continue
            p = self.latest.get(f"{asset.id}.p_kw")
            if p is None or p.value is None or p.quality == "bad":
                continue  # a lever we cannot see is not moved
            low, high = _bounds(asset, role, self.latest)
            out.append(Lever(asset.id, role, p.value, low, high, self.targets.get(asset.id)))
        return out

    async def _write(self, asset: AssetConfig, value_kw: float) -> None:
        control = asset.controls[_CONTROL[_role_of(asset)]]
        point = asset.point(control.point)
        raw = value_kw * control.factor + control.offset
        if point.min is not None:
            raw = max(raw, point.min)
        if point.max is not None:
            raw = min(raw, point.max)
        checked = floor_write(asset, control.point, raw)  # the last word on every power write
        if checked.value is None:
            self.events("connection_limit_refused", "warning", f"{asset.id}: {checked.note}", asset.id)
            return
        driver = self.drivers[point.device]
        try:
            if control.enable is not None:
                await driver.write(asset.point(control.enable.point), control.enable.value)
            await driver.write(point, checked.value, priority=point.priority)
        except DeviceError as exc:
            self.events("connection_limit_write_failed", "error", f"{asset.id}: {exc}"[:500], asset.id)
        self._last_write_mono = self.clock.monotonic()
        log.info("connection limit: %s %s -> %g kW", asset.id, control.point, value_kw)

    async def _release(self, asset: AssetConfig) -> None:
        """The measure on `asset` ends: its cloud target again, else its safe state."""
        target = self.targets.get(asset.id)
        if target is not None:
            await self._write(asset, target)
        elif self.restore is not None:
            await self.restore(asset)
            self._last_write_mono = self.clock.monotonic()

    def _report(self, limits: Limits) -> None:
        """Stats always; telemetry on the meter's asset when a value changes."""
        self.stats.limit_active = bool(self.overrides)
        self.stats.limit_excess_kw = self.excess_kw
        meter = self._meter_id()
        if meter is None or self.sink is None:
            return
        values = {
            Points.LIMIT_IMPORT_MAX_KW.point: limits.import_max_kw,
            Points.LIMIT_EXPORT_MAX_KW.point: limits.export_max_kw,
            Points.LIMIT_ACTIVE.point: 1.0 if self.overrides else 0.0,
            Points.LIMIT_EXCESS_KW.point: round(self.excess_kw, 3),
        }
        now = self.clock.now()
        out = []
        for name, value in values.items():
            if value is None or self._published.get(name) == value:
                continue
            self._published[name] = value
            out.append(PendingSample(meter, name, value, LIMIT_POINTS[name], now, "good", None))
        if out:
            self.sink(out)


def _role(asset: AssetConfig) -> LeverRole | None:
    """The lever an asset is, if it has the control the limit writes."""
    kind = asset.kind
    if kind in ("battery", "ev", "hp", "pv") and _CONTROL[kind] in asset.controls:
        return kind
    return None


def _role_of(asset: AssetConfig) -> LeverRole:
    role = _role(asset)
    assert role is not None
    return role


def _bounds(asset: AssetConfig, role: LeverRole, latest: dict[str, Latest]) -> tuple[float, float]:
    """(low, high) of the lever's control: asset limits, the §14a floor, the battery's SOC bounds."""
    lim = asset.limits
    high = lim.p_max_kw if lim.p_max_kw is not None else (asset.p_nominal_kw or 0.0)
    if role == "battery":
        low = lim.p_min_kw if lim.p_min_kw is not None else -high
        soc = latest.get(f"{asset.id}.soc_pct")
        if soc is not None and soc.value is not None and soc.quality != "bad":
            m = asset.model
            if soc.value <= (m.soc_min_pct or 0.0) + _SOC_SLACK_PCT:
                low = max(low, 0.0)  # empty: it may stop charging, not discharge
            if soc.value >= (m.soc_max_pct if m.soc_max_pct is not None else 100.0) - _SOC_SLACK_PCT:
                high = min(high, 0.0)  # full: it may stop discharging, not charge
        return low, high
    if role == "pv":
        return 0.0, high
    floor = min_power_kw(asset) or 0.0
    return max(floor, lim.p_min_kw or 0.0), max(high, floor)
