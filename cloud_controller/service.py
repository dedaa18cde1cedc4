"""The cloud controller service: ingest, watermarks, the control loop, commands, the HTTP API.

Roles (for scale-out): `ingest` takes telemetry and events from the shared subscription
`$share/gridflex-ingest/...` (several workers split the sites' messages) and publishes
watermarks; `dispatch` follows state, flex envelopes and acks, plans every period and
publishes commands; `all` (default) does both in one process.

Restart: the store holds the watermarks and the samples; retained `state` and `flex`
messages rebuild the site snapshots on subscribe; the MQTT session is persistent, so
QoS 1 messages that arrived while the controller was down are delivered on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cloud_controller.auth import ApiTokens, Auth
from cloud_controller.commands import CommandTracker
from cloud_controller.config import CloudConfig
from cloud_controller.dr.activation import filter_planner
from cloud_controller.dr.activator import controller_activator
from cloud_controller.dr.service import DrService
from cloud_controller.forecast.background import BackgroundForecast
from cloud_controller.forecast.result import ForecastOptions
from cloud_controller.ingest import Ingest
from cloud_controller.lease import DispatchLease, holder_id
from cloud_controller.live.commands import fence_commands, lease_fence
from cloud_controller.live.types import Plan, Planner, SiteSnapshot
from cloud_controller.market.shell import MarketShell
from cloud_controller.market.uftp.side import controller_uftp
from cloud_controller.openadr.side import OpenAdrSide
from cloud_controller.registry import Registry
from cloud_controller.registry.check import RegistryCheck
from cloud_controller.service_setup import (
    configured_planner,
    history_reader,
    influx_sink,
    mqtt_session,
    open_store,
    signing_keys,
    writer_settings,
)
from cloud_controller.store import Store
from cloud_controller.store.base import STORE_ERRORS
from cloud_controller.store.influx_history import InfluxHistory
from cloud_controller.store.records import records_of
from protocols.assets import Points
from protocols.clock import Clock
from protocols.codec import encode
from protocols.errors import GridflexError
from protocols.market import is_market_topic
from protocols.messages import Command, DRRequest, Stored
from protocols.mqtt import MqttSession, NotConnectedError, PublishError
from protocols.topics import dr_report, dr_request, site_topic

__all__ = ["CloudController", "ControllerStats", "Role"]

log = logging.getLogger(__name__)

#: The telemetry key ("asset/point") of the grid meter's power: the site's net load.
METER_P_KW = str(Points.METER_P_KW)

Role = Literal["all", "ingest", "dispatch"]
WATERMARK_EVERY_S = 0.2  # wall seconds between watermark publications (coalesced per site)


@dataclass
class ControllerStats:
    """Counters the API and the demo read (ingest figures live in `ingest.stats`)."""

    dispatch_count: int = 0
    dispatch_errors: int = 0
    last_plan_at: datetime | None = None
    last_solve_ms: float = 0.0
    watermarks_published: int = 0
    commands_publish_failed: int = 0
    guard_steps: int = 0
    guard_commands: int = 0
    guard_dr_overrides: int = (
        0  # guard steps that moved a DR-reserved battery off its setpoint (a limit over)
    )
    commands_without_lease: int = 0  # not sent: the dispatch lease was not held (or had expired)
    periods_skipped: int = 0  # periods not planned: already dispatched (by a predecessor) or lease gone


class CloudController:
    """The cloud controller: ingest, the control loop, commands and the HTTP API over one MQTT session."""

    def __init__(
        self,
        config: CloudConfig,
        registry: Registry,
        *,
        clock: Clock,
        planner: Planner | None = None,
        role: Role = "all",
    ) -> None:
        self.config = config
        self.registry = registry
        self.clock = clock
        self.role = role
        self.store: Store = open_store(config)
        self.snapshots: dict[str, SiteSnapshot] = {
            s: SiteSnapshot(site=s, mode="unknown") for s in registry.ids
        }
        #: grid meters (registry.grid_meters): ingested like sites, never sites of the plan or guard nor
        #: counted; the planner takes them as the stations' total load (observe_meters)
        self.meter_snapshots: dict[str, SiteSnapshot] = {
            m: SiteSnapshot(site=m, mode="unknown") for m in registry.meter_ids
        }
        self.tracker = CommandTracker()
        self.ingest = Ingest(
            self.store, self.snapshots, self.tracker, RegistryCheck(registry), meters=self.meter_snapshots
        )
        self.stats = ControllerStats()
        self.last_plan: Plan | None = None
        #: Requests accepted by this process (the DR store in `dr` holds every request across restarts).
        self.dr_requests: list[DRRequest] = []
        self.dr = DrService(
            records_of(config, "dr", config.dr.store_path or config.store.path.with_name("dr.sqlite")),
            clock=clock,
            contracts_file=config.dr.contracts,
            step_minutes=config.dr.step_minutes,
        )
        self.api_port: int | None = None
        self.auth = Auth(
            ApiTokens.from_config(config.api), clock=clock, session_s=config.api.session_hours * 3600
        )
        self._planner = planner
        self._plan_lock = asyncio.Lock()  # plan and guard share the planner's state
        self.planner_lock = threading.Lock()  # on-demand forecasts from API threads
        #: the probabilistic congestion forecast after every plan (GET /forecast/congestion)
        self.congestion = BackgroundForecast()
        self._forecast_task: asyncio.Task[None] | None = None
        self._signing_keys = signing_keys(config, registry)
        self.session = mqtt_session(
            config,
            role,
            on_connect=self._on_connect,
            manual_ack=role in ("all", "ingest") and config.store.ingest_batch_messages > 0,
        )
        self.dr_activator = controller_activator(self)
        #: the OpenADR 3.1 VTN (docs/openadr.md), served by the API, fed by the forecast in auto mode
        self.openadr = OpenAdrSide(config, clock) if config.openadr.enabled else None
        #: the local flexibility market (docs/market.md): its book, its FSP topics, clearing at gate closure
        self.market = MarketShell(
            config.market,
            records_of(
                config, "market", config.market.store_path or config.store.path.with_name("market.sqlite")
            ),
            clock=clock,
            session=self.session,
            registered=registry.ids,
        )
        #: UFTP towards configured peers, as DSO (an outlet of the market) and/or AGR (docs/market.md)
        self.uftp = controller_uftp(self) if config.market.enabled and config.market.uftp.enabled else None
        if self.uftp is not None:
            self.market.outlets.append(self.uftp)
        self.lease: DispatchLease | None = None
        if role in ("all", "dispatch") and config.control.dispatch:
            self.lease = DispatchLease(
                self.store,
                holder=holder_id(self.session.config.client_id or config.broker.client_id),
                clock=clock,
                ttl_s=config.lease.ttl_s,
                renew_s=config.lease.renew_s,
            )
        if role in ("all", "ingest"):
            # republish what the store holds (-1: nothing)
            self.ingest.dirty.update(self.registry.ids + self.registry.meter_ids)
            self.ingest.dirty.update(self.store.watermarks())
        if role in ("all", "ingest") and config.store.ingest_batch_messages > 0:
            self.ingest.enable_batching(writer_settings(config))
        if config.store.kind == "influxdb" and role in ("all", "ingest"):
            self.ingest.sink = influx_sink(config)
        #: Where `/sites/{id}/history` reads: this process's SQLite file, or InfluxDB's long history.
        self.history: Store | InfluxHistory = history_reader(config, self.store)

    # -- planner ---------------------------------------------------------------------

    @property
    def built_planner(self) -> Planner | None:
        """The planner if it exists yet (the dashboard draws its network; never builds one)."""
        return self._planner

    def planner(self) -> Planner:
        """The planner, built on first use from the configured region and registry unless one was given."""
        if self._planner is None:
            planner = configured_planner(self.config, self.registry, self._signing_keys)
            planner.commands.fence = self._fence_now  # stamped before signing: signed once
            self._planner = planner
        return self._planner

    # -- running ---------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; the lease is released and the store closed on the way out.

        A dispatcher takes the dispatch lease before it connects to MQTT (its client id would
        knock the holder off the broker); the API answers meanwhile, so `/readyz` can say
        "standby".
        """
        try:
            async with asyncio.TaskGroup() as tg:
                if self.config.api.enabled:  # every role answers /livez and /readyz (probes)
                    tg.create_task(self._serve_api(), name="api")
                tg.create_task(self._start(tg), name="start")
        finally:
            if self._forecast_task is not None:
                self._forecast_task.cancel()  # its worker thread ends on its own (bounded: one forecast)
            if self.lease is not None:
                self.lease.release()
            self.store.close()
            self.dr.close()
            self.market.close()
            if self.uftp is not None:
                await self.uftp.aclose()
            if self.openadr is not None:
                self.openadr.close()
            if self.history is not self.store:
                self.history.close()
            self._close_planner()

    def _close_planner(self) -> None:
        """Stop the planner's area workers (bounded: ProcessAreas/DaskAreas give each ~10 s)."""
        close = getattr(self._planner, "close", None)  # a given test planner may have none
        if close is not None:
            try:
                close()
            except Exception as exc:  # shutting down: log it, do not mask the reason we stop
                log.warning("closing the planner failed: %s", exc)

    async def _start(self, tg: asyncio.TaskGroup) -> None:
        if self.lease is not None:
            await self.lease.acquire()
            tg.create_task(self.lease.keep(), name="lease")
        tg.create_task(self.session.run(self._on_message), name="mqtt")
        if self.role in ("all", "ingest"):
            tg.create_task(self._watermark_loop(), name="watermarks")
        if self.ingest.sink is not None:
            tg.create_task(self.ingest.sink.run(), name="influxdb")
        if self.ingest.writer is not None:  # on cancel it flushes what it accepted (bounded)
            tg.create_task(self.ingest.writer.run(), name="ingest-writer")
        if self.role in ("all", "dispatch"):
            tg.create_task(self.dr_activator.run(), name="dr-activation")
        if self.role in ("all", "dispatch") and self.config.market.enabled:
            tg.create_task(self.market.run(), name="market")
        if self.role in ("all", "dispatch") and self.config.control.dispatch:
            tg.create_task(self._dispatch_loop(), name="dispatch")
            if self.config.control.guard_period_s > 0:
                tg.create_task(self._guard_loop(), name="guard")

    async def _on_connect(self, session: MqttSession) -> None:
        # Every registered site gets its watermark, -1 where nothing is stored yet: an agent
        # waits for it before sending (to know where to resume), so a fresh cloud says so.
        self.ingest.dirty.update(self.registry.ids)
        self.ingest.dirty.update(self.registry.meter_ids)
        self.ingest.dirty.update(await asyncio.to_thread(self.store.watermarks))

    async def publish_dr(self, request: DRRequest) -> bool:
        """Publish an accepted DR request on its programme's topic, retained (ARCHITECTURE §3); False if offline."""
        try:
            await self.session.publish(dr_request(request.program), encode(request), retain=True)
        except (NotConnectedError, PublishError) as exc:
            log.warning("DR request %s not published: %s", request.request_id, exc)
            return False
        return True

    async def retain_dr(self, program: str) -> bool:
        """After a cancel: the programme's topic retains its newest live request again, or nothing (cleared)."""
        live = await asyncio.to_thread(self.dr.newest_accepted, program)
        try:
            payload = b"" if live is None else encode(live.request)
            await self.session.publish(dr_request(program), payload, retain=True)
        except (NotConnectedError, PublishError) as exc:
            log.warning("DR topic of %s not updated: %s", program, exc)
            return False
        return True

    async def publish_dr_report(self, program: str, payload: bytes) -> bool:
        """A DR delivery report on `dr/{program}/report`, not retained; False if offline (kept at the API)."""
        try:
            await self.session.publish(dr_report(program), payload)
        except (NotConnectedError, PublishError) as exc:
            log.warning("DR report of %s not published: %s", program, exc)
            return False
        return True

    async def _on_message(self, message: Any) -> asyncio.Future[None] | None:
        """Route one message; a future: not stored yet (the session acknowledges it at the commit)."""
        topic = str(message.topic)
        if is_market_topic(topic):
            await self.market.on_message(topic, bytes(message.payload))
            return None
        return await self.ingest.handle(topic, bytes(message.payload))

    async def _watermark_loop(self) -> None:
        while True:
            await asyncio.sleep(WATERMARK_EVERY_S)
            if not self.ingest.dirty or not self.session.connected.is_set():
                continue
            dirty, self.ingest.dirty = self.ingest.dirty, set()
            # one store call per round, off the event loop (PostgreSQL: one round trip, not one per site)
            stored = await asyncio.to_thread(self.store.watermarks)
            for site in sorted(dirty):
                msg = Stored(site=site, ts=self.clock.now(), seq=stored.get(site, -1))
                try:
                    await self.session.publish(site_topic(site, "stored"), encode(msg), retain=True)
                    self.stats.watermarks_published += 1
                except (NotConnectedError, PublishError):
                    self.ingest.dirty.add(site)  # publish again after reconnecting

    def _period_start(self, now: datetime) -> datetime:
        period = self.config.control.period_s
        ts = now.timestamp()
        return datetime.fromtimestamp(ts - ts % period, tz=UTC)

    async def _dispatch_loop(self) -> None:
        await asyncio.to_thread(self.planner)  # build the LP before the first period
        await self.session.wait_connected(timeout_s=3600)
        await self.clock.sleep(min(60.0, self.config.control.period_s / 10))  # retained states arrive
        while True:
            # the next boundary follows the period this round started in, not the time it ended:
            # a plan that finishes past the boundary (one started late in its period, e.g. right
            # after a takeover) is followed at once by the next period's, not a period later
            started = self.clock.now()
            if await self._claim_period():
                await self.dispatch_once()
            boundary = self._period_start(started) + timedelta(seconds=self.config.control.period_s)
            await self.clock.sleep(max(0.0, (boundary - self.clock.now()).total_seconds()))

    async def _claim_period(self) -> bool:
        """Claim the current period in the store before planning it: no period is dispatched twice.

        A successor that took the lease within a period its predecessor already claimed skips
        it (and plans at the next boundary); without a lease there is nothing to claim.
        """
        if self.lease is None:
            return True
        token = self._fence_now()
        now = self.clock.now()
        period = self._period_start(now)
        why = "no lease"
        if token is not None:
            try:
                claimed = await asyncio.to_thread(
                    self.store.claim_period,
                    self.lease.name,
                    self.lease.holder,
                    token,
                    period.timestamp(),
                    now.timestamp(),
                )
            except STORE_ERRORS as exc:  # unsure whether another dispatched it: sending nothing is safe
                claimed, why = False, f"the store did not answer the claim ({exc})"
            else:
                why = "already dispatched (claimed by an earlier holder)"
            if claimed:
                return True
        self.stats.periods_skipped += 1
        log.warning("period %s not dispatched: %s", period.isoformat(), why)
        return False

    async def _guard_loop(self) -> None:
        period = self.config.control.guard_period_s
        while True:
            await self.clock.sleep(period)
            await self.guard_once()

    async def guard_once(self) -> list[Command]:
        """One step of the fleet guard between plans (see cloud_controller/live/guard.py)."""
        if self.last_plan is None:
            return []  # nothing planned yet: the guard corrects plans, it does not replace them
        correct = getattr(self.planner(), "correct", None)
        if correct is None:
            return []
        if self.role == "dispatch":
            await asyncio.to_thread(self._refresh_from_store)
        async with self._plan_lock:
            self._observe_meters()
            self._give_reservations(self.clock.now())
            commands: list[Command] = correct(self.clock.now(), self._snapshot_copies())
            guard = getattr(self.planner(), "guard", None)
            self.stats.guard_dr_overrides = int(getattr(guard, "dr_overrides", 0))
        self.stats.guard_steps += 1
        self.stats.guard_commands += len(commands)
        await self._publish_commands(commands)
        return commands

    def _give_reservations(self, now: datetime) -> None:
        """Tell the planner which batteries live DR requests selected (cloud_controller/live/reservations.py)."""
        give = getattr(self.planner(), "set_reservations", None)
        if give is not None:
            give(self.dr_activator.reservations(now))

    def _observe_meters(self) -> None:
        """Give the planner the grid meters' readings: each station's total load (live/stations.py)."""
        observe = getattr(self.planner(), "observe_meters", None)
        if observe is not None:
            observe(self.registry.grid_meters, self._snapshot_copies(self.meter_snapshots))

    def _snapshot_copies(self, source: Mapping[str, SiteSnapshot] | None = None) -> dict[str, SiteSnapshot]:
        return {
            s: SiteSnapshot(
                site=v.site,
                mode=v.mode,
                p_net_kw=v.p_net_kw,
                points=dict(v.points),
                flex=v.flex,
                uncontrollable=v.uncontrollable,
                last_seen=v.last_seen,
                measured_at=v.measured_at,
                missing_assets=v.missing_assets,
            )
            for s, v in (self.snapshots if source is None else source).items()
        }

    def _fence_now(self) -> int | None:
        st = self.lease.status if self.lease is not None else None
        return lease_fence(st.state, st.token, st.expires_at, self.clock.now()) if st else None

    async def _publish_commands(self, commands: list[Command]) -> None:
        if self.lease is not None:  # every command carries the lease's fencing token; no lease, none sent
            fence = self._fence_now()
            if fence is None:
                self.stats.commands_without_lease += len(commands)
                log.error(
                    "%d commands not sent: dispatch lease %s", len(commands), self.lease.status.describe()
                )
                return
            commands = fence_commands(commands, fence, self._signing_keys)
        decided = self.tracker.host_clock()
        for cmd in commands:
            # registered first: the agent's ack can be handled before this publish returns
            self.tracker.on_sent(cmd, decided_mono=decided)
            try:
                await self.session.publish(site_topic(cmd.site, "cmd"), encode(cmd))
            except (NotConnectedError, PublishError) as exc:
                self.tracker.on_publish_failed(cmd)
                self.stats.commands_publish_failed += 1
                log.warning("command %s not published: %s", cmd.cmd_id, exc)
        note_sent = getattr(self._planner, "note_sent", None)  # a DSO cap sent caps the site's plan
        if note_sent is not None:
            note_sent([c for c in commands if c.cmd_id in self.tracker.sent])

    def _refresh_from_store(self) -> None:
        """A dispatch-only worker does not ingest telemetry: it reads each site's newest stored values.

        It reads them from the store the ingest workers write (the `latest` table).
        """
        for site, points in self.store.latest().items():
            snap = self.snapshots.get(site) or self.meter_snapshots.get(site)
            if snap is None:
                continue
            for key, (ts, value) in points.items():
                snap.points[key] = value
                if key == METER_P_KW:
                    snap.p_net_kw = value
                if snap.measured_at is None or ts > snap.measured_at:
                    snap.measured_at = ts

    async def dispatch_once(self) -> Plan | None:
        """Plan and publish commands now (called every period; also usable from tests)."""
        if self.role == "dispatch":
            await asyncio.to_thread(self._refresh_from_store)
        now = self.clock.now()
        for t in self.tracker.expire(now):
            log.warning("no ack for %s (%s/%s)", t.command.cmd_id, t.command.site, t.command.asset)
        for site, snap in self.snapshots.items():
            snap.uncontrollable = site in self.tracker.uncontrollable
        snapshots: Mapping[str, SiteSnapshot] = self._snapshot_copies()
        try:
            async with self._plan_lock:
                self._observe_meters()
                self._give_reservations(now)
                plan = await asyncio.to_thread(self.planner().plan, now, snapshots, self.store)
        except GridflexError as exc:
            self.stats.dispatch_errors += 1
            log.error("dispatch at %s failed: %s", now, exc)
            return None
        self.last_plan = plan
        self.stats.dispatch_count += 1
        self.stats.last_plan_at = now
        self.stats.last_solve_ms = plan.solve_ms
        log.info(
            "plan at %s: %d commands (fencing token %s)",
            now.isoformat(),
            len(plan.commands),
            self.lease.token if self.lease is not None else "-",
        )
        # DR wins for the assets a request holds: the plan's commands to them are dropped
        commands, dropped = filter_planner(plan.commands, self.dr_activator.held(now))
        self.dr_activator.count_dropped(dropped, now)
        await self._publish_commands(commands)
        self._forecast_in_background(plan)
        return plan

    def _forecast_in_background(self, plan: Plan) -> None:
        """Start the probabilistic congestion forecast of `plan` in a worker thread, or queue it.

        At most one runs; a plan arriving meanwhile is the next (forecast/background.py).
        """
        if self.config.control.congestion_scenarios <= 0 or plan.site_forecast_kw is None:
            return
        if not hasattr(self._planner, "probabilistic_forecast"):
            return
        if self.congestion.claim(plan):
            self._forecast_task = asyncio.create_task(self._forecast_loop(plan), name="congestion-forecast")

    async def _forecast_loop(self, first: Plan) -> None:
        compute = self._planner.probabilistic_forecast  # type: ignore[union-attr]
        options = ForecastOptions(n_scenarios=self.config.control.congestion_scenarios)
        plan: Plan | None = first
        try:
            while plan is not None:
                latest = await asyncio.to_thread(
                    self.congestion.run,
                    functools.partial(compute, plan, options),
                    plan_at=plan.at,
                    period_s=plan.period_s,
                    now=self.clock.now,
                )
                if latest is not None and self.config.market.enabled:  # the DSO's request, the grid rows
                    await self.market.on_forecast(latest, plan, self._planner)
                if latest is not None and self.openadr is not None:  # auto mode's events (docs/openadr.md)
                    await asyncio.to_thread(self.openadr.on_forecast, latest, self._planner)
                plan = self.congestion.release()
        except asyncio.CancelledError:
            self.congestion.abandon()
            raise

    async def _serve_api(self) -> None:
        import uvicorn

        from cloud_controller.api import create_app

        server = uvicorn.Server(
            uvicorn.Config(
                create_app(self),
                host=self.config.api.host,
                port=self.config.api.port,
                log_level="warning",
                lifespan="off",
            )
        )
        # `_serve`, not `serve`: `serve` swaps the process's SIGINT/SIGTERM handlers, which
        # belong to whoever runs the controller (the CLI cancels on SIGTERM).
        task = asyncio.create_task(server._serve())
        try:
            while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn exposes a flag only)
                await asyncio.sleep(0.05)
            if server.started:
                self.api_port = int(server.servers[0].sockets[0].getsockname()[1])
                log.info("API on http://%s:%d/docs", self.config.api.host, self.api_port)
            # shielded: a cancel reaching uvicorn's main loop skips its shutdown, and the
            # listening socket stays open after the controller stopped (the port is never freed)
            await asyncio.shield(task)
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 5)
