"""The market's order book: the shell's rules around the pure core, over the market store.

Everything an API call or an MQTT offer does goes through here, so both doors apply the
same checks and each refusal names its field and reason (`Refused`: the API's 422, 409,
404 or 403). Requests and offers arrive as wire models (`protocols.market`); the clearing
turns them into the core's `FlexRequest`/`FlexOffer` and back into `MarketOrder`s. The
submission time of an offer is the time it reached the book (the controller's Clock), not
the `ts` the FSP wrote: gate closure is judged on what we saw. Pure of I/O except the store.
Every check-and-write runs in the store's write section, so several controllers sharing
one market store (PostgreSQL) never both accept one offer id, never number two clearings
alike, and never clear the same open request twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cloud_controller.market.baselines import prognosis_gap
from cloud_controller.market.clearing import ClearingOptions
from cloud_controller.market.config import MarketConfig
from cloud_controller.market.grid_check import clear_on_grid
from cloud_controller.market.grid_view import GridView
from cloud_controller.market.products import (
    FlexOffer,
    FlexRequest,
    MarketRefusal,
    OfferOption,
    Product,
    check_gate,
)
from cloud_controller.market.settling import (
    Metering,
    PeriodSettlement,
    Prefetch,
    freeze_baselines,
    settle_due,
    settle_period,
    settlement_of,
)
from cloud_controller.market.store import MarketStore
from protocols.errors import GridflexError
from protocols.market import (
    MarketIsp,
    MarketOffer,
    MarketOrder,
    MarketPrognosis,
    MarketRequest,
    MarketSettlement,
)

__all__ = ["Book", "ClearingRecord", "Metering", "Refused", "settlement_of"]


class Refused(GridflexError):
    """A refused call: HTTP status, the field at fault and why (the rule when the core refused)."""

    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.status = status
        self.field = field
        self.reason = reason

    def detail(self) -> dict[str, str]:
        """The API's error body."""
        return {"field": self.field, "reason": self.reason}


@dataclass(frozen=True)
class ClearingRecord:
    """One clearing: its summary (stored) and the orders it sent."""

    clearing_id: str
    summary: dict[str, Any]
    orders: list[MarketOrder]


def _ts(t: datetime) -> float:
    return t.timestamp()


class Book:
    """Requests, offers, clearing and settlement of one market (thread-safe: one lock per change)."""

    def __init__(self, config: MarketConfig, store: MarketStore) -> None:
        self.config = config
        self.store = store
        self._lock = threading.Lock()

    @contextmanager
    def section(self) -> Iterator[None]:
        """The book's lock and the store's write section, for check-and-writes beside the book (disputes.py)."""
        with self._lock, self.store.write():
            yield

    # -- requests ---------------------------------------------------------------------

    def post_request(self, req: MarketRequest, now: datetime) -> MarketRequest:
        """Accept the DSO's request (or a newer revision of an open one)."""
        if req.congestion_point not in self.config.congestion_points:
            known = ", ".join(sorted(self.config.congestion_points)) or "none configured"
            raise Refused(
                422, "congestion_point", f"unknown congestion point {req.congestion_point!r} ({known})"
            )
        with self._lock, self.store.write():
            known_req = self.store.request(req.request_id)
            if known_req is not None:
                old, status = known_req
                if status != "open":
                    raise Refused(409, "request_id", f"request {req.request_id!r} is {status} already")
                if req.revision <= old.revision:
                    raise Refused(
                        409, "revision", f"revision {req.revision} is not above the stored {old.revision}"
                    )
                if req.congestion_point != old.congestion_point:
                    raise Refused(422, "congestion_point", "a revision cannot move the request")
            for other, _ in self.store.requests("open"):
                if other.congestion_point == req.congestion_point and other.request_id != req.request_id:
                    raise Refused(
                        409,
                        "congestion_point",
                        f"request {other.request_id!r} is open at {req.congestion_point!r}: revise it instead",
                    )
            self.store.put_request(req, "open", _ts(now))
        return req

    def withdraw_request(self, request_id: str) -> None:
        """Withdraw an open request (the need is gone); its offers are refused at the next clearing."""
        with self._lock, self.store.write():
            found = self.store.request(request_id)
            if found is None:
                raise Refused(404, "request_id", f"no request {request_id!r}")
            if found[1] != "open":
                raise Refused(409, "request_id", f"request {request_id!r} is {found[1]}: only an open one")
            self.store.set_request_status(request_id, "withdrawn")

    # -- offers -----------------------------------------------------------------------

    def post_offer(self, offer: MarketOffer, fsp: str, now: datetime) -> MarketOffer:
        """Accept an FSP's offer: its own, at a known congestion point, before gate closure and expiry."""
        if offer.fsp != fsp:
            raise Refused(403, "fsp", f"FSP {fsp!r} may not offer for {offer.fsp!r}")
        if fsp not in self.config.fsps:
            raise Refused(403, "fsp", f"unknown FSP {fsp!r}")
        self._check_place(offer)
        if offer.expires <= now:
            raise Refused(422, "expires", f"expired at {offer.expires.isoformat()} (now {now.isoformat()})")
        first = min(i.start for o in offer.options for i in o.isps)
        try:
            check_gate(now, first, self.config.gate_closure_s)
        except MarketRefusal as exc:
            raise Refused(422, "options", str(exc)) from None
        prognosis = _offer_prognosis(offer)
        with self._lock, self.store.write():
            if offer.request_id is not None:
                found = self.store.request(offer.request_id)
                if found is None:
                    raise Refused(422, "request_id", f"no request {offer.request_id!r}")
                if found[0].congestion_point != offer.congestion_point:
                    raise Refused(
                        422, "request_id", f"request {offer.request_id!r} is at another congestion point"
                    )
            if self.store.offer(offer.offer_id) is not None:
                raise Refused(409, "offer_id", f"offer {offer.offer_id!r} exists already")
            self.store.put_offer(offer, "open", _ts(now))
            if prognosis is not None:
                self.store.put_prognosis(prognosis, _ts(now))
        return offer

    def post_prognosis(self, prognosis: MarketPrognosis, fsp: str, now: datetime) -> MarketPrognosis:
        """The FSP's prognosis for its own open offer, before the offer's gate closure (replaces an earlier one)."""
        if prognosis.fsp != fsp:
            raise Refused(403, "fsp", f"FSP {fsp!r} may not give a prognosis for {prognosis.fsp!r}")
        with self._lock, self.store.write():
            found = self.store.offer(prognosis.offer_id)
            if found is None:
                raise Refused(404, "offer_id", f"no offer {prognosis.offer_id!r}")
            offer, status, _ = found
            if offer.fsp != fsp:
                raise Refused(403, "offer_id", f"offer {prognosis.offer_id!r} belongs to another FSP")
            if status != "open":
                raise Refused(
                    409, "offer_id", f"offer {prognosis.offer_id!r} is {status}: only an open offer"
                )
            first = min(i.start for o in offer.options for i in o.isps)
            try:
                check_gate(now, first, self.config.gate_closure_s)
            except MarketRefusal as exc:
                raise Refused(422, "ts", str(exc)) from None
            _check_prognosis(prognosis, offer, "isps")
            self.store.put_prognosis(prognosis, _ts(now))
        return prognosis

    def _check_place(self, offer: MarketOffer) -> None:
        """A known congestion point, and only sites behind it."""
        sites = self.config.congestion_points.get(offer.congestion_point)
        if sites is None:
            raise Refused(422, "congestion_point", f"unknown congestion point {offer.congestion_point!r}")
        outside = sorted(set(offer.sites) - set(sites))
        if outside:
            raise Refused(422, "sites", f"not behind {offer.congestion_point!r}: {', '.join(outside)}")

    def revoke_offer(self, offer_id: str, fsp: str | None) -> MarketOffer:
        """Revoke an open offer (`fsp` None: the operator may revoke any)."""
        with self._lock, self.store.write():
            found = self.store.offer(offer_id)
            if found is None:
                raise Refused(404, "offer_id", f"no offer {offer_id!r}")
            offer, status, _ = found
            if fsp is not None and offer.fsp != fsp:
                raise Refused(403, "offer_id", f"offer {offer_id!r} belongs to another FSP")
            if status != "open":
                raise Refused(
                    409, "offer_id", f"offer {offer_id!r} is {status}: only an open offer can be revoked"
                )
            self.store.set_offer_status(offer_id, "revoked")
        return offer

    # -- clearing ---------------------------------------------------------------------

    def gate_of(self, req: MarketRequest) -> datetime:
        """When offers for `req` close: its first ISP minus the gate closure."""
        return min(i.start for i in req.isps) - timedelta(seconds=self.config.gate_closure_s)

    def next_gate(self) -> datetime | None:
        """The earliest gate closure of the open requests (the automatic clearing's next time)."""
        gates = [self.gate_of(r) for r, _ in self.store.requests("open")]
        return min(gates) if gates else None

    def clear(
        self, now: datetime, *, gate_closed_only: bool = False, view: GridView | None = None
    ) -> ClearingRecord | None:
        """Clear the open requests (only those past gate closure if asked) against the open offers.

        None when there is nothing to clear. Expired open offers are marked expired. With a
        grid `view` (the latest forecast), the clearing has grid rows for every other element
        and the AC check (grid_check.py); a clearing the AC check blocks marks its requests
        `blocked` (no orders: the curative guard keeps the grid).
        """
        with self._lock, self.store.write():
            reqs = [
                r for r, _ in self.store.requests("open") if not gate_closed_only or self.gate_of(r) <= now
            ]
            if not reqs:
                return None
            cps = {r.congestion_point for r in reqs}
            offers = []
            wires: dict[str, MarketOffer] = {}
            sites: dict[str, list[str]] = {}
            cand = [
                (o, r)
                for o, _, r in self.store.offers(status="open")
                if o.congestion_point in cps or o.expires <= now
            ]
            unsettleable = freeze_baselines(self.store, [o for o, _ in cand if o.expires > now], view, now)
            for offer, received in cand:
                if offer.expires <= now:
                    self.store.set_offer_status(offer.offer_id, "expired")
                elif offer.offer_id in unsettleable:
                    self.store.set_offer_status(offer.offer_id, "refused")
                else:
                    offers.append(_core_offer(offer, datetime.fromtimestamp(received, UTC)))
                    wires[offer.offer_id] = offer
                    sites[offer.offer_id] = list(offer.sites)
            opts = ClearingOptions(pricing=self.config.pricing, gate_closure_s=self.config.gate_closure_s)
            result = clear_on_grid(
                [_core_request(r) for r in reqs],
                offers,
                sites,
                now=now,
                options=opts,
                view=view,
                risk=self.config.auto_request.risk,
            )
            clearing_id = f"c{int(now.timestamp())}-{len(self.store.clearings()) + 1}"
            orders = [
                MarketOrder(
                    order_id=f"{o.offer_id}:{o.option_id}",
                    clearing_id=clearing_id,
                    offer_id=o.offer_id,
                    option_id=o.option_id,
                    fsp=o.fsp,
                    congestion_point=o.congestion_point,
                    ts=now,
                    factor=min(1.0, max(0.0, o.factor)),
                    isps=[MarketIsp(start=t, kw=max(0.0, kw)) for t, kw in sorted(o.kw.items())],
                    price_eur_per_kwh=o.price_eur_per_kwh,
                    price_eur=o.price_eur,
                    baseline=wires[o.offer_id].baseline,
                )
                for o in result.orders
            ]
            summary = {
                "clearing_id": clearing_id,
                "at": now.isoformat(),
                "status": result.status,
                "pricing": self.config.pricing,
                "requests": [r.request_id for r in reqs],
                "cost_eur": result.cost_eur,
                "welfare_eur": result.welfare_eur,
                "mip_gap": result.mip_gap,
                "shortfall": [
                    {"congestion_point": cp, "start": t.isoformat(), "kw": kw}
                    for (cp, t), kw in sorted(result.shortfall_kw.items())
                ],
                "refused": [{"offer_id": o, "reason": why} for o, why in result.refused]
                + [{"offer_id": o, "reason": why} for o, why in unsettleable.items()],
                "violations": list(result.violations),
                "grid": None
                if view is None
                else {"rows": result.grid_rows, "risk": self.config.auto_request.risk},
            }
            self.store.put_clearing(clearing_id, _ts(now), summary, orders)
            short_cps = {cp for cp, _ in result.shortfall_kw}
            for r in reqs:
                status = "partial" if r.congestion_point in short_cps else "cleared"
                if result.status == "ac_check_failed":
                    status = "blocked"
                self.store.set_request_status(r.request_id, status)
            ordered = {o.offer_id for o in orders}
            refused = {o for o, _ in result.refused}
            for off in offers:
                status = (
                    "ordered"
                    if off.offer_id in ordered
                    else "refused"
                    if off.offer_id in refused
                    else "not_ordered"
                )
                self.store.set_offer_status(off.offer_id, status)
        return ClearingRecord(clearing_id, summary, orders)

    # -- settlement -------------------------------------------------------------------

    def settle_due(
        self, now: datetime, metering: Metering, *, prefetch: Prefetch | None = None
    ) -> tuple[list[MarketSettlement], list[dict[str, str]]]:
        """Settle every unsettled order whose last ISP has ended; (settlements, failures with reasons).

        In the write section: of two controllers settling at once, one settles, the other finds it done.
        `prefetch` is told every due order's metering first (the endpoints' one array read).
        """
        with self._lock, self.store.write():
            return settle_due(self.store, now, metering, self.config.penalty_factor, prefetch=prefetch)

    def settle_period(
        self,
        start: datetime,
        end: datetime,
        now: datetime,
        metering: Metering,
        *,
        prefetch: Prefetch | None = None,
    ) -> PeriodSettlement:
        """Settle every order of [start, end) from the store; revisions only where the numbers changed."""
        with self._lock, self.store.write():
            return settle_period(
                self.store, start, end, now, metering, self.config.penalty_factor, prefetch=prefetch
            )


def _offer_prognosis(offer: MarketOffer) -> MarketPrognosis | None:
    """The prognosis given with the offer, checked against its ISPs (422 on `prognosis`)."""
    if offer.prognosis is None:
        return None
    prognosis = MarketPrognosis(offer_id=offer.offer_id, fsp=offer.fsp, ts=offer.ts, isps=offer.prognosis)
    _check_prognosis(prognosis, offer, "prognosis")
    return prognosis


def _check_prognosis(prognosis: MarketPrognosis, offer: MarketOffer, field: str) -> None:
    gap = prognosis_gap([i.start for i in prognosis.isps], {i.start for o in offer.options for i in o.isps})
    if gap is not None:
        raise Refused(422, field, gap)


def _core_request(r: MarketRequest) -> FlexRequest:
    return FlexRequest(
        request_id=r.request_id,
        congestion_point=r.congestion_point,
        needed_kw={i.start: i.kw for i in r.isps},
        value_eur_per_kwh=r.value_eur_per_kwh,
        product=Product(r.product),
        revision=r.revision,
    )


def _core_offer(o: MarketOffer, received: datetime) -> FlexOffer:
    return FlexOffer(
        offer_id=o.offer_id,
        fsp=o.fsp,
        congestion_point=o.congestion_point,
        options=tuple(
            OfferOption(
                option_id=opt.option_id,
                kw={i.start: i.kw for i in opt.isps},
                price_eur_per_kwh=opt.price_eur_per_kwh,
                min_activation_factor=opt.min_activation_factor,
            )
            for opt in o.options
        ),
        submitted=received,
        expires=o.expires,
        request_id=o.request_id,
    )
