"""The test bed's roles, each a `spawn` process: N buildings with their edge agents, and one ingest worker.

Why a module of their own: these are the processes the bench runs (`gridflex/bench/testbed.py`
starts, measures and stops them); each reports through multiprocessing counters and a queue
only, so it stops by its own event (and by PID if it does not).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

__all__ = ["CONNECT_S", "READY_S", "run_buildings", "run_ingest_worker", "site_name"]

READY_S = 300.0  # bound on a building process's start (its Modbus servers, site files)
CONNECT_S = 120.0  # bound on every agent connecting once started


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
            n_sites=n, seed=seed + k, start=start, step_s=1.0, broker_port=port, bacnet=False, specs=specs
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
