"""The market inside the controller: the book, its MQTT topics, and clearing at gate closure.

The API (`cloud_controller/web/market_api.py`) and MQTT offers (`market/{fsp}/offer`) both
go to the same `Book`. What the market decides goes out on the FSPs' own topics: an
accepted request to every configured FSP (`market/{fsp}/request`), each order to its FSP
(`market/{fsp}/order`), each settlement to its FSP (`market/{fsp}/settlement`), QoS 1.
A refused MQTT offer cannot be answered on the HTTP response, so it is counted and kept
with its reason (`refusals`, shown by `GET /market/status`), never dropped silently; a
publish that fails is counted too (`publish_failed`). With `auto_clear`, `run()` clears the
requests whose gate has closed, waking at the next gate closure on the controller's Clock.
Orders to GridFlex's own aggregator (an FSP with `own_program`) are carried out here too,
after each clearing and once at start (`own_orders.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cloud_controller.forecast.background import LatestForecast
from cloud_controller.market.auto_request import RequestAction, request_action
from cloud_controller.market.book import Book, ClearingRecord, Metering, Refused
from cloud_controller.market.config import MarketConfig
from cloud_controller.market.forecast_hook import ViewBuilder
from cloud_controller.market.grid_view import GridView
from cloud_controller.market.own_orders import OwnOrders
from cloud_controller.market.settling import Prefetch
from cloud_controller.market.store import MarketStore
from cloud_controller.store.records import RecordDb
from protocols.clock import Clock
from protocols.errors import ConfigError, ContractError
from protocols.market import MarketKind, MarketRequest, MarketSettlement, decode_offer, market_topic
from protocols.mqtt import MqttSession, NotConnectedError, PublishError

__all__ = ["MarketOutlet", "MarketShell", "MarketStats"]

log = logging.getLogger(__name__)

MAX_WAIT_S = 60.0  # the automatic clearing looks again at least this often (a request may arrive)
MAX_REFUSALS_KEPT = 100


@dataclass
class MarketStats:
    """Counters of the MQTT side and the automatic clearing."""

    mqtt_offers: int = 0
    mqtt_refused: int = 0
    published: int = 0
    publish_failed: int = 0
    auto_clearings: int = 0
    clearing_errors: int = 0
    #: the DSO's requests from the forecast (auto_request.py), and what stopped them
    auto_posted: int = 0
    auto_revised: int = 0
    auto_withdrawn: int = 0
    auto_errors: int = 0
    #: clearings the AC check blocked (no orders), and offers it trimmed
    ac_blocked: int = 0
    ac_trimmed: int = 0


class MarketOutlet(Protocol):
    """Another door out of the market (UFTP's DSO role): told of each request, clearing and settlement."""

    async def request_posted(self, req: MarketRequest) -> None: ...  # noqa: D102

    async def clearing_done(self, record: ClearingRecord) -> None: ...  # noqa: D102

    async def settled(self, settlements: list[MarketSettlement]) -> None: ...  # noqa: D102


def _check_sites(config: MarketConfig, registered: set[str]) -> None:
    """Every site behind a congestion point is a registered site (ConfigError naming the key)."""
    for cp, sites in config.congestion_points.items():
        unknown = sorted(set(sites) - registered)
        if unknown:
            raise ConfigError(f"not registered: {', '.join(unknown)}", key=f"market.congestion_points.{cp}")


class MarketShell:
    """The controller's market: `book` behind the API, offers from MQTT, publications to the FSPs."""

    def __init__(
        self,
        config: MarketConfig,
        store_path: Path | RecordDb,
        *,
        clock: Clock,
        session: MqttSession,
        registered: Collection[str] | None = None,
    ) -> None:
        if registered is not None and config.enabled:
            _check_sites(config, set(registered))
        self.config = config
        self.clock = clock
        self.session = session
        self.store = MarketStore(store_path)
        self.book = Book(config, self.store)
        self.stats = MarketStats()
        self.refusals: deque[dict[str, str]] = deque(maxlen=MAX_REFUSALS_KEPT)
        self.wake = asyncio.Event()  # set by a new request: the next gate may be earlier
        #: the latest forecast with its grid (grid rows and AC check of every clearing); None: none yet
        self.view: GridView | None = None
        self.auto_errors: deque[dict[str, str]] = deque(maxlen=MAX_REFUSALS_KEPT)
        self._views = ViewBuilder()
        #: more doors out besides the FSP topics (the controller adds UFTP's DSO role here)
        self.outlets: list[MarketOutlet] = []
        #: orders to our own aggregator -> DR requests; its `path` is set by the controller (service_dr.py)
        self.own = OwnOrders(config, self.store, clock)

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    async def _publish(self, topic: str, payload: bytes) -> bool:
        try:
            await self.session.publish(topic, payload)
        except (NotConnectedError, PublishError) as exc:
            self.stats.publish_failed += 1
            log.warning("market message on %s not published: %s", topic, exc)
            return False
        self.stats.published += 1
        return True

    async def request_posted(self, req: MarketRequest) -> int:
        """Send an accepted request to every FSP; how many got it."""
        self.wake.set()
        payload = req.model_dump_json().encode()
        sent = [
            await self._publish(market_topic(fsp, MarketKind.REQUEST), payload) for fsp in self.config.fsps
        ]
        for outlet in self.outlets:
            await outlet.request_posted(req)
        return sum(sent)

    async def clearing_done(self, record: ClearingRecord) -> int:
        """Send each order to its FSP; how many went out."""
        sent = [
            await self._publish(market_topic(o.fsp, MarketKind.ORDER), o.model_dump_json().encode())
            for o in record.orders
        ]
        for outlet in self.outlets:
            await outlet.clearing_done(record)
        await self.execute_own_orders()
        return sum(sent)

    async def execute_own_orders(self) -> list[str]:
        """Carry out the own aggregator's orders not yet carried out; never raises into the clearing."""
        try:
            return await self.own.run_pending()
        except Exception:  # counted and logged: the market's own path goes on
            self.own.failed += 1
            log.exception("carrying out the own aggregator's orders failed")
            return []

    async def settled(self, settlements: list[MarketSettlement]) -> int:
        """Send each settlement to its FSP."""
        sent = [
            await self._publish(market_topic(s.fsp, MarketKind.SETTLEMENT), s.model_dump_json().encode())
            for s in settlements
        ]
        for outlet in self.outlets:
            await outlet.settled(settlements)
        return sum(sent)

    async def on_message(self, topic: str, payload: bytes) -> None:
        """An offer from an FSP over MQTT: into the book, or counted and kept with its reason."""
        self.stats.mqtt_offers += 1
        try:
            offer = decode_offer(topic, payload)
            await asyncio.to_thread(self.book.post_offer, offer, offer.fsp, self.clock.now())
        except ContractError as exc:
            self._refused(topic, "payload", exc.reason)
        except Refused as exc:
            self._refused(topic, exc.field, exc.reason)

    def _refused(self, topic: str, field: str, reason: str) -> None:
        self.stats.mqtt_refused += 1
        self.refusals.append(
            {"topic": topic, "field": field, "reason": reason, "at": self.clock.now().isoformat()}
        )
        log.warning("market offer on %s refused: %s: %s", topic, field, reason)

    async def clear_now(self, *, gate_closed_only: bool = False) -> ClearingRecord | None:
        """Clear (in a worker thread: HiGHS) on the latest grid view and send the orders."""
        record = await asyncio.to_thread(
            self.book.clear, self.clock.now(), gate_closed_only=gate_closed_only, view=self.view
        )
        if record is not None:
            if record.summary["status"] == "ac_check_failed":
                self.stats.ac_blocked += 1
                log.warning("market clearing blocked by the AC check: %s", record.summary["violations"][:3])
            self.stats.ac_trimmed += sum(
                1 for r in record.summary["refused"] if r["reason"].startswith("ac_check")
            )
            await self.clearing_done(record)
        return record

    async def on_forecast(self, latest: LatestForecast, plan: Any, planner: Any) -> list[RequestAction]:
        """The service's hook after each background forecast: build its grid view, then `forecast_done`.

        Never raises (the service's forecast loop must go on): a failure is counted and kept
        with its reason, and the last view stays.
        """
        try:
            before = self._views.unavailable
            view = await asyncio.to_thread(self._views.view, latest, plan, planner)
            if view is None:
                if self._views.unavailable != before:
                    log.warning("market: no grid view of the forecast: %s", self._views.unavailable)
                return []
            return await self.forecast_done(view)
        except Exception as exc:
            self.stats.auto_errors += 1
            self.auto_errors.append(
                {
                    "congestion_point": "*",
                    "reason": f"{type(exc).__name__}: {exc}",
                    "at": self.clock.now().isoformat(),
                }
            )
            log.exception("the market's step after the forecast failed")
            return []

    async def forecast_done(self, view: GridView) -> list[RequestAction]:
        """A new forecast: keep it for the clearing and post, revise or withdraw the DSO's requests."""
        self.view = view
        if not (self.config.enabled and self.config.auto_request.enabled):
            return []
        actions = await asyncio.to_thread(self._auto_actions, view, self.clock.now())
        for action in actions:
            if action.request is not None:
                await self.request_posted(action.request)
        return actions

    def _auto_actions(self, view: GridView, now: datetime) -> list[RequestAction]:
        cfg = self.config.auto_request
        done: list[RequestAction] = []
        for cp in sorted(self.config.congestion_points):
            try:
                needed = view.relief_needed_kw(cp, cfg.risk)
                open_req = next(
                    (r for r, _ in self.book.store.requests("open") if r.congestion_point == cp), None
                )
                ordered = {
                    i.start
                    for o in self.book.store.orders()
                    if o.congestion_point == cp
                    for i in o.isps
                    if i.kw > 0
                }
                action = request_action(
                    cp,
                    needed,
                    open_req,
                    ordered,
                    now=now,
                    gate_closure_s=self.config.gate_closure_s,
                    policy=cfg,
                    serial=len(self.book.store.requests()),
                )
                if action is None:
                    continue
                if action.request is None:
                    self.book.withdraw_request(action.request_id)
                    self.stats.auto_withdrawn += 1
                else:
                    self.book.post_request(action.request, now)
                    self.stats.auto_posted += action.kind == "post"
                    self.stats.auto_revised += action.kind == "revise"
                done.append(action)
            except (
                KeyError,
                ValueError,
                Refused,
            ) as exc:  # counted and kept: a DSO that cannot ask is a fault
                self.stats.auto_errors += 1
                self.auto_errors.append({"congestion_point": cp, "reason": str(exc), "at": now.isoformat()})
                log.warning("automatic request at %s failed: %s", cp, exc)
        return done

    async def settle_now(
        self, metering: Metering, *, prefetch: Prefetch | None = None
    ) -> tuple[list[MarketSettlement], list[dict[str, str]]]:
        """Settle what is due from the metered data and send the settlements (`prefetch`: Book.settle_due)."""
        done, failed = await asyncio.to_thread(
            self.book.settle_due, self.clock.now(), metering, prefetch=prefetch
        )
        await self.settled(done)
        return done, failed

    async def run(self) -> None:
        """Carry out own orders left from before a restart; clear at each gate closure (`auto_clear`)."""
        await self.execute_own_orders()
        if not self.config.auto_clear:
            return
        while True:
            gate = await asyncio.to_thread(self.book.next_gate)
            now = self.clock.now()
            if gate is not None and gate <= now:
                try:
                    if await self.clear_now(gate_closed_only=True) is not None:
                        self.stats.auto_clearings += 1
                except Exception:  # a failed clearing is counted and logged; the loop carries on
                    self.stats.clearing_errors += 1
                    log.exception("automatic market clearing failed")
                    await self.clock.sleep(MAX_WAIT_S)
                continue
            wait_s = MAX_WAIT_S if gate is None else min(MAX_WAIT_S, (gate - now).total_seconds())
            self.wake.clear()
            sleeper = asyncio.ensure_future(self.clock.sleep(max(0.0, wait_s)))
            woken = asyncio.ensure_future(self.wake.wait())
            try:
                await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                woken.cancel()

    def status(self) -> dict[str, Any]:
        """Counters, the next gate closure and the latest refused MQTT offers."""
        gate: datetime | None = self.book.next_gate()
        return {
            "fsps": sorted(self.config.fsps),
            "congestion_points": self.config.congestion_points,
            "gate_closure_s": self.config.gate_closure_s,
            "pricing": self.config.pricing,
            "auto_clear": self.config.auto_clear,
            "next_gate": gate.isoformat() if gate else None,
            "stats": vars(self.stats).copy()
            | {"own_executed": self.own.executed, "own_failed": self.own.failed},
            "own_fsps": {f: c.own_program for f, c in self.config.fsps.items() if c.own_program},
            "own_failures": [{"order_id": o, "reason": r} for o, r in self.own.failures.items()],
            "refusals": list(self.refusals),
            "auto_request": self.config.auto_request.model_dump(),
            "auto_errors": list(self.auto_errors),
            "grid_view": {"unavailable": self._views.unavailable or "no forecast yet"}
            if self.view is None
            else {
                "intervals": self.view.forecast.n_intervals,
                "from": self.view.interval_starts[0].isoformat(),
            },
        }
