"""The edge agent: pollers, store-and-forward publisher, commands, fallback, flex and health in one TaskGroup.

`EdgeAgent(config, clock=...)` then `await agent.run()` until cancelled. Every loop
runs supervised (an unexpected exception is logged and the loop restarts after a
second) so one bug in one path cannot stop telemetry or the safety fallback.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal

import aiomqtt

from edge_agent.buffer import SampleBuffer, batch_payload
from edge_agent.commands import CommandExecutor
from edge_agent.config import AssetConfig, SiteConfig
from edge_agent.drivers import BacnetStack, DeviceError, Driver, PointRef, make_driver
from edge_agent.fallback import FallbackPolicy
from edge_agent.flex import asset_flex, flex_signature
from edge_agent.health import AgentStats, HealthServer
from edge_agent.poller import DevicePoller, Latest, PendingSample
from protocols.clock import Clock, RealClock
from protocols.codec import decode, encode
from protocols.errors import ContractError, GridflexError
from protocols.messages import Ack, Command, Event, FlexEnvelope, Message, SiteState, Stored, new_msg_id
from protocols.mqtt import MqttConfig, MqttSession, NotConnectedError, PublishError, Will
from protocols.topics import site_topic

__all__ = ["AGENT_VERSION", "EdgeAgent", "run_until_signal"]

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"
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
        self._events: collections.deque[Event] = collections.deque(maxlen=1000)
        self._event_wake = asyncio.Event()
        self._data_wake = asyncio.Event()
        self._buffer: SampleBuffer | None = None
        self._session: MqttSession | None = None
        self._sent_upto = -1
        self.fallback = FallbackPolicy(
            config.fallback.after_s, last_valid_mono=clock.monotonic(), broker_down_since=clock.monotonic()
        )
        self._pollers: list[DevicePoller] = []
        # Python 3.11's asyncio.wait_for (inside aiomqtt, pymodbus) can swallow a cancellation
        # that races a completing future; every loop also checks this flag, so stop never hangs.
        self._stopping = False
        self._flex_sig: tuple[object, ...] | None = None
        self._flex_mono = -1e18
        self._commands = CommandExecutor(
            config=config,
            clock=clock,
            drivers=self.drivers,
            latest=self.latest,
            publish_ack=self._publish_ack,
            events=self.event,
            on_valid=self._on_valid_command,
        )
        self.stats.commands = self._commands.counts

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; cancellation publishes `offline`, closes MQTT, drivers and SQLite."""
        cfg = self.config
        self._buffer = SampleBuffer(
            cfg.buffer.path,
            max_rows=cfg.buffer.max_rows,
            max_age_s=cfg.buffer.max_age_s,
            synchronous=cfg.buffer.synchronous,
        )
        self._sent_upto = self._buffer.min_seq - 1
        self.stats.queue_depth = self._buffer.depth
        self.stats.next_seq = self._buffer.next_seq
        broker = cfg.broker
        mqtt = MqttConfig(
            host=broker.host,
            port=broker.port,
            client_id=f"gridflex-edge-{cfg.site}",
            username=broker.username,
            password=broker.password,
            tls=broker.tls is not None,
            ca_file=broker.tls.ca_file if broker.tls else None,
            keepalive_s=broker.keepalive_s,
            publish_timeout_s=5.0,
            reconnect_max_s=10.0,
        )
        offline = SiteState(
            site=cfg.site,
            ts=self.clock.now(),
            status="offline",
            agent_version=AGENT_VERSION,
            config_hash=cfg.config_hash,
        )
        self._session = MqttSession(
            mqtt,
            subscriptions=[(self._topics["cmd"], 1), (self._topics["stored"], 1)],
            will=Will(self._topics["state"], encode(offline)),
            on_connect=self._on_connect,
        )
        health = None
        try:
            if cfg.health.port is not None:
                health = HealthServer(cfg.health.host, cfg.health.port, lambda: self.stats)
                await health.start()
                self.health_port = health.port
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._session.run(self._on_message), name="mqtt")
                by_device: dict[str, list[PointRef]] = {}
                for asset in cfg.assets:
                    for point in asset.points:
                        by_device.setdefault(point.device, []).append(PointRef(asset.id, point))
                for device_id, refs in by_device.items():
                    poller = DevicePoller(
                        device_id,
                        self.drivers[device_id],
                        refs,
                        poll=cfg.poll,
                        clock=self.clock,
                        sink=self._store,
                        events=self.event,
                        latest=self.latest,
                    )
                    self._pollers.append(poller)
                    tg.create_task(
                        self._supervised(f"poll-{device_id}", poller.run), name=f"poll-{device_id}"
                    )
                tg.create_task(self._supervised("publisher", self._publish_loop), name="publisher")
                tg.create_task(self._supervised("events", self._event_loop), name="events")
                tg.create_task(self._supervised("supervisor", self._supervise_loop), name="supervisor")
                try:
                    await asyncio.Future()  # until cancelled
                except asyncio.CancelledError:
                    self._stopping = True
                    for poller in self._pollers:
                        poller.stopping = True
                    await self._say_goodbye()
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
            self._buffer.close()

    async def _say_goodbye(self) -> None:
        """A clean stop sends no will, so publish `offline` ourselves (best effort, bounded)."""
        if self._session is None or not self._session.connected.is_set():
            return
        state = SiteState(
            site=self.config.site,
            ts=self.clock.now(),
            status="offline",
            agent_version=AGENT_VERSION,
            config_hash=self.config.config_hash,
            reason="agent stopped",
        )
        try:
            async with asyncio.timeout(1.0):
                await self._session.publish(self._topics["state"], encode(state), qos=1, retain=True)
        except (TimeoutError, GridflexError):
            pass

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping:
            try:
                await loop()
                return
            except Exception:
                log.exception("edge loop %s crashed; restarting in 1 s", name)
                await asyncio.sleep(1.0)

    # ---- telemetry ------------------------------------------------------------------------

    def _store(self, samples: Sequence[PendingSample]) -> None:
        assert self._buffer is not None
        _, dropped = self._buffer.append(samples)
        self.stats.queue_depth = self._buffer.depth
        self.stats.next_seq = self._buffer.next_seq
        if dropped:
            self.stats.dropped += dropped
            self.event("queue_dropped", "warning", f"queue full: dropped {dropped} oldest samples", None)
        self._data_wake.set()

    async def _publish_loop(self) -> None:
        assert self._buffer is not None and self._session is not None
        session, buf, topic = self._session, self._buffer, self._topics["telemetry"]
        while not self._stopping:
            if not await _wait(session.connected, 1.0):
                continue
            batch = buf.read(self._sent_upto, self.config.buffer.batch_max)
            if batch is None:
                self._data_wake.clear()
                await _wait(self._data_wake, 1.0)
                continue
            payload = batch_payload(self.config.site, self.clock.now(), new_msg_id(), batch)
            try:
                await session.publish(topic, payload, qos=1)
            except (NotConnectedError, PublishError) as exc:
                log.info(
                    "telemetry publish interrupted (%s); will resend from seq %d", exc, self._sent_upto + 1
                )
                await asyncio.sleep(0.05)
                continue
            self._sent_upto = batch.last_seq
            self.stats.published += len(batch.samples_json)
            self.stats.last_broker_ack = self.clock.now()
            if not self.config.cloud.watermark:
                buf.release_upto(batch.last_seq)  # edge-only install: PUBACK is all we get
                self.stats.queue_depth = buf.depth

    def _on_stored(self, stored: Stored) -> None:
        assert self._buffer is not None
        self.stats.stored_seq = max(self.stats.stored_seq, stored.seq)
        if stored.seq >= self._buffer.next_seq:
            shift = self._buffer.renumber_after(stored.seq)
            self._sent_upto = self._buffer.min_seq - 1
            self.stats.next_seq = self._buffer.next_seq
            self.event(
                "seq_jump",
                "warning",
                f"cloud has seq {stored.seq} >= our next seq: queue file lost? seqs moved up by {shift}",
                None,
            )
            return
        if self.config.cloud.watermark:
            self._buffer.release_upto(stored.seq)
            self.stats.queue_depth = self._buffer.depth
            self._sent_upto = max(self._sent_upto, min(stored.seq, self._buffer.next_seq - 1))

    # ---- MQTT -----------------------------------------------------------------------------

    async def _on_connect(self, session: MqttSession) -> None:
        assert self._buffer is not None
        self.stats.connected = True
        self.fallback.on_broker(True, self.clock.monotonic())
        # Whatever was sent but not confirmed by the cloud goes again (the cloud dedupes by seq).
        self._sent_upto = max(self._buffer.min_seq - 1, min(self.stats.stored_seq, self._buffer.next_seq - 1))
        self._flex_sig = None
        await self._publish_state()
        self._data_wake.set()
        self._event_wake.set()

    async def _on_message(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        payload = (
            message.payload
            if isinstance(message.payload, bytes | bytearray)
            else str(message.payload).encode()
        )
        if topic == self._topics["cmd"]:
            await self._commands.handle(topic, bytes(payload))
            return
        try:
            msg = decode(topic, payload)
        except ContractError as exc:
            self.event("bad_message", "warning", f"{topic}: {exc.reason}"[:500], None)
            return
        if isinstance(msg, Stored):
            self._on_stored(msg)

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
        await self._publish("ack", ack)

    async def _publish_state(self, reason: str | None = None) -> None:
        status: Literal["fallback", "online"] = "fallback" if self.stats.state == "fallback" else "online"
        state = SiteState(
            site=self.config.site,
            ts=self.clock.now(),
            status=status,
            agent_version=AGENT_VERSION,
            config_hash=self.config.config_hash,
            reason=reason,
        )
        await self._publish("state", state, retain=True)

    def event(self, kind: str, severity: str, message: str, asset: str | None) -> None:
        """Queue an `Event` for the `event` topic (kept in memory, newest 1,000)."""
        self._events.append(
            Event.model_validate(
                {
                    "site": self.config.site,
                    "ts": self.clock.now(),
                    "kind": kind,
                    "severity": severity,
                    "message": message[:500],
                    "asset": asset,
                }
            )
        )
        self._event_wake.set()

    async def _event_loop(self) -> None:
        assert self._session is not None
        while not self._stopping:
            if not await _wait(self._session.connected, 1.0):
                continue
            while self._events:
                if not await self._publish("event", self._events[0]):
                    break
                self._events.popleft()
            self._event_wake.clear()
            await _wait(self._event_wake, 1.0)

    # ---- fallback, validity, flex ------------------------------------------------------------

    def _on_valid_command(self, cmd: Command) -> None:
        self.fallback.on_valid(cmd, self.clock.monotonic())
        if self.stats.state == "fallback":
            self.stats.state = "online"
            log.info("valid command %s: leaving fallback", cmd.cmd_id)
            self.event("fallback_left", "info", f"valid command {cmd.cmd_id} received", None)
            asyncio.get_running_loop().create_task(self._publish_state())

    def tick_s(self) -> float:
        return min(self.config.poll.interval_s, self.config.fallback.after_s / 10, 1.0)

    async def _supervise_loop(self) -> None:
        assert self._session is not None
        if self.stats.state == "starting":
            self.stats.state = "online"
        while not self._stopping:
            await self.supervise_once()
            await self.clock.sleep(self.tick_s())

    async def supervise_once(self) -> None:
        """One tick: broker watch, fallback entry, expired commands, flex refresh, stats."""
        assert self._session is not None and self._buffer is not None
        now = self.clock.monotonic()
        connected = self._session.connected.is_set()
        self.stats.connected = connected
        self.stats.device_faults = sum(p.fault_count for p in self._pollers)
        self.fallback.on_broker(connected, now)
        if self.stats.state != "fallback":
            reason = self.fallback.reason(now)
            if reason is not None:
                await self.enter_fallback(reason)
        for cmd in self.fallback.pop_expired(self.clock.now()):
            if self.stats.state != "fallback":
                self.event(
                    "command_expired",
                    "warning",
                    f"command {cmd.cmd_id} ended without a successor: safe state",
                    cmd.asset,
                )
                await self.apply_safe_state(self.config.asset(cmd.asset))
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
        for step in asset.safe_state:
            point = asset.point(step.point)
            driver = self.drivers[point.device]
            try:
                if step.relinquish:
                    await driver.relinquish(point)
                else:
                    assert step.write is not None
                    await driver.write(point, step.write, priority=point.priority)
            except DeviceError as exc:
                self.event("safe_state_failed", "critical", f"{asset.id}.{step.point}: {exc}", asset.id)
        self._commands.ramps = {k: v for k, v in self._commands.ramps.items() if k[0] != asset.id}

    async def _maybe_publish_flex(self, now: float) -> None:
        wall = self.clock.now()
        flex = [asset_flex(a, self.latest, wall) for a in self.config.assets]
        sig = flex_signature(flex)
        if sig == self._flex_sig and now - self._flex_mono < FLEX_HEARTBEAT_S:
            return
        if await self._publish(
            "flex", FlexEnvelope(site=self.config.site, ts=wall, assets=flex), retain=True
        ):
            self._flex_sig, self._flex_mono = sig, now


async def _wait(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait for `event` at most `timeout_s`; True if it is set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


def run_until_signal(config: SiteConfig) -> None:
    """`gridflex edge --config`: run with RealClock; SIGTERM/SIGINT stop it cleanly (exit 0)."""

    async def main() -> None:
        agent = EdgeAgent(config, clock=RealClock())
        task = asyncio.create_task(agent.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            log.info("edge agent stopped")

    asyncio.run(main())
