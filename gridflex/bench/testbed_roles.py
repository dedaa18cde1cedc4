"""The test bed's roles, each a `spawn` process: N buildings with their agents, an ingest worker, a command sender.

Why a module of their own: these are the processes the bench runs (`gridflex/bench/testbed.py`
starts, measures and stops them); each reports through multiprocessing counters and a queue
only, so it stops by its own event (and by PID if it does not).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, replace
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

__all__ = [
    "ACK_WAIT_S",
    "CONNECT_S",
    "READY_S",
    "CommandFigures",
    "command_target",
    "run_buildings",
    "run_command_sender",
    "run_ingest_worker",
    "site_name",
]

READY_S = 300.0  # bound on a building process's start (its Modbus servers, site files)
CONNECT_S = 120.0  # bound on every agent connecting once started
ACK_WAIT_S = 20.0  # bound on the wait for the last round's acks once the window closed


def site_name(k: int, site: str) -> str:
    """Process `k`'s building `site` (b001...) as the fleet registers it: unique over the processes."""
    return f"p{k}-{site}"


def run_buildings(  # noqa: PLR0913, PLR0917 (a spawn target's arguments)
    port: int,
    k: int,
    n: int,
    seed: int,
    poll_s: float,
    max_age_s: float,
    modbus_timeout_s: float,
    out_dir: str,
    ready: MpEvent,
    go: MpEvent,
    stop: MpEvent,
    published: Synchronized[int],
    connected: Synchronized[int],
    errors: Any,
) -> None:
    """Spawn target: `n` buildings with their agents until `stop`; counters in `published`/`connected`."""
    from datetime import UTC, datetime

    from gridflex.loop.agents import Fleet, FleetOptions
    from protocols.clock import RealClock, SimClock
    from simulators.fleet import draw_specs
    from simulators.testbed import TestBedConfig

    async def run() -> None:
        start = datetime.now(UTC).replace(microsecond=0)
        specs = tuple(replace(s, site=site_name(k, s.site)) for s in draw_specs(n, seed=seed + k))
        cfg = TestBedConfig(
            n_sites=n,
            seed=seed + k,
            start=start,
            step_s=1.0,
            broker_port=port,
            bacnet=False,
            specs=specs,
            modbus_timeout_s=modbus_timeout_s,
        )
        options = FleetOptions(
            poll_interval_s=poll_s, poll_max_age_s=max_age_s, fallback_after_s=max(300.0, 40 * poll_s)
        )
        async with Fleet(cfg, bed_clock=SimClock(start), out_dir=Path(out_dir), options=options) as fleet:
            ready.set()
            await asyncio.to_thread(go.wait, READY_S + CONNECT_S)
            fleet.start(RealClock())
            reported = False
            while not stop.is_set():
                await asyncio.sleep(0.25)
                published.value = sum(a.stats.published for a in fleet.agents.values())
                connected.value = sum(bool(a.stats.connected) for a in fleet.agents.values())
                failed = fleet.failed()
                if failed and not reported:
                    errors.put((f"buildings-{k}", {name: repr(e) for name, e in failed.items()}))
                    reported = True
            published.value = sum(a.stats.published for a in fleet.agents.values())

    asyncio.run(run())


def run_ingest_worker(  # noqa: PLR0913, PLR0917 (a spawn target's arguments)
    port: int,
    store: dict[str, Any],
    registry: Any,
    index: int,
    ready: MpEvent,
    stop: MpEvent,
    stored: Synchronized[int],
    out: Any,
    batch_messages: int,
) -> None:
    """Spawn target: one ingest worker on the `store:` section `store` until `stop`; puts (index, stored, [(t_commit, latency_s)]) on `out`."""
    from cloud_controller import CloudConfig, CloudController
    from protocols.clock import RealClock

    cfg = CloudConfig.model_validate(
        {
            "broker": {"port": port, "client_id": f"testbed-ingest-{index}"},
            "store": store | {"ingest_batch_messages": batch_messages},
            "control": {"dispatch": False},
            "api": {"enabled": False},
        }
    )
    timings: list[tuple[float, float]] = []
    publish_lags: list[tuple[float, float]] = []

    async def run() -> int:
        ctl = CloudController(cfg, registry, clock=RealClock(), role="ingest")

        def on_stored(batch: Any, result: Any) -> None:
            # instrumentation, not a stand-in: called after the real commit (batched or not)
            now = time.time()
            if result.inserted:
                timings.extend((now, now - s.ts.timestamp()) for s in batch.samples)
            publish_lags.append((now, now - batch.ts.timestamp()))  # agent's publish → stored

        ctl.ingest.on_stored.append(on_stored)
        task = asyncio.create_task(ctl.run())
        await ctl.session.wait_connected(30)
        await asyncio.sleep(0.5)  # the subscription is in place before the agents start
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.25)
            stored.value = ctl.ingest.stats.samples_stored
        stored.value = ctl.ingest.stats.samples_stored
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return ctl.ingest.stats.samples_stored

    n = asyncio.run(run())
    out.put((index, n, timings, publish_lags))


@dataclass(frozen=True)
class CommandFigures:
    """The command sender's figures: decision → ack host times (its monotonic clock) and what became of each command.

    `acks` counts the first answer per command by status (applied, clamped, rejected,
    expired, failed); `missing` were sent and never answered within ACK_WAIT_S after the
    window; `reasons` counts the refusals' reasons (rejected/failed/expired, the first 80 chars,
    every number as `#`, so "cannot connect to 127.0.0.1:#" is one reason over the sites).
    """

    rounds: int
    sent: int
    acks: dict[str, int]
    missing: int
    publish_failed: int
    reasons: dict[str, int]
    applied_ms: tuple[float, ...]  # decision → `applied` ack, sorted
    answered_ms: tuple[float, ...]  # decision → any ack, sorted

    @property
    def applied(self) -> int:
        """Commands acked `applied`."""
        return self.acks.get("applied", 0)


def command_target(site: Any) -> tuple[str, str, float]:
    """(asset, kind, value) of the one command a test-bed site gets each round; valid for every site.

    Battery: setpoint 0 kW (within any rating, no ramp); else the EV charger's, heat pump's or
    PV's power limit at its nominal kW (a release: no behaviour changed); a meter-only site
    its site import cap at 50 kW (a DSO cap the agent holds with its own devices).
    """
    from protocols.assets import Role
    from protocols.messages import SITE_IMPORT_MAX_KW

    if (bat := site.asset_of(Role.BATTERY)) is not None:
        return bat.asset, "p_setpoint_kw", 0.0
    for role in (Role.EV, Role.HP, Role.PV):
        a = site.asset_of(role)
        if a is not None and a.p_nominal_kw:
            return a.asset, "p_limit_kw", float(a.p_nominal_kw)
    meter = site.asset_of(Role.METER)
    if meter is None:
        raise ValueError(f"site {site.site!r} has no asset a command can address")
    return meter.asset, SITE_IMPORT_MAX_KW, 50.0


def run_command_sender(
    port: int,
    store: dict[str, Any],
    registry: Any,
    every_s: float,
    ready: MpEvent,
    go: MpEvent,
    stop: MpEvent,
    out: Any,
) -> None:
    """Spawn target: a controller in the `dispatch` role that sends every site one command per round.

    Why not a stand-in: the commands are built by the dispatcher's `CommandBuilder` and leave
    through `CloudController._publish_commands` (the one sender the plan, the guard and DR
    use: fence, signature, tracker registration, QoS 1 publish); the acks come back on the
    `+/ack` subscription of the dispatch role into the same `CommandTracker`. From `go` until
    `stop`, a round every `every_s`; then up to ACK_WAIT_S for the last acks. Puts a
    `CommandFigures` on `out`.
    """
    from cloud_controller import CloudConfig, CloudController, CommandBuilder, signing_keys
    from protocols.clock import RealClock

    cfg = CloudConfig.model_validate(
        {
            "broker": {"port": port, "client_id": "testbed-commands"},
            "store": store,
            "control": {"dispatch": False},  # no planner, no lease: the rounds below are the decisions
            "api": {"enabled": False},
        }
    )

    async def run() -> CommandFigures:
        ctl = CloudController(cfg, registry, clock=RealClock(), role="dispatch")
        builder = CommandBuilder(period_s=every_s, margin_s=60.0, signing_keys=signing_keys(cfg, registry))
        targets = [(s.site, command_target(s)) for s in registry.sites]
        task = asyncio.create_task(ctl.run())
        await ctl.session.wait_connected(30)
        await asyncio.sleep(0.5)  # the ack subscription is in place
        ready.set()
        await asyncio.to_thread(go.wait, READY_S + CONNECT_S)
        rounds = 0
        while not stop.is_set():
            t_round = time.monotonic()
            now = ctl.clock.now()
            valid_until = builder.valid_until(now)
            cmds = [builder.one(now, site, a, kind, v, valid_until) for site, (a, kind, v) in targets]
            await ctl._publish_commands(cmds)  # the dispatcher's sender, as DR's activator uses it
            rounds += 1
            await asyncio.to_thread(stop.wait, max(0.0, t_round + every_s - time.monotonic()))
        sent = ctl.tracker.sent
        for _ in range(int(ACK_WAIT_S / 0.1)):  # the last round's acks, bounded
            if all(t.status is not None for t in sent.values()):
                break
            await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        reasons: dict[str, int] = {}
        for t in sent.values():
            if t.ack is not None and t.status not in ("applied", "clamped") and t.ack.reason:
                key = (
                    f"{t.status}: {re.sub(r'[0-9]+', '#', t.ack.reason)[:80]}"  # ports, registers: one reason
                )
                reasons[key] = reasons.get(key, 0) + 1
        acks = {k: v for k, v in ctl.tracker.counts.items() if k not in ("sent", "publish_failed")}
        return CommandFigures(
            rounds=rounds,
            sent=ctl.tracker.counts.get("sent", 0),
            acks=acks,
            missing=sum(t.status is None for t in sent.values()),
            publish_failed=ctl.tracker.counts.get("publish_failed", 0),
            reasons=reasons,
            applied_ms=tuple(
                sorted(
                    v for t in sent.values() if t.status == "applied" and (v := t.ack_latency_ms) is not None
                )
            ),
            answered_ms=tuple(ctl.tracker.ack_latencies_ms()),
        )

    out.put(asyncio.run(run()))
