"""Commands: the I/O shell that queues, writes, reads back and acks (`CommandExecutor`).

Commands are taken off the MQTT receive loop: `submit` only queues the payload (bounded,
`commands.queue_size`) and one worker decides, writes, reads back and acks in order, so a
flood of commands cannot hold up the `stored` watermarks behind it. A command that
finds the queue full is acked `rejected` with reason `busy` (its id is not burnt: the
cloud may send it again).

The decision itself (signature, fencing token, replay, validity, limits, ramp, register,
floor) is the pure `edge_agent.decision.decide`; every refusal happens there, before any
I/O, so nothing rejected or expired can reach a device. A command refused by the fencing
check (a dispatcher that lost its lease) is also counted (`counts["fence_refused"]`) and
named in an `event`, once per stale token rather than once per command.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from edge_agent.clock_skew import SkewMonitor
from edge_agent.config import AssetConfig, PointConfig, SiteConfig
from edge_agent.connection_guard import ConnectionGuard
from edge_agent.decision import Decision, RampState, decide
from edge_agent.dr_writes import DrWrites
from edge_agent.drivers.base import DeviceError, Driver, PointRef
from edge_agent.fence import FenceGuard, FenceMemory
from edge_agent.floor import floor_write
from edge_agent.poller import Latest
from edge_agent.replay import CommandGuard
from protocols.clock import Clock
from protocols.codec import decode
from protocols.errors import ContractError
from protocols.messages import SITE_COMMAND_KINDS, Ack, AckStatus, Command
from protocols.signing import ReplayGuard

__all__ = ["CommandExecutor", "recover_ids"]

log = logging.getLogger(__name__)

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MSG_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def recover_ids(payload: bytes) -> tuple[str, str] | None:
    """(cmd_id, asset) of an undecodable command when both are readable, so it can be acked."""
    try:
        raw = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(raw, dict):
        return None
    cmd_id, asset = raw.get("cmd_id"), raw.get("asset")
    if isinstance(cmd_id, str) and isinstance(asset, str) and _MSG_ID.match(cmd_id) and _ID.match(asset):
        return cmd_id, asset
    return None


Publish = Callable[[Ack], Awaitable[None]]
Notify = Callable[[str, str, str, str | None], None]


@dataclass
class CommandExecutor:
    """Decode, decide, write, read back and ack; keeps the replay guard and ramp memory."""

    config: SiteConfig
    clock: Clock
    drivers: dict[str, Driver]
    latest: dict[str, Latest]
    publish_ack: Publish
    events: Notify
    guard: CommandGuard = field(default_factory=ReplayGuard)
    #: The highest fencing token seen; the agent sets the persistent one (`PersistentReplayGuard.fence`).
    fence: FenceMemory = field(default_factory=FenceGuard)
    ramps: dict[tuple[str, str], RampState] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    on_valid: Callable[[Command], None] | None = None
    skew: SkewMonitor | None = None
    queue_size: int = 1_000
    busy_refused: int = 0
    #: The site's connection limit: site caps go to it, and it tightens power commands.
    limiter: ConnectionGuard | None = None
    #: DR writes (zone setpoint, fan speed): their priority, comfort refusal, and their end.
    dr: DrWrites | None = None

    def __post_init__(self) -> None:
        # Built once from the resolved config (the key files were read by `load_config`).
        self.keyring = self.config.signing.keyring()
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(self.queue_size)
        # Busy acks wait here for their own task, so refusing costs the receive loop no PUBACK wait.
        self._busy_acks: collections.deque[Ack] = collections.deque()
        self._busy_wake = asyncio.Event()
        self._fence_told: tuple[int | None, int | None] | None = None  # the last stale token evented

    def submit(self, topic: str, payload: bytes) -> None:
        """Queue one `cmd` message for the worker (called from the MQTT receive loop; never waits)."""
        try:
            self._queue.put_nowait((topic, payload))
        except asyncio.QueueFull:
            self._refuse_busy(payload)

    def _refuse_busy(self, payload: bytes) -> None:
        self.busy_refused += 1
        ids = recover_ids(payload)
        if ids is None or len(self._busy_acks) >= 10 * self.queue_size:
            self.counts["rejected"] = self.counts.get("rejected", 0) + 1
            if (self.busy_refused - 1) % self.queue_size == 0:  # not one event per refused command
                self.events(
                    "command_busy", "warning", f"{self.busy_refused} commands refused: queue full", None
                )
            return
        reason = f"busy: {self.queue_size} commands already waiting"
        self._busy_acks.append(self._ack(ids[0], ids[1], "rejected", reason=reason))
        self._busy_wake.set()

    async def run_worker(self) -> None:
        """Handle queued commands one by one, in arrival order, until cancelled."""
        while True:
            topic, payload = await self._queue.get()
            await self.handle(topic, payload)

    async def run_busy_acks(self) -> None:
        """Publish the `busy` refusals, until cancelled."""
        while True:
            await self._busy_wake.wait()
            self._busy_wake.clear()
            while self._busy_acks:
                await self.publish_ack(self._busy_acks.popleft())

    def observe_clock(self, cloud_ts: datetime) -> None:
        """One measurement of the cloud's clock (a live `stored` or a command); event on a change."""
        if self.skew is None:
            return
        change = self.skew.observe(cloud_ts, self.clock.now())
        lead = self.skew.lead_s
        if change == "exceeded" and lead is not None:
            side = "ahead of" if lead > 0 else "behind"
            log.warning("agent clock %.1f s %s the cloud's: check NTP", abs(lead), side)
            self.events(
                "clock_skew",
                "warning",
                f"the agent's clock is {abs(lead):.1f} s {side} the cloud's (tolerance "
                f"{self.skew.tolerance_s:g} s): commands may be refused; check NTP",
                None,
            )
        elif change == "cleared" and lead is not None:
            self.events("clock_skew_cleared", "info", f"clock skew back to {lead:.1f} s", None)

    def _ack_of(self, cmd: Command, status: AckStatus, **kw: float | str | None) -> Ack:
        """The ack of a parsed command: its id, asset and DR request id (acks link back to the request)."""
        return self._ack(cmd.cmd_id, cmd.asset, status, request_id=cmd.request_id, **kw)

    def _ack(self, cmd_id: str, asset: str, status: AckStatus, **kw: float | str | None) -> Ack:
        self.counts[status] = self.counts.get(status, 0) + 1
        body = {
            "site": self.config.site,
            "ts": self.clock.now(),
            "cmd_id": cmd_id,
            "asset": asset,
            "status": status,
        }
        return Ack.model_validate(body | kw)

    async def handle(self, topic: str, payload: bytes) -> Ack | None:
        """Process one message from the `cmd` topic; publish and return its ack (None if unackable)."""
        try:
            msg = decode(topic, payload)
            if not isinstance(msg, Command):
                raise ContractError(f"expected a command, got {type(msg).__name__}", topic=topic)
        except ContractError as exc:
            ids = recover_ids(payload)
            if ids is None:
                self.counts["rejected"] = self.counts.get("rejected", 0) + 1
                self.events("command_rejected", "warning", f"undecodable command: {exc.reason}"[:500], None)
                return None
            ack = self._ack(ids[0], ids[1], "rejected", reason=exc.reason[:500])
            await self.publish_ack(ack)
            return ack
        self.observe_clock(msg.ts)
        ack = await self.execute(msg)
        await self.publish_ack(ack)
        return ack

    async def execute(self, cmd: Command) -> Ack:
        """Decide one decoded command, write it (enable point first) and read it back; return its ack."""
        ramp = self.ramps.get((cmd.asset, cmd.kind))
        if ramp is None:
            ramp = self._ramp_from_measurement(cmd)
        d = decide(
            cmd,
            config=self.config,
            key=self.keyring,
            guard=self.guard,
            now=self.clock.now(),
            ramp=ramp,
            now_mono=self.clock.monotonic(),
            skew=self.skew,
            fence=self.fence,
        )
        if d.status in ("rejected", "expired"):
            log.info("command %s %s: %s", cmd.cmd_id, d.status, d.reason)
            if d.fenced:
                self._fenced_off(cmd, str(d.reason))
            return self._ack_of(cmd, d.status, requested=cmd.value, reason=d.reason)
        if cmd.kind in SITE_COMMAND_KINDS:
            return self._site_cap(cmd, d)
        refused = self.dr.refusal(cmd) if self.dr is not None and self.dr.is_dr(cmd) else None
        if refused is not None:  # a comfort veto holds, or the zone is out of its limits now
            return self._ack_of(cmd, "rejected", requested=cmd.value, reason=refused[:500])
        if self.limiter is None:
            return await self._write(cmd, d)
        async with self.limiter.lock:  # a local measure and a command never interleave on a device
            # the cloud's value (asset-clamped, before the local limit) is the target to restore
            target = d.value if isinstance(d.value, float) else None
            ack = await self._write(cmd, self._tightened(cmd, d))
            if target is not None and ack.status in ("applied", "clamped"):
                self.limiter.on_command(cmd.asset, cmd.kind, target)
            return ack

    def _fenced_off(self, cmd: Command, reason: str) -> None:
        """Count a command the fencing check refused; an event the first time for this token."""
        self.counts["fence_refused"] = self.counts.get("fence_refused", 0) + 1
        told = (cmd.fence, self.fence.highest)
        if told == self._fence_told:
            return
        self._fence_told = told
        log.warning("command %s from a fenced-off dispatcher refused: %s", cmd.cmd_id, reason)
        self.events(
            "command_fence_refused",
            "warning",
            f"command {cmd.cmd_id} refused: {reason}"
            + (" (a dispatcher that lost its lease is still sending)" if cmd.fence is not None else ""),
            cmd.asset,
        )

    def _site_cap(self, cmd: Command, d: Decision) -> Ack:
        """A DSO cap: handed to the connection limit, nothing written here."""
        if self.limiter is None:
            return self._ack_of(cmd, "rejected", requested=cmd.value, reason="no connection limit")
        self.limiter.apply_cap(cmd)
        return self._ack_of(cmd, "applied", requested=cmd.value, applied_value=d.value)

    def _tightened(self, cmd: Command, d: Decision) -> Decision:
        """`d` with its value tightened by the local connection-limit measure on the asset, if any."""
        assert self.limiter is not None and d.asset is not None and d.control is not None
        if not isinstance(d.value, float) or cmd.kind not in ("p_limit_kw", "p_setpoint_kw"):
            return d
        value, why = self.limiter.tighten(d.asset, cmd.kind, d.value)
        if why is None:
            return d
        control = d.control
        write = value * control.factor + control.offset
        checked = floor_write(d.asset, control.point, write)
        if checked.value is not None:
            write = checked.value
            value = (write - control.offset) / control.factor
        reason = f"{d.reason}; {why}" if d.reason else f"clamped: {why}"
        return Decision("clamped", reason, value, write, control, d.asset)

    async def _write(self, cmd: Command, d: Decision) -> Ack:
        """Write a decided command (enable point first), read it back; its ack."""
        requested = cmd.value
        assert d.asset is not None and d.control is not None and d.write_value is not None
        asset, control = d.asset, d.control
        point = asset.point(control.point)
        driver = self.drivers[point.device]
        dr = self.dr if self.dr is not None and self.dr.is_dr(cmd) else None
        priority = dr.priority(cmd) if dr is not None else cmd.priority or point.priority
        try:
            if control.enable is not None:
                await driver.write(
                    asset.point(control.enable.point), control.enable.value, priority=cmd.priority
                )
            await driver.write(point, d.write_value, priority=priority)
            if dr is not None and priority is not None:
                await dr.on_written(cmd, point, priority)  # held from here: relinquished at its end
            rb_point = asset.point(control.read_back or control.point)
            got = await driver.read([PointRef(asset.id, rb_point)])
            rb = got[f"{asset.id}.{rb_point.name}"].value
        except DeviceError as exc:
            log.warning("command %s failed: %s", cmd.cmd_id, exc)
            return self._ack_of(cmd, "failed", requested=requested, reason=str(exc)[:500])
        read_back = None if rb is None else (rb - control.offset) / control.factor
        if isinstance(d.value, float):
            self.ramps[(cmd.asset, cmd.kind)] = RampState(d.value, self.clock.monotonic())
        if self.on_valid is not None:
            self.on_valid(cmd)
        return self._ack_of(
            cmd,
            d.status,
            requested=requested,
            applied_value=d.value,
            read_back=read_back,
            reason=d.reason,
        )

    def _ramp_from_measurement(self, cmd: Command) -> RampState | None:
        try:
            asset = self.config.asset(cmd.asset)
        except KeyError:
            return None
        control = asset.controls.get(cmd.kind)
        if control is None:
            return None
        last = self.latest.get(f"{asset.id}.{control.point}")
        if last is None or last.value is None:
            return None
        return RampState((last.value - control.offset) / control.factor, last.mono)


def control_point(asset: AssetConfig, kind: Literal["p_limit_kw"]) -> PointConfig | None:
    control = asset.controls.get(kind)
    return asset.point(control.point) if control is not None else None
