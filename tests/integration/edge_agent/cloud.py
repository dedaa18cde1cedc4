"""A minimal cloud for the agent's tests: collects telemetry, dedupes by seq, publishes `stored`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from protocols.codec import decode, encode
from protocols.messages import Ack, Command, Event, FlexEnvelope, Sample, SiteState, Stored, TelemetryBatch
from protocols.mqtt import MqttConfig, MqttSession
from protocols.topics import site_topic


class Cloud:
    """Subscribes to one site's edge->cloud topics; `samples` is deduped by seq; acks the watermark."""

    def __init__(self, site: str, port: int, *, watermark: bool = True) -> None:
        self.site = site
        self.watermark = watermark
        self.samples: dict[int, Sample] = {}
        self.arrivals: list[int] = []  # every seq as received, duplicates included
        self.received_at: dict[int, datetime] = {}  # wall time of each seq's first arrival
        self.batches = 0
        self.acks: list[Ack] = []
        self.events: list[Event] = []
        self.states: list[SiteState] = []
        self.flex: list[FlexEnvelope] = []
        self.stored_seq = -1
        self.floor = 0  # from the edge's queue_dropped / queue_floor events
        self.session = MqttSession(
            MqttConfig(port=port, client_id=f"test-cloud-{site}", reconnect_max_s=0.5),
            subscriptions=[(site_topic(site, k), 1) for k in ("telemetry", "ack", "event", "state", "flex")],
        )
        self.changed = asyncio.Event()

    async def _handle(self, message: aiomqtt.Message) -> None:
        payload = message.payload
        assert isinstance(payload, bytes | bytearray)
        msg = decode(str(message.topic), bytes(payload))
        if isinstance(msg, TelemetryBatch):
            now = datetime.now(UTC)
            self.batches += 1
            for s in msg.samples:
                self.arrivals.append(s.seq)
                self.samples.setdefault(s.seq, s)
                self.received_at.setdefault(s.seq, now)
            await self._advance()
        elif isinstance(msg, Ack):
            self.acks.append(msg)
        elif isinstance(msg, Event):
            self.events.append(msg)
            floor = msg.details.get("min_seq")
            if msg.kind in ("queue_dropped", "queue_floor") and isinstance(floor, int):
                self.floor = max(self.floor, floor)  # the edge will never send below this again
                await self._advance()
        elif isinstance(msg, SiteState):
            self.states.append(msg)
        elif isinstance(msg, FlexEnvelope):
            self.flex.append(msg)
        self.changed.set()

    async def _advance(self) -> None:
        """Highest contiguous seq stored, counting announced drops (below the floor) as settled."""
        contiguous = max(self.stored_seq, self.floor - 1)
        while contiguous + 1 in self.samples:
            contiguous += 1
        if self.watermark and contiguous > self.stored_seq:
            self.stored_seq = contiguous
            stored = Stored(site=self.site, ts=datetime.now(UTC), seq=contiguous)
            await self.session.publish(site_topic(self.site, "stored"), encode(stored), qos=1, retain=True)

    async def send(self, cmd: Command | bytes) -> None:
        payload = cmd if isinstance(cmd, bytes) else encode(cmd)
        await self.session.publish(site_topic(self.site, "cmd"), payload, qos=1)

    async def wait_for(self, predicate: Any, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await self.changed.wait()

    def values(self, asset: str, point: str) -> list[Sample]:
        return [s for _, s in sorted(self.samples.items()) if s.asset == asset and s.point == point]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Cloud]:
        task = asyncio.create_task(self.session.run(self._handle))
        try:
            await self.session.wait_connected(10)
            if self.watermark:  # a cloud that knows the site publishes its watermark at once
                stored = Stored(site=self.site, ts=datetime.now(UTC), seq=self.stored_seq)
                await self.session.publish(
                    site_topic(self.site, "stored"), encode(stored), qos=1, retain=True
                )
            yield self
        finally:
            # Python 3.11's wait_for inside aiomqtt can swallow one cancellation: repeat.
            for _ in range(50):
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=0.2)
                if done:
                    break
            with contextlib.suppress(asyncio.CancelledError):
                await task
