"""The failover scenario, shared by the integration test and the benchmark.

Two controller processes (`controller_proc`) on one PostgreSQL and one Mosquitto; this
process plays the sites' side: it publishes telemetry for every site (as an agent would,
resending from the stored watermark at the end) and subscribes to every command topic.
`run` waits for the holder to dispatch `before` periods, SIGKILLs it by its PID, waits
for the standby's first command (a higher fence) and `after` of its periods, and returns
what the broker and the store saw. Every wait has a generous bound (2 cores, many tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from cloud_controller.lease import DISPATCH_LEASE, EVENT_SITE
from cloud_controller.store.postgres import PostgresStore
from protocols.codec import decode, encode
from protocols.messages import MAX_BATCH_SAMPLES, Ack, Command, Event, Sample, TelemetryBatch
from protocols.topics import site_topic

from .controller_proc import AGENT_SITE, SITES, Setup, period_index, start_controller, stop_controller

BATCH = 5  # samples per telemetry batch
PUBLISH_EVERY_S = 0.1  # wall seconds between a site's batches
WAIT_S = 30.0  # bound of every wait (wall seconds)


@dataclass
class Seen:
    """What the sites' side saw: commands in arrival order (host monotonic time) and telemetry sent."""

    commands: list[tuple[float, Command]] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)  # the real agent's (site AGENT_SITE)
    injected: set[str] = field(default_factory=set)  # cmd_ids this test sent itself (the late one)

    def dispatched(self) -> list[Command]:
        """The commands the controllers sent, in arrival order (the test's own left out)."""
        return [c for _, c in self.commands if c.cmd_id not in self.injected]

    next_seq: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SITES, 0))

    def periods(self, fence: int) -> list[int]:
        """The distinct periods commanded with `fence`, in order."""
        return sorted({period_index(c.ts) for c in self.dispatched() if c.fence == fence})

    def per_period_and_site(self) -> Counter[tuple[int, str]]:
        """How many commands each (period, site) got, over both dispatchers."""
        return Counter((period_index(c.ts), c.site) for c in self.dispatched())


@dataclass
class Outcome:
    """One failover: who held, who took over, when (host monotonic seconds), and what was stored."""

    seen: Seen
    old_holder: str
    new_holder: str
    old_token: int
    new_token: int
    killed_at: float
    first_new_command_at: float
    late_ack: Ack | None  # the agent's answer to a late command carrying the killed holder's token
    lease_wait_s: float | None  # host seconds from the kill to the survivor's lease (its event's time)
    watermarks: dict[str, int]
    samples: dict[str, int]
    events: list[Event]
    logs: dict[str, str]


async def _until(pred: Any, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.02)


async def _observe(port: int, seen: Seen, subscribed: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="failover-sites-cmd") as client:
        await client.subscribe("gridflex/v1/site/+/cmd", qos=1)
        await client.subscribe(site_topic(AGENT_SITE, "ack"), qos=1)
        subscribed.set()
        async for message in client.messages:
            msg = decode(str(message.topic), bytes(message.payload))
            if isinstance(msg, Ack):
                seen.acks.append(msg)
                continue
            assert isinstance(msg, Command)
            seen.commands.append((time.monotonic(), msg))


def _batch(setup: Setup, site: str, first: int, n: int) -> bytes:
    now = setup.clock.now()
    samples = [
        Sample(
            seq=q, asset="meter", point="p_kw", value=float(q), unit="kW", ts=now + timedelta(microseconds=q)
        )
        for q in range(first, first + n)
    ]
    return encode(TelemetryBatch(site=site, ts=now, samples=samples))


async def _publish(client: aiomqtt.Client, setup: Setup, seen: Seen, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for site in SITES:
            first = seen.next_seq[site]
            await client.publish(site_topic(site, "telemetry"), _batch(setup, site, first, BATCH), qos=1)
            seen.next_seq[site] = first + BATCH
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PUBLISH_EVERY_S)


def _holder(store: PostgresStore, pids: dict[str, int]) -> tuple[str, str, int] | None:
    """(process name, holder id, token) of the live lease, or None."""
    row = store.read_lease(DISPATCH_LEASE)
    if row is None:
        return None
    for name, pid in pids.items():
        if f":{pid}:" in row[0]:
            return name, row[0], row[1]
    return None


async def run(
    setup: Setup,
    root: Path,
    *,
    before: int = 2,
    after: int = 2,
    stop_signal: int = signal.SIGKILL,
    agent: bool = True,
) -> Outcome:
    """Start both processes, fail the holder over, and return what happened (both stopped on return).

    `stop_signal`: SIGKILL (no release: the standby waits for the expiry) or SIGTERM (a clean
    exit releases the lease: the standby takes it at its next attempt, the benchmark's anchor).
    `agent`: run a real edge agent for AGENT_SITE (a real Modbus server, `require_fence`) in
    this process and send it, at the end, a late command with the killed holder's token.
    """
    procs = {name: start_controller(root / name, name, setup) for name in ("a", "b")}
    pids = {name: p.pid for name, p in procs.items() if p.pid is not None}
    store = PostgresStore(setup.dsn, password=setup.password)  # after the forks: no connection inherited
    seen = Seen()
    stop = asyncio.Event()
    subscribed = asyncio.Event()
    observer = asyncio.create_task(_observe(setup.broker_port, seen, subscribed))
    try:
        async with contextlib.AsyncExitStack() as stack:
            if agent:
                await stack.enter_async_context(_agent(setup, root / "agent"))
            pub = await stack.enter_async_context(
                aiomqtt.Client("127.0.0.1", setup.broker_port, identifier="failover-sites-tm")
            )
            await asyncio.wait_for(subscribed.wait(), WAIT_S)
            publisher = asyncio.create_task(_publish(pub, setup, seen, stop))

            def log(name: str) -> str:
                path = root / name / "controller.log"
                return path.read_text(errors="replace") if path.exists() else ""

            held: list[tuple[str, str, int]] = []

            async def holder_known() -> bool:
                h = await asyncio.to_thread(_holder, store, pids)
                if h is not None:
                    held[:] = [h]
                return h is not None

            deadline = time.monotonic() + WAIT_S
            while not await holder_known():
                assert time.monotonic() < deadline, "no process took the lease"
                await asyncio.sleep(0.05)
            old, old_holder, old_token = held[0]
            (new,) = [n for n in procs if n != old]
            await _until(lambda: "dispatch standby: lease held by" in log(new), f"{new} on standby")
            await _until(lambda: len(seen.periods(old_token)) >= before, f"{before} periods from {old}")
            os.kill(pids[old], stop_signal)
            killed_at = time.monotonic()
            killed_sim = setup.clock.now()
            await asyncio.to_thread(procs[old].join, WAIT_S)  # the loop keeps receiving meanwhile

            def new_commands() -> list[tuple[float, Command]]:
                return [(t, c) for t, c in seen.commands if c.fence is not None and c.fence > old_token]

            await _until(lambda: bool(new_commands()), f"{new}'s first command after the kill")
            first_new = new_commands()[0]
            new_token = first_new[1].fence or 0
            await _until(lambda: len(seen.periods(new_token)) >= after, f"{after} periods from {new}")
            late_ack = None
            if agent:
                late_ack = await _send_late(pub, seen, old_token, new_token, setup)
            new_holder = (await asyncio.to_thread(store.read_lease, DISPATCH_LEASE) or ("", 0, 0.0))[0]

            stop.set()
            await publisher
            watermarks = await _resend_until_stored(
                pub, setup, seen, store, lambda: {n: log(n)[-3000:] for n in procs}
            )
        samples = {s: await asyncio.to_thread(store.count_samples, s) for s in SITES}
        events = await asyncio.to_thread(functools.partial(store.read_events, site=EVENT_SITE))
        acquired = [
            e for e in events if e.kind == "dispatch_lease_acquired" and e.details.get("token") == new_token
        ]
        speed = setup.clock.speed or 1.0
        lease_wait_s = (acquired[0].ts - killed_sim).total_seconds() / speed if acquired else None
        return Outcome(
            seen=seen,
            old_holder=old_holder,
            new_holder=new_holder,
            old_token=old_token,
            new_token=new_token,
            killed_at=killed_at,
            first_new_command_at=first_new[0],
            late_ack=late_ack,
            lease_wait_s=lease_wait_s,
            watermarks=watermarks,
            samples=samples,
            events=events,
            logs={n: log(n) for n in procs},
        )
    finally:
        observer.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await observer
        for proc in procs.values():
            stop_controller(proc)
        store.close()


@contextlib.asynccontextmanager
async def _agent(setup: Setup, folder: Path) -> AsyncIterator[None]:
    """A real `EdgeAgent` for AGENT_SITE on a real Modbus server, on the shared clock; fencing required."""
    from tests.integration.edge_agent.helpers import make_config, running_agent
    from tests.integration.edge_agent.servers import ModbusServer

    def fenced(data: dict[str, Any]) -> None:
        data["commands"] = {"require_fence": True}

    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    server = await ModbusServer().start()
    try:
        cfg = make_config(
            folder, broker_port=setup.broker_port, modbus_port=server.port, site=AGENT_SITE, overrides=fenced
        )
        async with running_agent(cfg, clock=setup.clock):
            yield
    finally:
        await server.stop()


async def _send_late(pub: aiomqtt.Client, seen: Seen, old_token: int, new_token: int, setup: Setup) -> Ack:
    """A command the killed holder had in flight, delivered now: its token, a fresh cmd_id. Returns its ack.

    First waits until the agent has answered one of the survivor's commands (so it has seen the new token).
    """
    new_ids = {c.cmd_id for _, c in seen.commands if c.site == AGENT_SITE and c.fence == new_token}
    await _until(
        lambda: any(a.cmd_id in new_ids for a in seen.acks), "the agent's ack of a survivor's command"
    )
    (last,) = [c for _, c in seen.commands if c.site == AGENT_SITE and c.fence == old_token][-1:]
    now = setup.clock.now()
    late = last.model_copy(
        update={
            "cmd_id": f"{last.cmd_id}-late",
            "ts": now,
            "valid_from": now,
            "valid_until": last.valid_until + (now - last.ts),
        }
    )
    seen.injected.add(late.cmd_id)
    await pub.publish(site_topic(AGENT_SITE, "cmd"), encode(late), qos=1)
    await _until(
        lambda: any(a.cmd_id == late.cmd_id for a in seen.acks), "the agent's answer to the late command"
    )
    return next(a for a in seen.acks if a.cmd_id == late.cmd_id)


async def _resend_until_stored(
    pub: aiomqtt.Client, setup: Setup, seen: Seen, store: PostgresStore, logs: Any
) -> dict[str, int]:
    """Like an agent: resend what lies above the stored watermark until every sample is stored.

    One message per site and round (3 a round, an odd number): Mosquitto 2.0 keeps queueing a
    shared subscription's share for the killed worker's persistent session, round robin,
    so an even number of messages a round could send a site's resend to the dead one every time.
    """
    deadline = time.monotonic() + WAIT_S
    while True:
        marks = await asyncio.to_thread(store.watermarks)
        missing = {s: marks.get(s, -1) for s in SITES if marks.get(s, -1) < seen.next_seq[s] - 1}
        if not missing:
            return marks
        assert time.monotonic() < deadline, f"not stored within {WAIT_S} s: watermarks {marks}\n{logs()}"
        for site, mark in missing.items():
            first = mark + 1
            n = min(MAX_BATCH_SAMPLES, seen.next_seq[site] - first)
            await pub.publish(site_topic(site, "telemetry"), _batch(setup, site, first, n), qos=1)
        # an agent resends when the watermark stalls: wait for it to move (at most 2 s) first
        before = dict(marks)
        stall_until = time.monotonic() + 2.0
        while time.monotonic() < stall_until:
            marks = await asyncio.to_thread(store.watermarks)
            if marks != before:
                break
            await asyncio.sleep(0.05)
