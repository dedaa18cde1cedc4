"""A real controller (own thread and event loop, real Mosquitto, real uvicorn) for browser tests.

Why a thread: Playwright's sync API refuses to run inside a running asyncio loop, and the
controller is an asyncio service; so the controller gets its own loop in a thread and the
test drives the browser and publishes real MQTT messages from the main thread.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np

from cloud_controller.config import CloudConfig
from cloud_controller.live.types import AssetRef, CongestionInterval, History, Plan, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from protocols.assets import BATTERY, METER, Points
from protocols.clock import RealClock
from protocols.codec import encode
from protocols.messages import Command, Sample, SiteState, TelemetryBatch
from protocols.topics import site_topic

CHROMIUM = "/usr/bin/chromium"
LIMIT_KW = 40.0
HORIZON = 16


def chromium_or_fail() -> str:
    """The system Chromium; a missing one is a set-up error (Debian package `chromium`), never a skip."""
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        raise AssertionError(
            "Debian's chromium is not installed: `apt-get install -y chromium` (the dashboard's browser "
            "tests need it; Playwright's own browser download does not work offline)"
        )
    return path


def site_ids(n: int) -> list[str]:
    return [f"b{i:04d}" for i in range(n)]


def registry(n: int) -> Registry:
    return Registry(
        sites=tuple(
            SiteRef(s, i, (AssetRef(METER, "meter"), AssetRef(BATTERY, "battery", 5.0, 10.0)))
            for i, s in enumerate(site_ids(n))
        )
    )


class StandInPlanner:
    """A plan with every field the pages draw (horizon, bands, congestion, one command per site).

    `region`: a network for the grid page to draw (the real planner exposes its own)."""

    def __init__(self, region: Any = None) -> None:
        self.region = region

    def plan(self, now: datetime, sites: Any, history: History) -> Plan:
        n = len(sites)
        start = datetime.fromtimestamp(now.timestamp() - now.timestamp() % 900, tz=UTC)
        base = [LIMIT_KW * (0.8 + 0.4 * np.sin(k / 3.0)) for k in range(HORIZON)]
        planned = [min(b, 0.95 * LIMIT_KW) for b in base]
        cmds = [
            Command(
                site=s,
                ts=now,
                cmd_id=f"c-{s}-{now.timestamp():.3f}",
                asset=BATTERY,
                kind="p_setpoint_kw",
                value=-1.5,
                valid_from=now,
                valid_until=now + timedelta(seconds=900),
            )
            for s in list(sites)[:50]
        ]
        congestion = [
            CongestionInterval(start + timedelta(seconds=900 * k), "hvmv", 100 * b / LIMIT_KW, 0.1)
            for k, b in enumerate(base)
        ]
        return Plan(
            at=now,
            period_s=900.0,
            commands=cmds,
            root_baseline_kw=base,
            root_planned_kw=planned,
            station_limit_kw=LIMIT_KW,
            congestion=congestion,
            site_setpoints={c.site: {BATTERY: -1.5} for c in cmds},
            solve_ms=1.0,
            excluded_sites=[],
            site_forecast_kw=None,
            site_sigma_kw=np.full((HORIZON, max(n, 1)), 0.3),
        )

    def correct(self, now: datetime, sites: Any) -> list[Command]:
        return []


class RunningController:
    """The controller's loop in a thread; `call` runs a coroutine on it from the test's thread."""

    def __init__(self, ctl: CloudController) -> None:
        self.ctl = ctl
        self.loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="controller", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._task = self.loop.create_task(self.ctl.run())
        try:
            self.loop.run_until_complete(self._task)
        except (asyncio.CancelledError, Exception):
            pass
        finally:
            self.loop.close()

    def start(self) -> RunningController:
        self._thread.start()
        wait_until(lambda: self.ctl.api_port is not None and self.ctl.session.connected.is_set(), 20)
        return self

    def call(self, coro: Any, timeout_s: float = 30.0) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout_s)

    def stop(self) -> None:
        if self._task is not None:
            self.loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ctl.api_port}"


def wait_until(pred: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.05)


def config(broker_port: int, tmp: Path, **dashboard: Any) -> CloudConfig:
    return CloudConfig.model_validate(
        {
            "broker": {"port": broker_port, "client_id": f"web-{tmp.name[-20:].replace('.', '-')}"},
            "store": {"path": str(tmp / "store.sqlite")},
            "control": {"dispatch": False, "station_limit_kw": LIMIT_KW, "guard_period_s": 0},
            "api": {"port": 0},
            "dashboard": dashboard,
        }
    )


@contextmanager
def controller(
    broker_port: int, tmp: Path, n_sites: int, *, region: Any = None, **dashboard: Any
) -> Iterator[RunningController]:
    ctl = CloudController(
        config(broker_port, tmp, **dashboard),
        registry(n_sites),
        clock=RealClock(),
        planner=StandInPlanner(region),
    )
    running = RunningController(ctl).start()
    try:
        yield running
    finally:
        running.stop()


def telemetry(
    site: str, seq0: int, at: Sequence[datetime], p_kw: Sequence[float], soc_pct: float | Sequence[float]
) -> bytes:
    """Meter power and battery SoC at each time of `at` (seq0, seq0 + 1, ... in that order)."""
    socs = [soc_pct] * len(at) if isinstance(soc_pct, float | int) else list(soc_pct)
    samples = []
    for k, (ts, p, soc) in enumerate(zip(at, p_kw, socs, strict=True)):
        samples.append(Sample(seq=seq0 + 2 * k, asset=METER, point="p_kw", value=p, unit="kW", ts=ts))
        samples.append(
            Sample(
                seq=seq0 + 2 * k + 1,
                asset=BATTERY,
                point=Points.BATTERY_SOC_PCT.point,
                value=soc,
                unit="pct",
                ts=ts,
            )
        )
    return encode(TelemetryBatch(site=site, ts=at[-1], samples=samples))


def publish(running: RunningController, port: int, messages: Sequence[tuple[str, bytes, bool]]) -> None:
    """Publish (topic, payload, retain) at QoS 1 through the real broker, in order.

    On the controller's loop: the test's thread has Playwright's loop running in it."""

    async def go() -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"test-pub-{time.monotonic_ns()}") as c:
            for topic, payload, retain in messages:
                await c.publish(topic, payload, qos=1, retain=retain)

    running.call(go())


def publish_last_hour(running: RunningController, port: int, site: str, seq0: int) -> int:
    """A minute-by-minute hour of an evening profile for `site`; returns the next free seq."""
    now = datetime.now(UTC)
    at = [now - timedelta(minutes=60 - m) for m in range(60)]
    p_kw = [2.0 + 3.0 * np.sin(m / 9.0) + (4.0 if 20 <= m < 35 else 0.0) for m in range(60)]
    soc = [30.0 + 0.8 * m for m in range(60)]
    publish(running, port, [(site_topic(site, "telemetry"), telemetry(site, seq0, at, p_kw, soc), False)])
    return seq0 + 2 * len(at)


def bring_online(running: RunningController, port: int, sites: Sequence[str], p_kw: float = 1.0) -> None:
    """Every site reports online and one telemetry sample (meter p_kw, battery SoC) now; waits for ingest."""
    now = datetime.now(UTC)
    before = running.ctl.ingest.stats.batches
    msgs: list[tuple[str, bytes, bool]] = []
    for s in sites:
        msgs.append((site_topic(s, "state"), encode(SiteState(site=s, ts=now, status="online")), True))
        msgs.append((site_topic(s, "telemetry"), telemetry(s, 0, [now], [p_kw], 50.0), False))
    publish(running, port, msgs)
    wait_until(lambda: running.ctl.ingest.stats.batches >= before + len(sites), 30)
