"""The edge agent: pollers, store-and-forward publisher, commands, fallback, flex and health in one TaskGroup.

`EdgeAgent(config, clock=...)` then `await agent.run()` until cancelled. Every loop
runs supervised (an unexpected exception is logged and the loop restarts after a
second) so one bug in one path cannot stop telemetry or the safety fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import aiomqtt

from edge_agent.acks import AckOutbox
from edge_agent.clock_skew import SkewMonitor
from edge_agent.commands import CommandExecutor
from edge_agent.config import AssetConfig, SiteConfig
from edge_agent.connection_guard import ConnectionGuard
from edge_agent.dr_writes import DrWrites
from edge_agent.drivers import BacnetStack, Driver, PointRef, make_driver
from edge_agent.events import EventOutbox
from edge_agent.fallback import FallbackPolicy, release_delay_s
from edge_agent.flex import asset_flex, flex_signature
from edge_agent.health import AgentStats, HealthServer
from edge_agent.poller import DevicePoller, Latest
from edge_agent.replay import PersistentReplayGuard
from edge_agent.safe_state import SafeStateWriter
from edge_agent.session import make_session, say_goodbye, site_state
from edge_agent.stores import open_queue, open_replay_memory
from edge_agent.telemetry import TelemetryPipe
from protocols.clock import Clock
from protocols.codec import decode, encode
from protocols.errors import ContractError, GridflexError
from protocols.messages import Ack, Command, FlexEnvelope, Message, Stored
from protocols.mqtt import MqttSession, NotConnectedError, PublishError
from protocols.tasks import cancel_all_until_done
from protocols.topics import site_topic

__all__ = ["EdgeAgent"]

log = logging.getLogger(__name__)

FLEX_HEARTBEAT_S = 900.0


class EdgeAgent:
    """One site gateway. `stats` is live; `latest` holds the newest reading of every point.

    `drivers` replaces the configured driver of a device id (tests, other transports);
    `bacnet_stack` lets several agents in one process share one BAC0 application.
    """

    def __init__(
        self,
        config: SiteConfig,
        *,
        clock: Clock,
        drivers: Mapping[str, Driver] | None = None,
        bacnet_stack: BacnetStack | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.stats = AgentStats()
        self.latest: dict[str, Latest] = {}
        self.health_port: int | None = None
        # Many agents in one process (a demo) may share one BACnet stack; we close only our own.
        self._own_stack = bacnet_stack is None
        self._stack = bacnet_stack or BacnetStack(config.bacnet)
        self.drivers: dict[str, Driver] = dict(drivers) if drivers else {}
        for dev in config.devices:
            self.drivers.setdefault(dev.id, make_driver(dev, self._stack))
        self._topics = {
            k: site_topic(config.site, k)
            for k in ("state", "telemetry", "flex", "cmd", "ack", "event", "stored")
        }
        self._events = EventOutbox(config.site, clock)
        self._acks = AckOutbox()
        self._pipe: TelemetryPipe | None = None
        self._session: MqttSession | None = None
        self.fallback = FallbackPolicy(
            config.fallback.after_s,
            last_valid_mono=clock.monotonic(),
            broker_down_since=clock.monotonic(),
            release_delay_s=release_delay_s(config.site, config.fallback.release_spread_s),
        )
        self._pollers: list[DevicePoller] = []
        # Python 3.11's asyncio.wait_for (inside aiomqtt, pymodbus) can swallow a cancellation
        # that races a completing future; every loop also checks this flag, so stop never hangs.
        self._stopping = False
        self._background: set[asyncio.Task[None]] = set()
        self._flex_sig: tuple[object, ...] | None = None
        self._flex_mono = -1e18
        self._state_degraded: str | None = None  # the degraded reason last published on `state`
        self.safe_state = SafeStateWriter(config, self.drivers, self.event)
        #: The site's connection limit (grid_connection, DSO caps), held locally every poll.
        self.limiter = ConnectionGuard(
            config, clock, self.drivers, self.latest, self.event, self.stats, restore=self.safe_state.apply
        )
        self._commands = CommandExecutor(
            config=config,
            clock=clock,
            drivers=self.drivers,
            latest=self.latest,
            publish_ack=self._publish_ack,
            events=self.event,
            on_valid=self._on_valid_command,
            skew=SkewMonitor(config.commands.clock_skew_tolerance_s),
            queue_size=config.commands.queue_size,
            limiter=self.limiter,
        )
        self.stats.commands = self._commands.counts
        #: DR writes on the BMS (zone setpoint, fan speed): held, relinquished at their end, vetoed.
        self.dr = self._commands.dr = DrWrites(
            config, clock, self.drivers, self.latest, self.event, self._publish_ack, self._commands.counts
        )

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; cancellation publishes `offline`, closes MQTT, drivers and SQLite."""
        cfg = self.config
        pipe, guard = await self._open_stores()
        self._session = make_session(cfg, self.clock, self._topics, self._on_connect)
        health = None
        try:
            if cfg.health.port is not None:
                health = HealthServer(cfg.health.host, cfg.health.port, lambda: self.stats)
                await health.start()
                self.health_port = health.port
            async with asyncio.TaskGroup() as tg:
                children: list[asyncio.Task[None]] = []

                def spawn(coro: Coroutine[Any, Any, None], name: str) -> None:
                    children.append(tg.create_task(coro, name=name))

                spawn(self._session.run(self._on_message), "mqtt")
                self._spawn_pollers(spawn, pipe)
                spawn(self._supervised("commands", self._run_commands), "commands")
                spawn(self._supervised("busy-acks", self._commands.run_busy_acks), "busy-acks")
                spawn(self._supervised("acks", self._ack_loop), "acks")
                spawn(self._supervised("publisher", self._publish_telemetry), "publisher")
                spawn(self._supervised("events", self._event_loop), "events")
                spawn(self._supervised("supervisor", self._supervise_loop), "supervisor")
                spawn(self._supervised("floor-check", self.safe_state.check_at_start), "floor-check")
                spawn(self._supervised("limit", self._limit_loop), "limit")
                try:
                    await asyncio.Future()  # until cancelled
                except asyncio.CancelledError:
                    self._stopping = True
                    pipe.stopping = True
                    for poller in self._pollers:
                        poller.stopping = True
                    await self._release_dr_writes()
                    await say_goodbye(self._session, cfg, self.clock, self._topics["state"])
                    # Cancel each child until it is done: a swallowed cancellation (see
                    # _stopping) must not leave the TaskGroup waiting forever.
                    await cancel_all_until_done(children)
                    raise
        finally:
            self.stats.state = "stopped"
            self.stats.connected = False
            if health is not None:
                await health.close()
            for driver in self.drivers.values():
                with contextlib.suppress(GridflexError):
                    await driver.close()
            if self._own_stack:
                await self._stack.close()
            pipe.close()
            guard.close()

    async def _open_stores(self) -> tuple[TelemetryPipe, PersistentReplayGuard]:
        """The telemetry queue and the replay memory; if either cannot open: safe state, then raise."""
        cfg = self.config
        pipe = self._pipe = await open_queue(
            cfg, self.clock, self.stats, self.event, self._safe_state_before_exit
        )
        guard = await open_replay_memory(cfg, self.clock, self.stats, pipe, self._safe_state_before_exit)
        self._commands.guard = guard
        self._commands.fence = guard.fence  # the highest fencing token, in the same file
        self.limiter.sink = pipe.store
        if guard.moved_aside is not None:
            self.event(
                "replay_memory_corrupt",
                "error",
                f"replay memory was corrupt, kept as {guard.moved_aside.name}; commands issued "
                "before now are refused",
                None,
            )
        return pipe, guard

    def _spawn_pollers(
        self, spawn: Callable[[Coroutine[Any, Any, None], str], None], pipe: TelemetryPipe
    ) -> None:
        """One supervised poller per device, over the points of every asset on that device."""
        by_device: dict[str, list[PointRef]] = {}
        for asset in self.config.assets:
            for point in asset.points:
                by_device.setdefault(point.device, []).append(PointRef(asset.id, point))
        for device_id, refs in by_device.items():
            poller = DevicePoller(
                device_id,
                self.drivers[device_id],
                refs,
                poll=self.config.poll,
                clock=self.clock,
                sink=pipe.store,
                events=self.event,
                latest=self.latest,
            )
            self._pollers.append(poller)
            spawn(self._supervised(f"poll-{device_id}", poller.run), f"poll-{device_id}")

    async def _safe_state_before_exit(self) -> None:
        """Every asset to its safe state (bounded), then close the drivers: the agent cannot run."""
        try:
            async with asyncio.timeout(15.0):
                for asset in self.config.assets:
                    await self.apply_safe_state(asset)
        except TimeoutError:
            log.error("safe state before exit did not finish within 15 s")
        for driver in self.drivers.values():
            with contextlib.suppress(GridflexError):
                await driver.close()
        if self._own_stack:
            await self._stack.close()

    async def _run_commands(self) -> None:
        await self.dr.clear_at_start()  # a crashed run's DR writes, before the first command
        await self._commands.run_worker()

    async def _release_dr_writes(self) -> None:
        """On stop: every DR write relinquished (bounded), so the BMS's own control resumes."""
        try:
            async with asyncio.timeout(10.0):
                await self.dr.release_all("agent stopping")
        except TimeoutError:
            log.error("DR writes not all relinquished within 10 s of stopping")

    async def _limit_loop(self) -> None:
        await self.limiter.run(lambda: self._stopping)

    async def _publish_telemetry(self) -> None:
        assert self._pipe is not None and self._session is not None
        await self._pipe.run(self._session)

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping:
            try:
                await loop()
                return
            except Exception:
                log.exception("edge loop %s crashed; restarting in 1 s", name)
                await asyncio.sleep(1.0)

    # ---- MQTT -----------------------------------------------------------------------------

    async def _on_connect(self, session: MqttSession) -> None:
        self.stats.connected = True
        self.fallback.on_broker(True, self.clock.monotonic())
        assert self._pipe is not None
        self._pipe.on_connect()
        self._flex_sig = None
        await self._publish_state()
        self._events.wake.set()

    async def _on_message(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        payload = (
            message.payload
            if isinstance(message.payload, bytes | bytearray)
            else str(message.payload).encode()
        )
        if topic == self._topics["cmd"]:
            self._commands.submit(topic, bytes(payload))  # the worker decides, writes and acks
            return
        try:
            msg = decode(topic, payload)
        except ContractError as exc:
            self.event("bad_message", "warning", f"{topic}: {exc.reason}"[:500], None)
            return
        if isinstance(msg, Stored) and self._pipe is not None:
            if not message.retain:  # a retained watermark carries the time it was stored, not now
                self._commands.observe_clock(msg.ts)
            self._pipe.on_stored(msg)

    async def _publish(self, kind: str, msg: Message, *, retain: bool = False) -> bool:
        session = self._session
        if session is None:
            return False
        try:
            await session.publish(self._topics[kind], encode(msg), qos=1, retain=retain)
            return True
        except (NotConnectedError, PublishError) as exc:
            log.info("could not publish %s: %s", kind, exc)
            return False

    async def _publish_ack(self, ack: Ack) -> None:
        """Hand an ack to the `acks` task: the command worker never waits for a PUBACK."""
        self._acks.put(ack)

    async def _ack_loop(self) -> None:
        assert self._session is not None
        await self._acks.run(
            lambda ack: self._publish("ack", ack), self._session.connected, lambda: self._stopping
        )

    async def _publish_state(self, reason: str | None = None) -> None:
        degraded = self.stats.degraded
        if await self._publish("state", site_state(self.config, self.clock, self.stats, reason), retain=True):
            self._state_degraded = degraded

    def event(
        self,
        kind: str,
        severity: str,
        message: str,
        asset: str | None,
        details: Mapping[str, float | int | str] | None = None,
    ) -> None:
        """Queue an `Event` for the `event` topic (kept in memory, newest 1,000)."""
        self._events.put(kind, severity, message, asset, details)

    async def _event_loop(self) -> None:
        assert self._session is not None
        await self._events.run(
            lambda ev: self._publish("event", ev), self._session.connected, lambda: self._stopping
        )

    # ---- fallback, validity, flex ------------------------------------------------------------

    def _on_valid_command(self, cmd: Command) -> None:
        self.fallback.on_valid(cmd, self.clock.monotonic(), track=not self.dr.is_dr(cmd))
        if self.stats.state == "fallback":
            self.stats.state = "online"
            log.info("valid command %s: leaving fallback", cmd.cmd_id)
            self.event("fallback_left", "info", f"valid command {cmd.cmd_id} received", None)
            task = asyncio.get_running_loop().create_task(self._publish_state())
            self._background.add(task)  # keep a reference until done (the loop holds weak ones)
            task.add_done_callback(self._background.discard)

    def tick_s(self) -> float:
        """Supervisor period: the poll interval (bounded by a tenth of the fallback delay).

        Not capped at 1 s: on an accelerated clock (a demo at 240x) a 1 s tick would be
        240 wake-ups per wall second per agent, which is where a 20-agent demo spent its CPU.
        """
        return min(self.config.poll.interval_s, self.config.fallback.after_s / 10)

    async def _supervise_loop(self) -> None:
        assert self._session is not None
        if self.stats.state == "starting":
            self.stats.state = "online"
        while not self._stopping:
            await self.supervise_once()
            await self.clock.sleep(self.tick_s())

    async def supervise_once(self) -> None:
        """One tick: broker watch, fallback entry, expired commands, flex refresh, stats."""
        assert self._session is not None
        now = self.clock.monotonic()
        connected = self._session.connected.is_set()
        self.stats.connected = connected
        self.stats.device_faults = sum(p.fault_count for p in self._pollers)
        self.fallback.on_broker(connected, now)
        if self.stats.state != "fallback":
            reason = self.fallback.reason(now)
            if reason is not None:
                await self.enter_fallback(reason)
        await self.dr.tick()  # DR writes: ended ones relinquished, comfort vetoes
        for cmd in self.fallback.pop_expired(self.clock.now()):
            if self.stats.state != "fallback":
                self.event(
                    "command_expired",
                    "warning",
                    f"command {cmd.cmd_id} ended without a successor: safe state",
                    cmd.asset,
                )
                await self.apply_safe_state(self.config.asset(cmd.asset))
        if connected and self.stats.degraded != self._state_degraded:
            await self._publish_state()  # a queue fault appeared or cleared: say so on `state`
        if connected:
            await self._maybe_publish_flex(now)

    async def enter_fallback(self, reason: str) -> None:
        """Every asset to its safe state, `state: fallback` (retained) and an event."""
        log.warning("entering fallback: %s", reason)
        self.stats.state = "fallback"
        self.fallback.active.clear()
        for asset in self.config.assets:
            await self.apply_safe_state(asset)
        self.event("fallback_entered", "warning", reason, None)
        await self._publish_state(reason)

    async def apply_safe_state(self, asset: AssetConfig) -> None:
        """Write `asset`'s safe state through the floor (`SafeStateWriter`), forget its ramps."""
        await self.dr.release_asset(asset, "safe state")
        await self.safe_state.apply(asset)
        self.limiter.forget(asset.id)  # no cloud target now; a limit still breached re-engages next poll
        self._commands.ramps = {k: v for k, v in self._commands.ramps.items() if k[0] != asset.id}

    async def _maybe_publish_flex(self, now: float) -> None:
        wall = self.clock.now()
        flex = [asset_flex(a, self.latest, wall, self.config) for a in self.config.assets]
        sig = flex_signature(flex)
        if sig == self._flex_sig and now - self._flex_mono < FLEX_HEARTBEAT_S:
            return
        if await self._publish(
            "flex", FlexEnvelope(site=self.config.site, ts=wall, assets=flex), retain=True
        ):
            self._flex_sig, self._flex_mono = sig, now
