"""The controller's UFTP participant: the transport, the DSO role on the book, the AGR role on DR.

Built by the controller when `market.uftp.enabled` (`controller_uftp`). As DSO it is one
of the market shell's outlets: each accepted request goes out as FlexRequests, each
clearing's orders on UFTP offers as FlexOrders, their settlements as FlexSettlements
(the MQTT FSPs are the shell's as before).
As AGR its offers come from `DrService.preview` and its orders run the same steps as
`POST /dr/requests` (submit, baselines, the activator's first tick, the retained topic);
its D-Prognoses come from the last plan's per-site forecasts (measured power beyond the
plan's horizon) and its Metering from the store's ISP means (`agr_prognosis.py`);
`plan_changed` (the controller calls it after each plan) re-sends a prognosis the new
plan changed (`agr_resend.py`), `start` arms the Metering a restart left scheduled.
A message that cannot be sent is counted (`node.stats.send_failed`) and kept in
`node.failures`, never raised into the market's own path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends

from cloud_controller.market.book import Book, ClearingRecord
from cloud_controller.market.uftp.agr import Execute, Preview, UftpAgr
from cloud_controller.market.uftp.agr_prognosis import (
    AgrPrognoses,
    PrognosisSources,
    plan_portfolio_kw,
)
from cloud_controller.market.uftp.agr_resend import PrognosisResender
from cloud_controller.market.uftp.config import UftpConfig
from cloud_controller.market.uftp.dso import UftpDso
from cloud_controller.market.uftp.envelope import SigningKey
from cloud_controller.market.uftp.metering_api import metering_router
from cloud_controller.market.uftp.node import UftpNode, UftpSendError
from cloud_controller.market.uftp.prognosis_messages import DPrognosis
from cloud_controller.market.uftp.router import uftp_router
from cloud_controller.market.uftp.store import UftpStore
from protocols.assets import Points
from protocols.clock import Clock
from protocols.errors import ConfigError
from protocols.market import MarketRequest, MarketSettlement
from protocols.messages import DRRequest

if TYPE_CHECKING:
    from cloud_controller.dr.requests_store import DrRecord
    from cloud_controller.service import CloudController

__all__ = ["UftpSide", "controller_uftp", "load_key"]

log = logging.getLogger(__name__)


def load_key(config: UftpConfig) -> SigningKey:
    """Our signing key from `signing_key_file`, or a new one (its public half logged for the peers)."""
    if config.signing_key_file is None:
        key = SigningKey.generate()
        log.info("UFTP signing key generated for %s; public key %s", config.domain, key.public_b64)
        return key
    try:
        return SigningKey.from_b64(config.signing_key_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            str(exc), file=str(config.signing_key_file), key="market.uftp.signing_key_file"
        ) from None


class UftpSide:
    """GridFlex in UFTP: `node` and the roles it plays."""

    def __init__(
        self,
        config: UftpConfig,
        *,
        clock: Clock,
        book: Book,
        preview: Preview,
        execute: Execute,
        key: SigningKey | None = None,
        store_path: Path | None = None,
        sources: PrognosisSources | None = None,
    ) -> None:
        #: the operator's dependency guarding `POST /uftp/metering/{day}` (none: route not mounted)
        self.write: list[Any] = []
        self._plan_task: asyncio.Task[list[DPrognosis]] | None = None
        self.node = UftpNode(config, key or load_key(config), clock=clock)
        self.store = UftpStore(store_path) if store_path is not None else None
        self.dso = UftpDso(self.node, book, store=self.store) if "DSO" in config.roles else None
        prognoses = (
            AgrPrognoses(self.node, sources, store=self.store)
            if sources is not None and "AGR" in config.roles
            else None
        )
        self.resender = (
            PrognosisResender(prognoses, config.prognosis_min_interval_s) if prognoses is not None else None
        )
        self.agr = (
            UftpAgr(
                self.node,
                preview=preview,
                execute=execute,
                store=self.store,
                prognoses=prognoses,
                resender=self.resender,
            )
            if "AGR" in config.roles
            else None
        )

    def router(self, *, read: Sequence[Any] = ()) -> APIRouter:
        """`/uftp/dso`, `/uftp/agr`, `/uftp/status` (behind `read`), `/uftp/key`.

        With our AGR's prognoses and `write`: `POST /uftp/metering/{day}` too.
        """
        router = APIRouter()
        router.include_router(uftp_router(self.node, read=read))
        if self.agr is not None and self.agr.prognoses is not None and self.write:
            router.include_router(metering_router(self.agr.prognoses, write=self.write))
        return router

    def start(self) -> int:
        """At the controller's start (in its loop): arm the Metering still scheduled; how many."""
        if self.agr is None or self.agr.prognoses is None:
            return 0
        return self.agr.prognoses.start()

    async def plan_changed(self) -> list[DPrognosis]:
        """After each plan: re-send each D-Prognosis the plan changed (at most one per interval); never raises."""
        if self.resender is None:
            return []
        try:
            return await self.resender.resend_changed()
        except UftpSendError as exc:
            self._failed("D-Prognosis", exc)
            return []

    def notify_plan(self) -> asyncio.Task[list[DPrognosis]] | None:
        """`plan_changed` in a task, so the dispatch loop never waits on a DSO; None while one runs.

        A plan that comes while the previous one's re-sends are still out is skipped: the
        next plan rebuilds from the newest forecast anyway.
        """
        if self.resender is None or (self._plan_task is not None and not self._plan_task.done()):
            return None
        self._plan_task = asyncio.create_task(self.plan_changed(), name="uftp-plan-changed")
        return self._plan_task

    def _failed(self, what: str, exc: Exception) -> None:
        self.node.failures.append({"message": what, "message_id": "", "reason": str(exc)})
        log.warning("UFTP %s not sent: %s", what, exc)

    async def request_posted(self, req: MarketRequest) -> None:
        """The market shell's outlet: an accepted request to every AGR peer."""
        if self.dso is not None:
            try:
                await self.dso.send_request(req)
            except UftpSendError as exc:
                self._failed("FlexRequest", exc)

    async def clearing_done(self, record: ClearingRecord) -> None:
        """The market shell's outlet: the orders on UFTP offers to their AGRs."""
        if self.dso is not None:
            try:
                await self.dso.send_orders(record)
            except UftpSendError as exc:
                self._failed("FlexOrder", exc)

    async def settled(self, settlements: list[MarketSettlement]) -> None:
        """The market shell's outlet: settlements of UFTP orders as FlexSettlements."""
        if self.dso is not None:
            try:
                await self.dso.send_settlements(settlements)
            except UftpSendError as exc:
                self._failed("FlexSettlement", exc)

    async def send_metering(self, day: date) -> int:
        """AGR role: Metering of `day` (local) to every DSO peer with EANs, after delivery; how many sent."""
        if self.agr is None or self.agr.prognoses is None:
            return 0
        sent = 0
        for peer in self.node.peers("DSO"):
            try:
                sent += len(await self.agr.prognoses.send_metering(peer, day))
            except UftpSendError as exc:
                self._failed("Metering", exc)
        return sent

    def status(self) -> dict[str, Any]:
        """The node's counters and what each role saw."""
        out = self.node.status()
        if self.dso is not None:
            out["dso"] = {
                "requests_sent": len(self.dso.requests),
                "offers_booked": self.dso.log.offers_booked,
                "offers_rejected": self.dso.log.offers_rejected,
                "orders": [
                    {"order_id": o.order_id, "peer": o.peer, "result": o.result, "reason": o.reason}
                    for o in self.dso.orders.values()
                ],
                "settlement_answers": self.dso.log.settlement_answers,
            }
        if self.agr is not None:
            out["agr"] = {
                "offers": len(self.agr.offers),
                "orders": [o.model_dump(mode="json") for o in self.agr.orders.values()],
                "requests_rejected": self.agr.log.requests_rejected,
                "orders_rejected": self.agr.log.orders_rejected,
                "settlements": self.agr.log.settlements,
                **(self.agr.prognoses.status() if self.agr.prognoses is not None else {}),
            }
        return out

    async def aclose(self) -> None:
        """Wait for running handlers (bounded), close the HTTP client and the store."""
        if self._plan_task is not None and not self._plan_task.done():
            self._plan_task.cancel()
            await asyncio.wait([self._plan_task], timeout=5.0)
        if self.resender is not None:
            await self.resender.aclose()
        if self.agr is not None and self.agr.prognoses is not None:
            await self.agr.prognoses.aclose()
        await self.node.aclose()
        if self.store is not None:
            self.store.close()


def controller_uftp(controller: CloudController) -> UftpSide:
    """The controller's UFTP side: the book of `controller.market`, DR through `controller.dr`."""
    from cloud_controller.dr.feeders import station_grid_of

    def _grid() -> Any:
        return station_grid_of(controller.built_planner, controller.congestion.latest)

    async def preview(req: DRRequest) -> dict[str, Any]:
        return await asyncio.to_thread(
            controller.dr.preview,
            req,
            dict(controller.snapshots),
            sites=controller.dr_activator.ctx.sites,
            grid=_grid(),
        )

    async def execute(req: DRRequest) -> DrRecord:
        """The steps of `POST /dr/requests` (api.py): submit, baselines, first tick, the retained topic."""
        record = await asyncio.to_thread(
            controller.dr.submit,
            req,
            dict(controller.snapshots),
            sites=controller.dr_activator.ctx.sites,
            grid=_grid(),
        )
        controller.dr_requests.append(req)
        await asyncio.to_thread(controller.dr_activator.prepare, record)
        await controller.dr_activator.tick()
        await controller.publish_dr(req)
        return record

    async def forecast(
        sites: Sequence[str], bounds: Sequence[tuple[datetime, datetime]]
    ) -> dict[str, list[float]]:
        plan = controller.last_plan
        snaps = dict(controller.snapshots)
        return plan_portfolio_kw(
            sites,
            bounds,
            plan_at=plan.at if plan is not None else None,
            period_s=plan.period_s if plan is not None else 0.0,
            site_forecast_kw=plan.site_forecast_kw if plan is not None else None,
            site_order=controller.dr_activator.ctx.site_order,
            p_now_kw={s: snaps[s].p_net_kw if s in snaps else None for s in sites},
        )

    async def means(sites: Sequence[str], start: datetime, end: datetime, step_s: float) -> Any:
        return await asyncio.to_thread(
            controller.store.read_bucket_means, sites, Points.METER_P_KW, start, end, step_s
        )

    config = controller.config.market.uftp
    side = UftpSide(
        config,
        # beside the time-series store (the market's own may be on PostgreSQL: no file to sit beside)
        store_path=config.store_path or controller.config.store.path.with_name("uftp.sqlite"),
        clock=controller.clock,
        book=controller.market.book,
        preview=preview,
        execute=execute,
        sources=PrognosisSources(forecast, means),
    )
    side.write = [Depends(controller.auth.write)]
    return side
