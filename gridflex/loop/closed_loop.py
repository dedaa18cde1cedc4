"""The closed loop on one machine: buildings → agents → Mosquitto → controller → setpoints → equipment.

Everything runs for real except the calendar: the simulated buildings serve Modbus TCP
and BACnet/IP on loopback, each edge agent polls them and talks MQTT to a Mosquitto child
process, the cloud controller ingests, forecasts, plans and commands, and the agents
write the setpoints back over Modbus/BACnet. One `SimClock` at `settings.speed` drives the
physics, the agents and the controller.

The grid truth is measured from the physics, not from telemetry: each building's meter
energy at every control-period boundary gives its mean power over the interval, and a
pandapower AC power flow turns those into transformer loadings. Substation meters and
their agents run beside the fleet (`Fleet.add_substations`); the registry lists them as
grid meters (stored, watermarked, used by `/grid/state`; never planned or commanded).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType

from cloud_controller import CloudConfig, CloudController, GridMeterRef, Registry, SiteSnapshot, create_app
from gridflex.loop.agents import STOP_BOUND_S, Fleet, FleetOptions
from gridflex.loop.prior_history import PlannerWithPrior
from gridflex.loop.reference_run import initialise
from gridflex.loop.report import OPERATOR_TIMEZONE, CommandFigures, TelemetryFigures
from gridflex.loop.scenario import LoopScenario
from gridflex.loop.twin import scenario_planner, site_refs
from gridflex.ops.broker import BrokerTls, MosquittoBroker, site_acl
from gridflex.ops.certs import LoopbackPki
from gridflex.ops.runner import cancel_until_done
from protocols.clock import SimClock
from protocols.signing import SigningKey
from simulators.testbed import TestBedConfig

__all__ = ["ClosedLoop", "LoopResult"]

log = logging.getLogger(__name__)

#: The controller's broker identity (`<client_id>-<role>`, role all): its certificate's name.
CONTROLLER_CLIENT_ID = "gridflex-cloud"
CONTROLLER_IDENTITY = f"{CONTROLLER_CLIENT_ID}-all"


@dataclass
class LoopResult:
    """What the loop measured: per-interval site powers from the physics, commands, telemetry."""

    interval_starts: list[datetime] = field(default_factory=list)
    site_p_kw: dict[str, list[float]] = field(default_factory=dict)
    commands: CommandFigures = field(default_factory=CommandFigures)
    telemetry: TelemetryFigures = field(default_factory=lambda: TelemetryFigures(0, 0))
    failures: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    #: Commands never answered, by site (a site that went away mid-period leaves some).
    missing_by_site: dict[str, int] = field(default_factory=dict)


class _NoHistory:
    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        return []


def _registry(scenario: LoopScenario, fleet: Fleet) -> Registry:
    """The registry of the TestBed's buildings (the same view the offline twin plans with).

    With substation meters, each is a grid meter: stored and used by `/grid/state`, never planned.
    """
    subs = fleet.substations.sites if fleet.substations is not None else []
    return Registry(
        sites=site_refs(fleet.bed.buildings, scenario.household_of_site, bacnet=scenario.settings.bacnet),
        grid_meters=tuple(GridMeterRef(site=s.site, station=s.station) for s in subs),
    )


class ClosedLoop:
    """`async with ClosedLoop(scenario, out_dir) as loop: await loop.run_until(t)`."""

    def __init__(self, scenario: LoopScenario, out_dir: Path, *, api_port: int = 0) -> None:
        """`api_port`: where the controller serves its API and dashboard (0: a free port)."""
        self.scenario = scenario
        self.api_port = api_port
        self.settings = scenario.settings
        self.out_dir = out_dir
        # Mutual TLS and signed commands, as deployed: throwaway CA, certificates and keys
        # made at start in the run's folder; the broker listens on loopback only.
        self.pki = LoopbackPki(out_dir / "pki")
        ca, cert, key = self.pki.broker_files()
        self.broker = MosquittoBroker(
            workdir=out_dir / "mosquitto",
            tls=BrokerTls(ca_file=ca, cert_file=cert, key_file=key),
            acl=site_acl(cloud_users=[CONTROLLER_IDENTITY]),
            bind_client_id=True,
        )
        self.clock = SimClock(self.settings.start, speed=self.settings.speed)
        self.fleet: Fleet | None = None
        self.controller: CloudController | None = None
        self._controller_task: asyncio.Task[None] | None = None
        self.planner: PlannerWithPrior | None = None
        self.result = LoopResult()
        self._energy_at: dict[str, float] = {}
        self._boundary: datetime = self.settings.start
        self._boundary_at: datetime = self.settings.start
        self._wall0 = 0.0

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> ClosedLoop:
        self._wall0 = time.monotonic()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.pki.generate)
        await asyncio.to_thread(self.broker.start)
        s = self.settings
        bed = TestBedConfig(
            n_sites=s.n_sites,
            seed=s.seed,
            start=s.profile_start,
            step_s=s.physics_step_s,
            broker_port=self.broker.port,
            bacnet=s.bacnet,
            specs=self.scenario.specs,
            profile_days=s.profile_days,
        )
        options = FleetOptions(
            poll_interval_s=s.poll_s,
            poll_max_age_s=s.period_s,
            fallback_after_s=3 * s.period_s,
            pki=self.pki,
        )
        self.fleet = Fleet(
            bed, bed_clock=SimClock(s.start), out_dir=self.out_dir / "testbed", options=options
        )
        try:
            await self.fleet.__aenter__()
            await self.fleet.add_substations(self.scenario.truth, broker_port=self.broker.port)
            initialise(list(self.fleet.bed.buildings.values()), seed=s.seed)
            self.registry = _registry(self.scenario, self.fleet)
            # The LP is built and solved once before time runs: building it takes seconds of
            # CPU that would otherwise stall the accelerated physics and agents.
            self.planner = await asyncio.to_thread(self._build_planner)
            self.clock = SimClock(s.start, speed=s.speed)  # time runs from here
            self.fleet.start(self.clock)
            self._mark_energy()
            await self.start_controller()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_controller()
        if self.fleet is not None:
            await self.fleet.__aexit__(exc_type, exc, tb)
        await asyncio.to_thread(self.broker.close)

    def _build_planner(self) -> PlannerWithPrior:
        s = self.settings
        keys = {}
        for site in self.registry.ids:
            kid, path = self.pki.signing_key(site)
            keys[site] = SigningKey(bytes.fromhex(path.read_text().strip()), kid)
        wrapped = scenario_planner(
            self.scenario, self.registry.sites, signing_keys=keys, market_only_sites=self.market_only_sites()
        )
        snapshots = {site.site: SiteSnapshot(site=site.site, mode="unknown") for site in self.registry.sites}
        wrapped.plan(s.start, snapshots, _NoHistory())  # warm-up: the first HiGHS solve is the slow one
        return wrapped

    def market_only_sites(self) -> tuple[str, ...]:
        """Sites the planner and guard never steer (none here; the market demo's FSP portfolios)."""
        return ()

    def cloud_config(self) -> CloudConfig:
        """The controller's configuration: this loop's broker and store, the scenario's control settings."""
        s = self.settings
        cert, key = self.pki.client(CONTROLLER_IDENTITY)
        return CloudConfig.model_validate(
            {
                "broker": {
                    "host": "127.0.0.1",
                    "port": self.broker.port,
                    "client_id": CONTROLLER_CLIENT_ID,
                    "tls": {"ca_file": str(self.pki.ca_file), "cert_file": str(cert), "key_file": str(key)},
                },
                "signing_keys_dir": str(self.pki.signing_dir),
                "store": {"kind": "sqlite", "path": str(self.out_dir / "cloud" / "store.sqlite")},
                "control": {
                    "period_s": s.period_s,
                    "horizon_steps": s.horizon_steps,
                    "margin_s": s.margin_s,
                    "station_limit_kw": self.scenario.controller_limit_kw,
                    "battery_control": s.battery_control,
                    "forecast_z": s.forecast_z,
                    # the guard steps a few times per telemetry interval and acts on fresh data only
                    "guard_period_s": s.poll_s / 4.0,
                    "congestion_scenarios": s.congestion_scenarios,
                },
                "api": {"host": "127.0.0.1", "port": self.api_port},
                "dashboard": {"timezone": OPERATOR_TIMEZONE},
                # one dispatcher and an accelerated clock: the default 10 s renewals would be
                # dozens of store writes per wall second; a restart follows a release anyway
                "lease": {"ttl_s": min(3600.0, 2 * s.period_s), "renew_s": s.period_s / 3},
            }
        )

    async def start_controller(self) -> None:
        """Start (or restart) the controller; a restart reads the same store file."""
        if self._controller_task is not None:
            raise RuntimeError("controller already running")
        (self.out_dir / "cloud").mkdir(parents=True, exist_ok=True)
        self.controller = CloudController(
            self.cloud_config(), self.registry, clock=self.clock, planner=self.planner
        )
        self._controller_task = asyncio.create_task(self.controller.run(), name="controller")

    async def stop_controller(self) -> None:
        """Stop the controller between two periods.

        In-flight acks are awaited (≤ 2 s wall), then the task is cancelled (no state is
        saved beyond what the store already holds).
        """
        task, self._controller_task = self._controller_task, None
        if task is not None:
            if not task.done():
                await self._wait_acks(2.0)
            await cancel_until_done(task, bound_s=STOP_BOUND_S)
            self._absorb_controller_stats()

    # -- running ---------------------------------------------------------------------

    def _meter_energy(self) -> dict[str, float]:
        assert self.fleet is not None
        return {
            site: b.meter.e_import_kwh - b.meter.e_export_kwh for site, b in self.fleet.bed.buildings.items()
        }

    def _mark_energy(self) -> None:
        self._energy_at = self._meter_energy()
        self._boundary_at = self.clock.now()

    def _sample_interval(self) -> None:
        """At a control-period boundary: each site's mean power over the interval just ended."""
        now = self.clock.now()
        dt_h = (now - self._boundary_at).total_seconds() / 3600.0
        energy = self._meter_energy()
        self.result.interval_starts.append(self._boundary)
        for site, e_kwh in energy.items():
            p_kw = (e_kwh - self._energy_at[site]) / dt_h if dt_h > 0 else 0.0
            self.result.site_p_kw.setdefault(site, []).append(p_kw)
        self._energy_at, self._boundary_at = energy, now
        self._boundary += timedelta(seconds=self.settings.period_s)

    def check(self) -> None:
        """Raise if a part died: the demo must not report figures of a loop that broke."""
        assert self.fleet is not None
        failed = dict(self.fleet.failed())
        task = self._controller_task
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            failed["controller"] = task.exception()  # type: ignore[assignment]
        if failed:
            names = ", ".join(f"{k}: {v!r}" for k, v in failed.items())
            raise RuntimeError(f"closed loop broke: {names}")

    async def run_until(self, t_end: datetime, *, progress: Callable[[datetime], None] | None = None) -> None:
        """Let simulated time run to `t_end`, sampling the grid truth at every period boundary."""
        period = timedelta(seconds=self.settings.period_s)
        while self.clock.now() < t_end:
            await asyncio.sleep(0.02)
            self.check()
            if self.clock.now() >= self._boundary + period:
                self._sample_interval()
            if progress is not None:
                progress(self.clock.now())

    async def drain(self, timeout_s: float = 30.0) -> dict[str, int]:
        """Wait (wall time) until the controller stored every queued sample, and for the last acks.

        The samples are those the agents had queued at the end of the run; returns that
        per-site count of samples.
        """
        assert self.fleet is not None and self.controller is not None
        deadline = time.monotonic() + timeout_s
        produced = {s: a.stats.next_seq for s, a in self.fleet.agents.items() if s in self.registry.ids}
        while time.monotonic() < deadline:
            stored = {s: self.controller.store.highest_contiguous_seq(s) + 1 for s in produced}
            if all(stored[s] >= produced[s] for s in produced):
                break
            await asyncio.sleep(0.2)
        await self._wait_acks(max(1.0, deadline - time.monotonic()))
        return produced

    # -- figures ---------------------------------------------------------------------

    def _absorb_controller_stats(self) -> None:
        """Add a controller incarnation's commands (a restart starts a new tracker).

        Only commands issued before the end of the run count: the clock keeps running
        while the loop drains, and a command sent in that tail has no time to be answered.
        """
        if self.controller is None:
            return
        end = self.settings.end
        tracked = [t for t in self.controller.tracker.sent.values() if t.command.valid_from <= end]
        by: dict[str, int] = {}
        for t in tracked:
            status = t.status or "missing"
            by[status] = by.get(status, 0) + 1
            if status == "missing":
                site = t.command.site
                self.result.missing_by_site[site] = self.result.missing_by_site.get(site, 0) + 1
        c = self.result.commands
        self.result.commands = CommandFigures(
            sent=c.sent + len(tracked),
            applied=c.applied + by.get("applied", 0),
            clamped=c.clamped + by.get("clamped", 0),
            rejected=c.rejected + by.get("rejected", 0),
            expired=c.expired + by.get("expired", 0),
            failed=c.failed + by.get("failed", 0),
            missing=c.missing + by.get("missing", 0),
        )

    async def _wait_acks(self, timeout_s: float) -> None:
        """Until every command issued before the end of the run is answered (or the timeout)."""
        assert self.controller is not None
        end = self.settings.end
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pending = [
                t
                for t in self.controller.tracker.sent.values()
                if t.status is None and t.command.valid_from <= end
            ]
            if not pending:
                return
            await asyncio.sleep(0.1)

    def telemetry(self, produced_by_site: dict[str, int]) -> TelemetryFigures:
        """Samples queued by the agents up to the end of the run vs. those stored contiguously."""
        assert self.controller is not None
        produced = sum(produced_by_site.values())
        delivered = sum(
            min(n, self.controller.store.highest_contiguous_seq(s) + 1) for s, n in produced_by_site.items()
        )
        st = self.controller.ingest.stats
        return TelemetryFigures(
            produced=produced, delivered=delivered, duplicates=st.duplicates, gaps=st.gaps
        )

    async def finish(self) -> LoopResult:
        """Drain, collect the figures, stop the controller; the fleet stops on `__aexit__`."""
        produced = await self.drain()
        self.result.telemetry = self.telemetry(produced)
        await self.stop_controller()
        self.result.wall_s = time.monotonic() - self._wall0
        return self.result

    # -- after the run ----------------------------------------------------------------

    def finished_controller(self) -> CloudController:
        """The finished run as a controller that only answers HTTP: its store, last plan, commands, sites.

        Why a second one: the run's controller closed its store when it stopped, and its
        clock kept running. This one reopens the same store file, keeps the final state
        and stands its clock still at the end, so "the last hour" stays the run's last hour.
        """
        run = self.controller
        if run is None:
            raise RuntimeError("the loop never started its controller")
        after = CloudController(
            self.cloud_config(), self.registry, clock=SimClock(self.clock.now()), planner=self.planner
        )
        after.snapshots.update(run.snapshots)
        after.tracker, after.stats, after.last_plan = run.tracker, run.stats, run.last_plan
        after.ingest.stats, after.dr_requests = run.ingest.stats, run.dr_requests
        return after


async def _bind(port: int, bound_s: float = 10.0) -> socket.socket:
    """127.0.0.1:`port`, retried for `bound_s`: the run's controller may still be letting it go."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound_s
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)
        else:
            return sock


async def serve_dashboard(controller: CloudController, port: int) -> None:
    """Serve `controller`'s API and dashboard on 127.0.0.1:`port` until cancelled; its store closes after.

    The socket is bound here, not by uvicorn, which exits the process when a bind fails;
    here that is an OSError. uvicorn's `_serve`, not `serve`, as the controller does:
    `serve` takes the process's SIGINT handler, which belongs to the command line.
    """
    import uvicorn

    sock = await _bind(port)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(controller), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    task = asyncio.create_task(server._serve(sockets=[sock]), name="dashboard")
    try:
        await asyncio.shield(task)  # a cancel stops uvicorn below, by should_exit, so it shuts down
    finally:
        server.should_exit = True  # a graceful stop first, then cancels, all bounded
        await asyncio.wait({task}, timeout=5.0)
        await cancel_until_done(task, bound_s=STOP_BOUND_S)
        sock.close()
        controller.store.close()
