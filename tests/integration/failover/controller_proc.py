"""One controller process of the failover test: an ingest worker and a dispatcher on the shared PostgreSQL.

Started by `start_controller` as a forked child (the test process has already imported the
controller, so a child is up in a fraction of a second instead of re-importing it), in its
own working directory (its config, registry, DR/market SQLite files and log: no shared
files). Every process gets the same accelerated `SimClock` (made before the fork, so all
agree on simulated time: CLOCK_MONOTONIC is one per machine). SIGTERM is a clean exit
(the lease is released); the test SIGKILLs the holder by its PID.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.process
import os
import signal
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cloud_controller.config import load_cloud_config
from cloud_controller.live.types import History, Plan
from cloud_controller.registry import load_registry
from cloud_controller.service import CloudController
from protocols.assets import EV
from protocols.clock import SimClock
from protocols.messages import Command

SITES = ("s1", "s2", "s3")  # telemetry published by the test
AGENT_SITE = "t1"  # a real edge agent on a real Modbus server (tests/integration/edge_agent/helpers.py)
COMMANDED = (*SITES, AGENT_SITE)
PERIOD_S = 60.0  # simulated; the config's minimum
STOP_S = 15.0  # a clean exit's bound before SIGKILL


@dataclass(frozen=True)
class Setup:
    """What every controller process shares: the broker, the database, the clock and the lease's timing."""

    broker_port: int
    dsn: str
    password: str
    clock: SimClock
    ttl_s: float  # simulated seconds
    renew_s: float


def period_index(ts: datetime) -> int:
    """Which control period (of PERIOD_S simulated seconds since the epoch) `ts` falls in."""
    return int(ts.timestamp() // PERIOD_S)


class PeriodPlanner:
    """One EV limit per site per plan, its cmd_id naming the site and period: counted on the broker."""

    def __init__(self, name: str) -> None:
        self.name = name

    def plan(self, now: datetime, sites: object, history: History) -> Plan:
        k = period_index(now)
        commands = [
            Command(
                site=site,
                ts=now,
                cmd_id=f"{site}-p{k}-{self.name}",
                asset=EV,
                kind="p_limit_kw",
                value=6.9,
                valid_from=now,
                valid_until=now + timedelta(seconds=PERIOD_S),
            )
            for site in COMMANDED
        ]
        return Plan(now, PERIOD_S, commands, [1.0], [1.0], float("inf"), [], {}, 0.1, [])

    def correct(self, now: datetime, sites: object) -> list[Command]:
        return []


def write_config(workdir: Path, name: str, setup: Setup) -> Path:
    """This process's own config and registry (client id per process, store on the shared database)."""
    workdir.mkdir(parents=True, exist_ok=True)
    assets = f"[{{asset: meter, kind: meter}}, {{asset: {EV}, kind: ev, p_nominal_kw: 11.0}}]"
    agent = f"[{{asset: pv1, kind: pv}}, {{asset: bat1, kind: battery}}, {{asset: {EV}, kind: ev}}]"
    (workdir / "reg.yaml").write_text(
        "sites:\n"
        + "".join(f"  - {{site: {s}, region_site: {i}, assets: {assets}}}\n" for i, s in enumerate(SITES))
        + f"  - {{site: {AGENT_SITE}, region_site: {len(SITES)}, assets: {agent}}}\n"
    )
    (workdir / "pg.password").write_text(setup.password + "\n")
    cfg = workdir / "cloud.yaml"
    cfg.write_text(
        f"broker: {{port: {setup.broker_port}, client_id: failover-{name}}}\n"
        "registry: reg.yaml\n"
        f'store: {{kind: postgres, dsn: "{setup.dsn}", password_file: pg.password, path: own.sqlite}}\n'
        f"control: {{period_s: {PERIOD_S}, guard_period_s: 0}}\n"
        f"lease: {{ttl_s: {setup.ttl_s}, renew_s: {setup.renew_s}}}\n"
        "api: {enabled: false}\n"
    )
    return cfg


def _child(workdir: Path, name: str, setup: Setup) -> None:
    """The child's main: log to its folder, run both roles until SIGTERM (clean) or SIGKILL."""
    root = logging.getLogger()
    for handler in list(root.handlers):  # the parent's (pytest's) handlers are not ours
        root.removeHandler(handler)
    handler = logging.FileHandler(workdir / "controller.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    cfg = load_cloud_config(workdir / "cloud.yaml")
    registry = load_registry(workdir / "reg.yaml")

    async def main() -> None:
        ingest = CloudController(cfg, registry, clock=setup.clock, role="ingest")
        dispatch = CloudController(
            cfg, registry, clock=setup.clock, planner=PeriodPlanner(name), role="dispatch"
        )
        task = asyncio.gather(ingest.run(), dispatch.run())
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            logging.getLogger(__name__).info("controller %s stopped by SIGTERM", name)

    asyncio.run(main())


def start_controller(workdir: Path, name: str, setup: Setup) -> multiprocessing.process.BaseProcess:
    """Fork one controller process (ingest + dispatcher) in `workdir`; returns it (its `pid`)."""
    write_config(workdir, name, setup)
    proc = multiprocessing.get_context("fork").Process(
        target=_child, args=(workdir, name, setup), name=f"controller-{name}", daemon=True
    )
    proc.start()
    return proc


def stop_controller(proc: multiprocessing.process.BaseProcess) -> int | None:
    """SIGTERM by PID (a clean exit releases the lease), bounded; then SIGKILL. Returns the exit code."""
    if proc.is_alive() and proc.pid is not None:
        os.kill(proc.pid, signal.SIGTERM)
        proc.join(STOP_S)
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(5)
    return proc.exitcode
