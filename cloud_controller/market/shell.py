"""The market inside the controller: the book, its MQTT topics, and clearing at gate closure.

The API (`cloud_controller/web/market_api.py`) and MQTT offers (`market/{fsp}/offer`) both
go to the same `Book`. What the market decides goes out on the FSPs' own topics: an
accepted request to every configured FSP (`market/{fsp}/request`), each order to its FSP
(`market/{fsp}/order`), each settlement to its FSP (`market/{fsp}/settlement`), QoS 1.
A refused MQTT offer cannot be answered on the HTTP response, so it is counted and kept
with its reason (`refusals`, shown by `GET /market/status`), never dropped silently; a
publish that fails is counted too (`publish_failed`). With `auto_clear`, `run()` clears the
requests whose gate has closed, waking at the next gate closure on the controller's Clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cloud_controller.market.book import Book, ClearingRecord, Metering, Refused
from cloud_controller.market.config import MarketConfig
from cloud_controller.market.store import MarketStore
from protocols.clock import Clock
from protocols.errors import ConfigError, ContractError
from protocols.market import MarketKind, MarketRequest, MarketSettlement, decode_offer, market_topic
from protocols.mqtt import MqttSession, NotConnectedError, PublishError

__all__ = ["MarketShell", "MarketStats"]

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
        store_path: Path,
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
        return sum(sent)

    async def clearing_done(self, record: ClearingRecord) -> int:
        """Send each order to its FSP; how many went out."""
        sent = [
            await self._publish(market_topic(o.fsp, MarketKind.ORDER), o.model_dump_json().encode())
            for o in record.orders
        ]
        return sum(sent)

    async def settled(self, settlements: list[MarketSettlement]) -> int:
        """Send each settlement to its FSP."""
        sent = [
            await self._publish(market_topic(s.fsp, MarketKind.SETTLEMENT), s.model_dump_json().encode())
            for s in settlements
        ]
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
        """Clear (in a worker thread: HiGHS) and send the orders."""
        record = await asyncio.to_thread(self.book.clear, self.clock.now(), gate_closed_only=gate_closed_only)
        if record is not None:
            await self.clearing_done(record)
        return record

    async def settle_now(self, metering: Metering) -> tuple[list[MarketSettlement], list[dict[str, str]]]:
        """Settle what is due from the metered data and send the settlements."""
        done, failed = await asyncio.to_thread(self.book.settle_due, self.clock.now(), metering)
        await self.settled(done)
        return done, failed

    async def run(self) -> None:
        """Clear at each gate closure (only when `auto_clear`), until cancelled."""
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
            "stats": vars(self.stats).copy(),
            "refusals": list(self.refusals),
        }
