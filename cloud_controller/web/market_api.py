"""The market's HTTP API (`/market/...`) and its two dashboard pages (market, settlement).

Roles (`cloud_controller/market/roles.py`): the DSO posts requests, an FSP posts and
revokes its own offers and reads only its own offers, orders and settlements, the market
operator (the controller's operator role) clears and settles. A body is the wire model of
`protocols.market`; anything wrong is a 422 whose detail names the field and the reason
(`[{"field": "options.0.price_eur_per_kwh", "reason": "..."}]`), a late offer's reason
names the gate closure. The pages are server-rendered tables (no script, nothing fetched
from another host), like the rest of the dashboard offline.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Self, TypeVar

from fastapi import APIRouter, FastAPI, HTTPException, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError, model_validator

from cloud_controller.market.accuracy import accuracy_report
from cloud_controller.market.batch_orders import ArrayMetering
from cloud_controller.market.book import Metering, Refused
from cloud_controller.market.disputes import dispute_settlement, resolve_dispute
from cloud_controller.market.metering import store_metering
from cloud_controller.market.products import ISP_S
from cloud_controller.market.roles import Actor, MarketAuth
from cloud_controller.market.uftp.dso_prognosis import uftp_metering
from cloud_controller.web.pages import Dashboard
from protocols.market import DisputeBody, MarketOffer, MarketPrognosis, MarketRequest, ResolveBody

if TYPE_CHECKING:
    from cloud_controller.market.shell import MarketShell
    from cloud_controller.service import CloudController

__all__ = ["market_router", "mount_market_pages"]

M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "reason": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise HTTPException(422, errors) from None


#: the longest period one batch settlement covers (a quarter's orders)
MAX_PERIOD_DAYS = 93


class SettlePeriod(BaseModel):
    """`POST /market/settlements`: a UTC `day`, or an ISP range `start` .. `end` (end excluded)."""

    model_config = ConfigDict(extra="forbid")

    day: date | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_period(self) -> Self:
        if (self.day is None) == (self.start is None and self.end is None):
            raise ValueError("give either day or start and end")
        if self.day is None:
            if self.start is None or self.end is None:
                raise ValueError("give both start and end")
            for t in (self.start, self.end):
                if t.timestamp() % ISP_S:
                    raise ValueError(f"{t.isoformat()} is not on the {ISP_S / 60:g}-min ISP grid")
            if self.end <= self.start:
                raise ValueError("end must be after start")
            if self.end - self.start > timedelta(days=MAX_PERIOD_DAYS):
                raise ValueError(f"a period of at most {MAX_PERIOD_DAYS} days")
        return self

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) in UTC."""
        if self.day is not None:
            start = datetime.combine(self.day, time(), tzinfo=UTC)
            return start, start + timedelta(days=1)
        assert self.start is not None and self.end is not None
        return self.start.astimezone(UTC), self.end.astimezone(UTC)


def _refused(exc: Refused) -> HTTPException:
    return HTTPException(exc.status, [exc.detail()])


def _visible(actor: Actor, fsp: str | None) -> str | None:
    """The FSP whose rows `actor` reads: its own for an FSP (another's is 403), else the filter asked."""
    if actor.role == "fsp":
        if fsp is not None and fsp != actor.fsp:
            raise HTTPException(403, f"FSP {actor.fsp!r} may not read FSP {fsp!r}'s market data")
        return actor.fsp
    return fsp


def market_router(controller: CloudController, market: MarketShell, roles: MarketAuth) -> APIRouter:
    """Every `/market/...` endpoint; each checks its caller's role itself."""
    router = APIRouter(prefix="/market", tags=["market"])
    book = market.book

    @router.get("/status")
    def status(request: Request) -> dict[str, Any]:
        roles.actor(request)
        return market.status()

    @router.post("/requests", status_code=201)
    async def post_request(request: Request) -> dict[str, Any]:
        """The DSO's FlexRequest (a higher `revision` of an open request replaces it)."""
        roles.need(request, "dso")
        req = _parse(MarketRequest, await request.body())
        try:
            # a worker thread: the write section may wait for another controller's (store/records.py)
            await asyncio.to_thread(book.post_request, req, controller.clock.now())
        except Refused as exc:
            raise _refused(exc) from None
        sent = await market.request_posted(req)
        return {"request": req.model_dump(mode="json"), "status": "open", "sent_to_fsps": sent}

    @router.get("/requests")
    def requests(request: Request) -> list[dict[str, Any]]:
        roles.actor(request)
        return [{"request": r.model_dump(mode="json"), "status": s} for r, s in book.store.requests()]

    @router.get("/requests/{request_id}")
    def one_request(request_id: str, request: Request) -> dict[str, Any]:
        roles.actor(request)
        found = book.store.request(request_id)
        if found is None:
            raise HTTPException(404, f"no market request {request_id!r}")
        return {"request": found[0].model_dump(mode="json"), "status": found[1]}

    _offer_routes(router, controller, market, roles)
    _clearing_routes(router, controller, market, roles)
    _dispute_routes(router, controller, market, roles)
    return router


def _offer_routes(
    router: APIRouter, controller: CloudController, market: MarketShell, roles: MarketAuth
) -> None:
    """Offers: posted, listed and revoked."""
    book = market.book

    @router.post("/offers", status_code=201)
    async def post_offer(request: Request) -> dict[str, Any]:
        """An FSP's FlexOffer, its own only; refused after gate closure or expiry, naming which."""
        actor = roles.need(request, "fsp")
        offer = _parse(MarketOffer, await request.body())
        try:
            await asyncio.to_thread(book.post_offer, offer, actor.fsp or "", controller.clock.now())
        except Refused as exc:
            raise _refused(exc) from None
        return {"offer": offer.model_dump(mode="json"), "status": "open"}

    @router.post("/prognoses", status_code=201)
    async def post_prognosis(request: Request) -> dict[str, Any]:
        """The FSP's own baseline for its open offer, before the offer's gate closure."""
        actor = roles.need(request, "fsp")
        prognosis = _parse(MarketPrognosis, await request.body())
        try:
            await asyncio.to_thread(book.post_prognosis, prognosis, actor.fsp or "", controller.clock.now())
        except Refused as exc:
            raise _refused(exc) from None
        return {"prognosis": prognosis.model_dump(mode="json")}

    @router.get("/prognoses")
    def prognoses(request: Request, fsp: str | None = None) -> list[dict[str, Any]]:
        who = _visible(roles.actor(request), fsp)
        return [p.model_dump(mode="json") for p in book.store.prognoses(who)]

    @router.get("/offers")
    def offers(request: Request, fsp: str | None = None) -> list[dict[str, Any]]:
        who = _visible(roles.actor(request), fsp)
        return [{"offer": o.model_dump(mode="json"), "status": s} for o, s, _ in book.store.offers(fsp=who)]

    @router.delete("/offers/{offer_id}")
    def revoke(offer_id: str, request: Request) -> dict[str, Any]:
        """Revocation of an open offer by its FSP (or by the operator)."""
        actor = roles.need(request, "fsp", "operator")
        try:
            offer = book.revoke_offer(offer_id, actor.fsp if actor.role == "fsp" else None)
        except Refused as exc:
            raise _refused(exc) from None
        return {"offer": offer.model_dump(mode="json"), "status": "revoked"}


def _clearing_routes(
    router: APIRouter, controller: CloudController, market: MarketShell, roles: MarketAuth
) -> None:
    """Clearing, orders and settlement."""
    book = market.book

    @router.post("/clear")
    async def clear_market(request: Request) -> dict[str, Any]:
        """Clear every open request now (the operator's; automatic clearing waits for gate closure)."""
        roles.need(request, "operator")
        record = await market.clear_now()
        if record is None:
            raise HTTPException(409, [{"field": "requests", "reason": "no open request to clear"}])
        return {**record.summary, "orders": [o.model_dump(mode="json") for o in record.orders]}

    @router.get("/clearings")
    def clearings(request: Request) -> list[dict[str, Any]]:
        roles.actor(request)
        return book.store.clearings()

    @router.get("/orders")
    def orders(request: Request, fsp: str | None = None) -> list[dict[str, Any]]:
        """Each order with `execution`: how our own aggregator carries it out (None: another FSP's)."""
        who = _visible(roles.actor(request), fsp)
        return [
            o.model_dump(mode="json") | {"execution": market.own.state(o)} for o in book.store.orders(who)
        ]

    @router.post("/settle")
    async def settle_market(request: Request) -> dict[str, Any]:
        """Settle every order whose ISPs are over, from the sites' stored meter power."""
        roles.need(request, "operator")
        meter, metering = _metering(controller, market)
        done, failed = await market.settle_now(metering, prefetch=meter.prepare)
        return {"settled": [s.model_dump(mode="json") for s in done], "failed": failed}

    @router.post("/settlements")
    async def settle_period(request: Request) -> dict[str, Any]:
        """Settle every order of a period from the store; a second call returns the same settlements."""
        roles.need(request, "operator")
        start, end = _parse(SettlePeriod, await request.body()).bounds()
        meter, metering = _metering(controller, market)
        done = await asyncio.to_thread(
            book.settle_period, start, end, controller.clock.now(), metering, prefetch=meter.prepare
        )
        if done.changed:
            await market.settled(done.changed)
        totals = {
            k: sum(float(getattr(s, k)) for s in done.settlements)
            for k in ("price_eur", "penalty_eur", "net_eur", "delivered_kwh", "deficiency_kwh")
        }
        return {
            "period": {"start": start.isoformat(), "end": end.isoformat()},
            "counts": {
                "settled": len(done.settlements),
                "new": len(done.new),
                "revised": len(done.revised),
                "unchanged": len(done.unchanged),
                "failed": len(done.failed),
                "not_due": len(done.not_due),
            },
            "totals": totals,
            "settlements": [s.model_dump(mode="json") for s in done.settlements],
            "failed": done.failed,
            "not_due": done.not_due,
        }

    @router.get("/settlements")
    def settlements(request: Request, fsp: str | None = None) -> list[dict[str, Any]]:
        """Each settlement with its dispute's status (None: not disputed)."""
        who = _visible(roles.actor(request), fsp)
        disputes = {d.order_id: d.status for d in book.store.disputes(who)}
        return [
            s.model_dump(mode="json") | {"dispute": disputes.get(s.order_id)}
            for s in book.store.settlements(who)
        ]


def _metering(controller: CloudController, market: MarketShell) -> tuple[ArrayMetering, Metering]:
    """The endpoints' metering: the store's, one array read for all due orders; the AGRs' Metering first."""
    meter = ArrayMetering(controller.store, holidays=market.config.holidays)
    metering: Metering = meter
    if controller.uftp is not None and controller.uftp.dso is not None:
        metering = uftp_metering(metering, controller.uftp.dso.prognoses)
    return meter, metering


def _dispute_routes(
    router: APIRouter, controller: CloudController, market: MarketShell, roles: MarketAuth
) -> None:
    """Disputes: the FSP disputes its settlement, the operator accepts (settled again) or rejects."""
    book = market.book

    @router.post("/settlements/{order_id}/dispute", status_code=201)
    async def dispute(order_id: str, request: Request) -> dict[str, Any]:
        actor = roles.need(request, "fsp")
        body = _parse(DisputeBody, await request.body())
        try:
            d = await asyncio.to_thread(
                dispute_settlement, book, order_id, actor.fsp or "", body.reason, controller.clock.now()
            )
        except Refused as exc:
            raise _refused(exc) from None
        return d.model_dump(mode="json")

    @router.get("/baselines/accuracy")
    def accuracy(request: Request, fsp: str | None = None, days: int = 28) -> dict[str, Any]:
        """Per FSP and baseline method, the error against the metered load on days without an order."""
        who = _visible(roles.actor(request), fsp)
        fsps = sorted(market.config.fsps) if who is None else [who]
        try:
            return accuracy_report(
                book.store,
                controller.store,
                fsps,
                controller.clock.now(),
                days,
                holidays=market.config.holidays,
            )
        except ValueError as exc:
            raise HTTPException(422, [{"field": "days", "reason": str(exc)}]) from None

    @router.get("/disputes")
    def disputes(request: Request, fsp: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        who = _visible(roles.actor(request), fsp)
        return [d.model_dump(mode="json") for d in book.store.disputes(who, status)]

    @router.post("/disputes/{order_id}/resolve")
    async def resolve(order_id: str, request: Request) -> dict[str, Any]:
        """Accept (settle again against the stated baseline, sent to the FSP) or reject, with the reason."""
        roles.need(request, "operator")
        body = _parse(ResolveBody, await request.body())
        try:
            d, new = await asyncio.to_thread(
                resolve_dispute,
                book,
                order_id,
                body,
                controller.clock.now(),
                store_metering(controller.store, holidays=market.config.holidays),
            )
        except Refused as exc:
            raise _refused(exc) from None
        if new is not None:
            await market.settled([new])
        return {
            "dispute": d.model_dump(mode="json"),
            "settlement": None if new is None else new.model_dump(mode="json"),
        }


def _market_context(controller: CloudController, request: Request) -> dict[str, Any]:
    """The market page: requests, offers, and the cleared kW per congestion point and ISP."""
    store = controller.market.store
    cleared: dict[tuple[str, str], float] = defaultdict(float)
    for o in store.orders():
        for i in o.isps:
            cleared[(o.congestion_point, i.start.isoformat())] += i.kw
    return {
        "requests": store.requests(),
        "offers": [(o, s) for o, s, _ in store.offers()],
        "cleared": [
            {"congestion_point": cp, "start": t, "kw": kw} for (cp, t), kw in sorted(cleared.items())
        ],
        "orders": store.orders(),
        "clearings": store.clearings(),
    }


def _settlement_context(controller: CloudController, request: Request) -> dict[str, Any]:
    """The settlement page: per order and ISP, and the totals per FSP."""
    store = controller.market.store
    settlements = store.settlements()
    per_fsp: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in settlements:
        for key in ("price_eur", "penalty_eur", "net_eur", "delivered_kwh", "deficiency_kwh"):
            per_fsp[s.fsp][key] += float(getattr(s, key))
    return {
        "settlements": settlements,
        "per_fsp": {f: dict(v) for f, v in sorted(per_fsp.items())},
        "disputes": store.disputes(),
    }


def mount_market_pages(app: FastAPI, dashboard: Dashboard) -> None:
    """`/ui/market` and `/ui/settlement` in the dashboard's navigation."""
    dashboard.add_page(app, "/ui/market", "Market", "market.html", _market_context)
    dashboard.add_page(app, "/ui/settlement", "Settlement", "settlement.html", _settlement_context)
