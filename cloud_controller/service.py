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
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any, Literal

from cloud_controller.auth import ApiTokens, Auth
from cloud_controller.commands import CommandTracker
from cloud_controller.config import CloudConfig
from cloud_controller.dr.activation import filter_planner
from cloud_controller.dr.activator import controller_activator
from cloud_controller.dr.service import DrService
from cloud_controller.forecast.background import BackgroundForecast
from cloud_controller.ingest import Ingest
from cloud_controller.lease import DispatchLease, holder_id
from cloud_controller.live.commands import fence_commands, lease_fence
from cloud_controller.live.types import Plan, Planner, SiteSnapshot
from cloud_controller.market.shell import MarketShell
from cloud_controller.market.uftp.side import controller_uftp
from cloud_controller.openadr.side import OpenAdrSide
from cloud_controller.registry import Registry
from cloud_controller.registry.check import RegistryCheck
from cloud_controller.service_api import serve_api
from cloud_controller.service_dr import dr_path, publish_dr_report, publish_dr_request, retain_newest_dr
from cloud_controller.service_forecast import forecast_loop
from cloud_controller.service_loops import (
    WATERMARK_EVERY_S,
    claim_period,
    dispatch_loop,
    guard_loop,
    watermark_loop,
)
from cloud_controller.service_setup import (
    configured_planner,
    history_reader,
    influx_sink,
    mqtt_session,
    open_store,
    signing_keys,
    writer_settings,
)
from cloud_controller.service_snapshots import METER_P_KW, refresh_from_latest, snapshot_copies
from cloud_controller.service_stats import ControllerStats
from cloud_controller.store import Store
from cloud_controller.store.influx_history import InfluxHistory
from cloud_controller.store.records import records_of
from protocols.clock import Clock
from protocols.codec import encode
from protocols.errors import GridflexError
from protocols.market import is_market_topic
from protocols.messages import Command, DRRequest
from protocols.mqtt import MqttSession, NotConnectedError, PublishError
from protocols.tasks import cancel_all_until_done
from protocols.topics import site_topic

__all__ = ["METER_P_KW", "WATERMARK_EVERY_S", "CloudController", "ControllerStats", "Role"]

log = logging.getLogger(__name__)

#: a child's own clean-up on cancel may take this long (the ingest writer's flush: 10 s)
SHUTDOWN_GRACE_S = 15.0

Role = Literal["all", "ingest", "dispatch"]


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
        self.market.own.path = dr_path(self)  # orders to our own aggregator -> DR requests
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
        children: list[asyncio.Task[None]] = []
        try:
            async with asyncio.TaskGroup() as tg:

                def spawn(coro: Coroutine[Any, Any, None], name: str) -> None:
                    children.append(tg.create_task(coro, name=name))

                if self.config.api.enabled:  # every role answers /livez and /readyz (probes)
                    spawn(serve_api(self), "api")
                spawn(self._start(spawn), "start")
                try:
                    await asyncio.Future()  # until cancelled (or a child fails)
                except asyncio.CancelledError:
                    # each child until it is done: one swallowed cancellation (protocols/tasks.py)
                    # must not leave the TaskGroup, and the process, waiting forever
                    await cancel_all_until_done(children, grace_s=SHUTDOWN_GRACE_S)
                    raise
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

    async def _start(self, spawn: Callable[[Coroutine[Any, Any, None], str], None]) -> None:
        if self.lease is not None:
            await self.lease.acquire()
            spawn(self.lease.keep(), "lease")
        spawn(self.session.run(self._on_message), "mqtt")
        if self.role in ("all", "ingest"):
            spawn(watermark_loop(self), "watermarks")
        if self.ingest.sink is not None:
            spawn(self.ingest.sink.run(), "influxdb")
        if self.ingest.writer is not None:  # on cancel it flushes what it accepted (bounded)
            spawn(self.ingest.writer.run(), "ingest-writer")
        if self.role in ("all", "dispatch"):
            spawn(self.dr_activator.run(), "dr-activation")
        if self.role in ("all", "dispatch") and self.config.market.enabled:
            spawn(self.market.run(), "market")
        if self.role in ("all", "dispatch") and self.uftp is not None:  # one sender: the lease holder
            self.uftp.start()  # the Metering a restart left scheduled: armed again, past due sent now
        if self.role in ("all", "dispatch") and self.config.control.dispatch:
            spawn(dispatch_loop(self), "dispatch")
            if self.config.control.guard_period_s > 0:
                spawn(guard_loop(self), "guard")

    async def _on_connect(self, session: MqttSession) -> None:
        # Every registered site gets its watermark, -1 where nothing is stored yet: an agent
        # waits for it before sending (to know where to resume), so a fresh cloud says so.
        self.ingest.dirty.update(self.registry.ids)
        self.ingest.dirty.update(self.registry.meter_ids)
        self.ingest.dirty.update(await asyncio.to_thread(self.store.watermarks))

    async def publish_dr(self, request: DRRequest) -> bool:
        """Publish an accepted DR request on its programme's topic, retained (ARCHITECTURE §3); False if offline."""
        return await publish_dr_request(self.session, request)

    async def retain_dr(self, program: str) -> bool:
        """After a cancel: the programme's topic retains its newest live request again, or nothing (cleared)."""
        return await retain_newest_dr(self.session, self.dr, program)

    async def publish_dr_report(self, program: str, payload: bytes) -> bool:
        """A DR delivery report on `dr/{program}/report`, not retained; False if offline (kept at the API)."""
        return await publish_dr_report(self.session, program, payload)

    async def _on_message(self, message: Any) -> asyncio.Future[None] | None:
        """Route one message; a future: not stored yet (the session acknowledges it at the commit)."""
        topic = str(message.topic)
        if is_market_topic(topic):
            await self.market.on_message(topic, bytes(message.payload))
            return None
        return await self.ingest.handle(topic, bytes(message.payload))

    async def _claim_period(self) -> bool:
        """Claim the current period in the store before planning it (service_loops.claim_period)."""
        return await claim_period(self)

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
        return snapshot_copies(self.snapshots if source is None else source)

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
        refresh_from_latest(self.store.latest(), self.snapshots, self.meter_snapshots)

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
        if self.uftp is not None:  # our AGR's D-Prognoses the plan changed, re-sent off this loop
            self.uftp.notify_plan()
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
            self._forecast_task = asyncio.create_task(forecast_loop(self, plan), name="congestion-forecast")
