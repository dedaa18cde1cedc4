"""Orders to GridFlex's own aggregator, carried out inside the controller as DR requests.

An FSP of `market.fsps` with an `own_program` is GridFlex's own aggregator. When the
market clears, each of its orders becomes a DR request of that programme over the offer's
sites with the order's kW per ISP, run through the same steps as `POST /dr/requests`
(`DrService.submit`, the baselines, the activator's first tick, the retained topic) — the
path UFTP's AGR role uses for FlexOrders. Why inside: an order the controller made and
also executes needs no outside bridge (the demo's `OrderBridge` did it from outside).

Linking: the DR request's id is derived from the order id (`mkt-<order id>`) and its
`contract` is the order id, so its commands (`Command.request_id`), its delivery report
and the market's settlement name one another.

Idempotent without a table of its own: the DR store is the record. An order whose DR
request is recorded already (any status, `refused` included, by any controller sharing
the store) is never submitted again — a second clearing pass, a restart or another
controller finds it there. A failure the DR store does not record (the selection raised)
is kept here with its reason, counted and stored as an event; it is not retried in this
process (after a restart it is tried once more while its delivery is still ahead).

`dispatch`: an FSP that moves its own devices (the live demo's EVs and heat pumps,
`gridflex/loop/fsp_dispatch.py`) sets it, and each own order is then handed to it instead
of becoming a DR request. Why a hook: the order's device limits come from the FSP's own
prognosis of its devices, which the controller does not hold; the controller keeps the
once-only bookkeeping (`dispatched`, in this process: the DR store records no such order).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cloud_controller.market.config import MarketConfig
from cloud_controller.market.store import MarketStore
from protocols.clock import Clock
from protocols.errors import GridflexError
from protocols.market import ISP_S, MarketOrder
from protocols.messages import DRInterval, DRRequest

__all__ = ["DrPath", "OwnOrders", "dr_request_id", "dr_request_of"]

log = logging.getLogger(__name__)

ISP = timedelta(seconds=ISP_S)
#: DR statuses that mean the order is being carried out
LIVE = frozenset({"selected", "partial", "active", "completed"})


def dr_request_id(order_id: str) -> str:
    """The DR request id of an order: `mkt-<order id>`, or a hashed tail when that exceeds 64 characters."""
    rid = f"mkt-{order_id}"
    if len(rid) <= 64:
        return rid
    return f"mkt-{order_id[:43]}-{hashlib.sha256(order_id.encode()).hexdigest()[:16]}"


def dr_request_of(order: MarketOrder, sites: Sequence[str], now: datetime, program: str) -> DRRequest:
    """The DR request that delivers an order: its kW per ISP on its offer's sites, under `program`."""
    isps = sorted(order.isps, key=lambda i: i.start)
    start, end = isps[0].start, isps[-1].start + ISP
    by_start = {i.start: i.kw for i in isps}
    steps = int((end - start) / ISP)
    return DRRequest(
        program=program,
        ts=now,
        request_id=dr_request_id(order.order_id),
        start=start,
        end=end,
        direction="reduce",
        p_kw=max(by_start.values()),
        price_eur_per_kwh=order.price_eur_per_kwh,
        sites=list(sites),
        intervals=[DRInterval(p_kw=by_start.get(start + k * ISP, 0.0)) for k in range(steps)],
        contract=order.order_id,
    )


@dataclass(frozen=True)
class DrPath:
    """The controller's DR command path, as the market needs it (built in `service_dr.py`)."""

    #: the steps of `POST /dr/requests`; returns the DR status (raises GridflexError when refused)
    execute: Callable[[DRRequest], Awaitable[str]]
    #: the recorded DR status of a request id, None when none is recorded
    status_of: Callable[[str], str | None]
    #: store an event (kind, severity, message, details); never raises
    event: Callable[[str, str, str, dict[str, str]], None]


@dataclass
class OwnOrders:
    """Carries out the orders of the own FSPs through `path`, once each."""

    config: MarketConfig
    store: MarketStore
    clock: Clock
    path: DrPath | None = None
    executed: int = 0
    failed: int = 0
    #: order id -> why it failed in this process (a refusal is in the DR store too, without this reason)
    failures: dict[str, str] = field(default_factory=dict)
    #: (order, its offer's sites) -> a status; when set, own orders go here, not to `path`
    dispatch: Callable[[MarketOrder, Sequence[str]], Awaitable[str]] | None = None
    #: order id -> the status `dispatch` returned
    dispatched: dict[str, str] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def own_program(self, fsp: str) -> str | None:
        """The DR programme of `fsp`'s orders when it is our own aggregator, else None."""
        cfg = self.config.fsps.get(fsp)
        return None if cfg is None else cfg.own_program

    def state(self, order: MarketOrder) -> dict[str, Any] | None:
        """How the order is being carried out (None: not an own FSP's order)."""
        if self.own_program(order.fsp) is None:
            return None
        rid = dr_request_id(order.order_id)
        if all(i.kw <= 0 for i in order.isps):
            return {"status": "nothing_ordered", "dr_request_id": None, "dr_status": None, "reason": None}
        if order.order_id in self.dispatched:
            return {"status": "executed", "dr_request_id": None, "dr_status": None, "reason": None}
        dr_status = self.path.status_of(rid) if self.path is not None else None
        if dr_status is not None:
            ok = dr_status in LIVE
            why = self.failures.get(order.order_id, f"DR request {rid} is {dr_status}")
            return {
                "status": "executed" if ok else "failed",
                "dr_request_id": rid,
                "dr_status": dr_status,
                "reason": None if ok else why,
            }
        if order.order_id in self.failures:
            return {
                "status": "failed",
                "dr_request_id": rid,
                "dr_status": None,
                "reason": self.failures[order.order_id],
            }
        return {"status": "pending", "dr_request_id": rid, "dr_status": None, "reason": None}

    async def run_pending(self) -> list[str]:
        """Execute every own order not yet executed nor failed; the order ids executed now."""
        if (self.path is None and self.dispatch is None) or not any(
            f.own_program for f in self.config.fsps.values()
        ):
            return []
        async with self._lock:
            orders = await asyncio.to_thread(self.store.orders)
            done: list[str] = []
            for order in orders:
                program = self.own_program(order.fsp)
                if program is None or order.order_id in self.failures or order.order_id in self.dispatched:
                    continue
                if all(i.kw <= 0 for i in order.isps):
                    continue
                if self.dispatch is not None:
                    if await self._dispatch(order, self.dispatch):
                        done.append(order.order_id)
                    continue
                assert self.path is not None
                if await asyncio.to_thread(self.path.status_of, dr_request_id(order.order_id)) is not None:
                    continue  # carried out (or refused) already: by this process, before a restart, or another
                if await self._execute(order, program):
                    done.append(order.order_id)
            return done

    async def _dispatch(
        self, order: MarketOrder, dispatch: Callable[[MarketOrder, Sequence[str]], Awaitable[str]]
    ) -> bool:
        """Hand `order` to the FSP's own dispatch once; a failure is kept with its reason (not retried)."""
        found = await asyncio.to_thread(self.store.offer, order.offer_id)
        sites = found[0].sites if found is not None else []
        try:
            if not sites:
                raise ValueError(f"offer {order.offer_id!r} names no sites to dispatch")
            self.dispatched[order.order_id] = await dispatch(order, sites)
        except (GridflexError, ValueError) as exc:
            self.failed += 1
            self.failures[order.order_id] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("market order %s not dispatched: %s", order.order_id, self.failures[order.order_id])
            return False
        self.executed += 1
        log.info("market order %s dispatched: %s", order.order_id, self.dispatched[order.order_id])
        return True

    async def _execute(self, order: MarketOrder, program: str) -> bool:
        assert self.path is not None
        now = self.clock.now()
        rid = dr_request_id(order.order_id)
        end = max(i.start for i in order.isps) + ISP
        reason: str | None = None
        status = ""
        if end <= now:
            reason = f"delivery ended at {end.isoformat()} before the order was executed"
        else:
            found = await asyncio.to_thread(self.store.offer, order.offer_id)
            sites = found[0].sites if found is not None else []
            if not sites:  # a DR request without sites would call on the whole programme
                reason = f"offer {order.offer_id!r} names no sites to dispatch"
            else:
                try:
                    status = await self.path.execute(dr_request_of(order, sites, now, program))
                except (GridflexError, ValueError) as exc:
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                else:
                    if status not in LIVE:
                        reason = f"DR request {rid} is {status}"
        if reason is None:
            self.executed += 1
            log.info("market order %s executed as DR request %s (%s)", order.order_id, rid, status)
            return True
        self.failed += 1
        self.failures[order.order_id] = reason
        log.warning("market order %s not executed: %s", order.order_id, reason)
        await asyncio.to_thread(
            self.path.event,
            "market_order_failed",
            "error",
            f"market order {order.order_id} not executed: {reason}"[:500],
            {"order_id": order.order_id, "fsp": order.fsp, "dr_request_id": rid},
        )
        return False
