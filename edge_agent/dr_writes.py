"""Demand-response writes on the BMS: held at the DR priority, relinquished at their end, vetoed for comfort.

A `t_setpoint_c` or `fan_speed_pct` command (`config_dr.DR_KINDS`) is written by the
command worker like any other (decided, clamped to the point's range, read back, acked),
but at the site's DR priority (`dr.bacnet_priority`, default 9) and then handed to
`DrWrites`, which owns its end. Every supervisor tick (one poll interval):

- a hold whose validity has ended is relinquished (`null` at its priority): the BMS's
  own schedule and lower priorities apply again (event `dr_released`);
- a zone with holds is checked by the comfort veto (`edge_agent.comfort_veto`); on a
  veto every DR write on that zone is relinquished, each command is acked again as
  `clamped` with the veto's reason, and an event `comfort_veto` says why. The zone then
  takes no DR write (refused with the reason) until it is back by the hysteresis margins
  (event `comfort_veto_cleared`); the vetoed command is not re-applied.

The fallback's safe state and the agent's stop release every hold too (`release_asset`),
and the agent clears its DR priority once at start (`clear_at_start`: a crashed run's
holds were in memory), so a DR write does not outlive the agent's control of the site. A failed relinquish keeps
the hold (tried again next tick) and is an event: a BMS left at a DR value is never silent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from edge_agent.comfort_veto import ComfortLimits, Veto, check, cleared, comfort_limits
from edge_agent.config import AssetConfig, PointConfig, SiteConfig
from edge_agent.config_dr import DR_KINDS
from edge_agent.drivers.base import DeviceError, Driver
from edge_agent.poller import Latest
from protocols.clock import Clock
from protocols.messages import Ack, Command

__all__ = ["DrHold", "DrWrites"]

log = logging.getLogger(__name__)

Notify = Callable[..., None]  # EdgeAgent.event(kind, severity, message, asset, details)


@dataclass(frozen=True, slots=True)
class DrHold:
    """One DR write in force: the command, the point it wrote and the BACnet priority it holds."""

    cmd: Command
    point: PointConfig
    priority: int


class DrWrites:
    """The site's DR writes in force, by (asset, kind), and the zones under a comfort veto."""

    def __init__(
        self,
        config: SiteConfig,
        clock: Clock,
        drivers: Mapping[str, Driver],
        latest: Mapping[str, Latest],
        events: Notify,
        publish_ack: Callable[[Ack], Awaitable[None]],
        counts: dict[str, int],
    ) -> None:
        self.config = config
        self.clock = clock
        self.drivers = drivers
        self.latest = latest
        self.events = events
        self.publish_ack = publish_ack
        self.counts = counts
        self.holds: dict[tuple[str, str], DrHold] = {}
        self._cleared = False
        #: Zones under a comfort veto (asset id -> the veto), until `cleared`.
        self.vetoed: dict[str, Veto] = {}
        self.limits: dict[str, ComfortLimits] = {
            a.id: comfort_limits(a) for a in config.assets if any(k in DR_KINDS for k in a.controls)
        }

    @staticmethod
    def is_dr(cmd: Command) -> bool:
        """Whether `cmd` is a DR write (zone setpoint, fan speed)."""
        return cmd.kind in DR_KINDS

    def priority(self, cmd: Command) -> int:
        """The BACnet priority `cmd` is written at: its own, else the site's DR priority."""
        return cmd.priority or self.config.dr.bacnet_priority

    def _readings(self, limits: ComfortLimits, asset: str) -> tuple[float | None, float | None]:
        def good(point: str | None) -> float | None:
            entry = self.latest.get(f"{asset}.{point}") if point is not None else None
            return entry.value if entry is not None and entry.quality != "bad" else None

        return good(limits.t_point), good(limits.co2_point)

    def refusal(self, cmd: Command) -> str | None:
        """Why a DR command must not be written now (its zone is vetoed or out of limits), or None."""
        limits = self.limits.get(cmd.asset)
        if limits is None:
            return None
        veto = self.vetoed.get(cmd.asset)
        if veto is not None:
            return f"{veto.reason}: DR writes on {cmd.asset!r} are held off until the zone is back"
        veto = check(limits, *self._readings(limits, cmd.asset))
        return None if veto is None else f"{veto.reason}: no DR write on {cmd.asset!r} now"

    async def on_written(self, cmd: Command, point: PointConfig, priority: int) -> None:
        """`cmd` was written at `priority`: hold it (a predecessor at another priority is released)."""
        key = (cmd.asset, cmd.kind)
        before = self.holds.get(key)
        self.holds[key] = DrHold(cmd, point, priority)
        if before is not None and before.priority != priority:
            await self._relinquish(before, f"replaced by {cmd.cmd_id} at priority {priority}")

    async def _relinquish(self, hold: DrHold, why: str) -> bool:
        """`null` at the hold's priority; an event either way (a failure is critical: the BMS keeps it)."""
        cmd = hold.cmd
        point = hold.point.model_copy(update={"priority": hold.priority})
        try:
            await self.drivers[point.device].relinquish(point)
        except DeviceError as exc:
            log.warning("relinquish of %s.%s failed: %s", cmd.asset, point.name, exc)
            self.events(
                "dr_release_failed",
                "critical",
                f"{cmd.asset}.{point.name}: DR write of {cmd.cmd_id} not relinquished ({why}): {exc}"[:500],
                cmd.asset,
            )
            return False
        self.events(
            "dr_released",
            "info",
            f"{cmd.asset}.{point.name}: DR write of {cmd.cmd_id} relinquished at priority "
            f"{hold.priority} ({why})",
            cmd.asset,
            {"cmd_id": cmd.cmd_id, "priority": hold.priority},
        )
        return True

    async def tick(self) -> None:
        """Once per poll: relinquish ended holds, veto zones out of their limits, clear recovered zones."""
        now = self.clock.now()
        await self._end_expired(now)
        for asset in sorted({a for a, _ in self.holds}):
            limits = self.limits.get(asset)
            if limits is None:
                continue
            veto = check(limits, *self._readings(limits, asset))
            if veto is not None:
                await self._veto(asset, veto, limits)
        for asset, veto in list(self.vetoed.items()):
            limits = self.limits[asset]
            if cleared(limits, *self._readings(limits, asset)):
                del self.vetoed[asset]
                self.events(
                    "comfort_veto_cleared",
                    "info",
                    f"{asset}: back inside {limits.band_text} and below "
                    f"{limits.co2_max_ppm - limits.co2_hysteresis_ppm:g} ppm after '{veto.reason}': "
                    "DR writes are taken again",
                    asset,
                )

    async def _end_expired(self, now: datetime) -> None:
        for key, hold in list(self.holds.items()):
            if now >= hold.cmd.valid_until and await self._relinquish(hold, "validity ended"):
                self.holds.pop(key, None)

    async def _veto(self, asset: str, veto: Veto, limits: ComfortLimits) -> None:
        """Release every DR write on `asset`, ack each `clamped` with the reason, one `comfort_veto` event."""
        again = asset in self.vetoed  # a relinquish that failed last tick, tried again: no second event
        self.vetoed[asset] = veto
        released = []
        for key, hold in list(self.holds.items()):
            if key[0] != asset:
                continue
            if await self._relinquish(hold, veto.reason):
                self.holds.pop(key, None)
                released.append(hold)
                self.counts["comfort_veto"] = self.counts.get("comfort_veto", 0) + 1
                await self.publish_ack(
                    Ack(
                        site=self.config.site,
                        ts=self.clock.now(),
                        cmd_id=hold.cmd.cmd_id,
                        asset=asset,
                        status="clamped",
                        request_id=hold.cmd.request_id,
                        requested=hold.cmd.value,
                        reason=f"{veto.reason}; DR write released (priority {hold.priority} relinquished)",
                    )
                )
        details: dict[str, float | int | str] = {
            "cause": veto.cause,
            "t_min_c": limits.t_min_c,
            "t_max_c": limits.t_max_c,
            "co2_max_ppm": limits.co2_max_ppm,
            "released": len(released),
        }
        if veto.t_c is not None:
            details["t_c"] = round(veto.t_c, 2)
        if veto.co2_ppm is not None:
            details["co2_ppm"] = round(veto.co2_ppm, 1)
        if again and not released:
            return
        log.warning("comfort veto on %s: %s", asset, veto.reason)
        self.events(
            "comfort_veto",
            "warning",
            f"{asset}: {veto.reason}; released "
            + (", ".join(f"{h.cmd.kind} {h.cmd.cmd_id}" for h in released) or "nothing (release failed)"),
            asset,
            details,
        )

    async def clear_at_start(self) -> None:
        """Relinquish the DR priority on every DR point once, before the first command is taken.

        The agent owns that priority slot; a value left there by a previous run that
        crashed (its holds were in memory) would otherwise stay on the BMS for good.
        """
        if self._cleared:
            return
        self._cleared = True
        prio = self.config.dr.bacnet_priority
        for asset in self.config.assets:
            for kind, control in asset.controls.items():
                if kind not in DR_KINDS:
                    continue
                point = asset.point(control.point).model_copy(update={"priority": prio})
                try:
                    await self.drivers[point.device].relinquish(point)
                except DeviceError as exc:
                    self.events(
                        "dr_release_failed",
                        "critical",
                        f"{asset.id}.{point.name}: priority {prio} not cleared at start: {exc}"[:500],
                        asset.id,
                    )

    async def release_all(self, why: str) -> None:
        """Relinquish every DR write (the agent is stopping)."""
        for asset in self.config.assets:
            await self.release_asset(asset, why)

    async def release_asset(self, asset: AssetConfig, why: str) -> None:
        """Relinquish every DR write on `asset` (safe state, fallback, exit)."""
        for key, hold in list(self.holds.items()):
            if key[0] == asset.id and await self._relinquish(hold, why):
                self.holds.pop(key, None)
