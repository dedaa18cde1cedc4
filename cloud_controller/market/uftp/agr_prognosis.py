"""GridFlex as UFTP AGR sends its D-Prognosis and Metering: what the DSO settles our orders on.

- **D-Prognosis**: our portfolio's power at one of the DSO's congestion points (the sites
  `peer.congestion_points` puts behind it) for every ISP of a local day (92/96/100 across
  DST; UFTP: always all of them), W, positive = consumption. The source is what the
  controller already has, not a new model: each site's median forecast of the last plan
  where the plan's horizon covers the ISP, the site's measured power beyond it
  (`plan_portfolio_kw`, the DR baselines' rule, `dr/delivery.baseline_per_interval`). Sent
  with each FlexOffer we make (which names it, `D-PrognosisMessageID`) and whenever
  `send_prognosis` is called again; each re-send of a (peer, point, day) has the next
  Revision (kept in `uftp.sqlite`, so a restart does not send a revision twice). The
  FlexOrders we executed at that point and day are part of it (`record_order`: the ordered
  W added to the forecast in their ISPs), because that is what we now expect there;
  `agr_resend.py` re-sends it on its own when it changes.
- **Metering**: after delivery, each of the peer's EANs (`peer.eans`: EAN -> our site) as
  a `Power` profile in kW per ISP: the ISP means of the site's meter power from the
  time-series store (`Store.read_bucket_means`), only ISPs that have ended and have
  samples; a day with none is not sent. Values with 3 decimals (an xsd:decimal, never an
  exponent). Re-sending a day raises its Revision. `schedule_metering` sends it once the
  delivery is over (the AGR role calls it for each order it executes: one ISP after the
  order's last, so the telemetry of that ISP has arrived); a failed send is kept in the
  node's `failures`. The schedule is kept in `uftp.sqlite` (`MeteringDue`): `start` arms
  what a restart left undone and sends at once what fell due meanwhile.
- The DSO's D-PrognosisResponse / MeteringResponse are kept with the message (result,
  reason) for `GET /uftp/status` and the tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from cloud_controller.market.uftp.agr_profiles import (
    day_bounds,
    metering_isps,
    plan_portfolio_kw,
    prognosis_isps,
)
from cloud_controller.market.uftp.config import UftpPeer
from cloud_controller.market.uftp.isp import ISP
from cloud_controller.market.uftp.node import UftpNode, UftpSendError
from cloud_controller.market.uftp.prognosis_messages import (
    DPrognosis,
    DPrognosisResponse,
    Metering,
    MeteringProfile,
    MeteringResponse,
)
from cloud_controller.market.uftp.store import Ledger, UftpStore

__all__ = [
    "AgrPrognoses",
    "BucketMeans",
    "MeteringDue",
    "OrderedPower",
    "PortfolioForecast",
    "PrognosisSources",
    "SentMetering",
    "SentPrognosis",
    "day_bounds",
    "metering_isps",
    "plan_portfolio_kw",
    "prognosis_isps",
]

log = logging.getLogger(__name__)

#: (sites, ISP bounds) -> kW per site per ISP (load positive)
PortfolioForecast = Callable[
    [Sequence[str], Sequence[tuple[datetime, datetime]]], Awaitable[dict[str, list[float]]]
]
#: (sites, start, end, step_s) -> (sites x buckets) mean meter kW, NaN where none (`Store.read_bucket_means`)
BucketMeans = Callable[[Sequence[str], datetime, datetime, float], Awaitable[Any]]


@dataclass(frozen=True)
class PrognosisSources:
    """Where our D-Prognosis and Metering values come from (the controller's: `side.controller_uftp`)."""

    forecast: PortfolioForecast
    means: BucketMeans | None = None


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SentPrognosis(_Record):
    """A D-Prognosis we sent and the DSO's answer."""

    peer: str
    congestion_point: str  # the DSO's entity address, as on the wire
    period: str
    revision: int
    power_w: dict[int, int]
    result: str | None = None
    reason: str | None = None
    #: when it was built to go out (our clock) and its TimeZone: the re-send rules need both
    sent_at: datetime | None = None
    time_zone: str | None = None


class OrderedPower(_Record):
    """A FlexOrder we executed: the W it changes our consumption by per ISP (negative = less)."""

    peer: str
    congestion_point: str
    period: str
    power_w: dict[int, int]


class MeteringDue(_Record):
    """A Metering send scheduled by an executed order, kept so that a restart still sends it."""

    peer: str
    period: str
    at: datetime
    time_zone: str | None = None
    done: bool = False


class SentMetering(_Record):
    """A Metering message we sent (one EAN, one day) and the DSO's answer."""

    peer: str
    ean: str
    site: str
    period: str
    revision: int
    kw: dict[int, float]
    result: str | None = None
    reason: str | None = None


class AgrPrognoses:
    """Our AGR's D-Prognoses and Metering towards DSO peers, over `node`."""

    def __init__(self, node: UftpNode, sources: PrognosisSources, store: UftpStore | None = None) -> None:
        self.node = node
        self.forecast = sources.forecast
        self.means = sources.means
        #: D-Prognosis MessageID -> what it said and the DSO's answer
        self.prognoses = Ledger(SentPrognosis, "agr_prognosis", store)
        #: Metering MessageID -> what it said and the DSO's answer
        self.metering = Ledger(SentMetering, "agr_metering", store)
        #: OrderReference -> the W an executed FlexOrder changes our consumption by
        self.ordered = Ledger(OrderedPower, "agr_ordered", store)
        #: "{peer} {period} {at}" -> a Metering send an order scheduled (done once sent)
        self.metering_due = Ledger(MeteringDue, "agr_metering_due", store)
        self._scheduled: set[asyncio.Task[None]] = set()

    def _revision(self, ledger: Ledger[Any], **same: str) -> int:
        done = [r.revision for r in ledger.values() if all(getattr(r, k) == v for k, v in same.items())]
        return max(done, default=0) + 1

    def record_order(
        self, peer: UftpPeer, congestion_point: str, day: date, order_reference: str, power_w: dict[int, int]
    ) -> None:
        """Keep an executed order's W per ISP (negative = less consumption): later prognoses include it."""
        self.ordered.put(
            order_reference,
            OrderedPower(
                peer=peer.domain, congestion_point=congestion_point, period=day.isoformat(), power_w=power_w
            ),
        )

    async def portfolio_w(
        self, peer: UftpPeer, congestion_point: str, day: date, tz: str
    ) -> dict[int, int] | None:
        """W per ISP at the point: the sites' forecast plus our executed orders there; None without sites."""
        sites = peer.congestion_points.get(congestion_point, [])
        if not sites:
            return None
        bounds = day_bounds(day, tz)
        per_site = await self.forecast(sites, bounds)
        power_w = {n + 1: round(1000.0 * sum(per_site[s][n] for s in sites)) for n in range(len(bounds))}
        for order in self.ordered.values():
            if (order.peer, order.congestion_point, order.period) == (
                peer.domain,
                congestion_point,
                day.isoformat(),
            ):
                for n, w in order.power_w.items():
                    if n in power_w:
                        power_w[n] += w
        return power_w

    def last_prognosis(self, peer: str, congestion_point: str, period: str) -> SentPrognosis | None:
        """The highest revision we built for (peer, point, day), None if none."""
        same = [
            p
            for p in self.prognoses.values()
            if (p.peer, p.congestion_point, p.period) == (peer, congestion_point, period)
        ]
        return max(same, key=lambda p: p.revision, default=None)

    async def build_prognosis(
        self,
        peer: UftpPeer,
        congestion_point: str,
        day: date,
        tz: str,
        conversation_id: str | None = None,
        power_w: dict[int, int] | None = None,
    ) -> DPrognosis | None:
        """The next revision of our D-Prognosis at `congestion_point` for `day`; None if no site of ours is there.

        Of `power_w` when given (the re-sender has just built it), else of `portfolio_w`.
        """
        if power_w is None:
            power_w = await self.portfolio_w(peer, congestion_point, day, tz)
        if power_w is None or not peer.congestion_points.get(congestion_point):
            return None
        period = day.isoformat()
        revision = self._revision(
            self.prognoses, peer=peer.domain, congestion_point=congestion_point, period=period
        )
        msg = DPrognosis(
            **self.node.header(peer, conversation_id),
            time_zone=tz,
            period=period,
            congestion_point=congestion_point,
            revision=revision,
            isps=prognosis_isps(power_w),
        )
        self.prognoses.put(
            msg.message_id,
            SentPrognosis(
                peer=peer.domain,
                congestion_point=congestion_point,
                period=period,
                revision=revision,
                power_w=power_w,
                sent_at=self.node.clock.now(),
                time_zone=tz,
            ),
        )
        return msg

    async def send_prognosis(
        self,
        peer: UftpPeer,
        congestion_point: str,
        day: date,
        tz: str,
        conversation_id: str | None = None,
        power_w: dict[int, int] | None = None,
    ) -> DPrognosis | None:
        """Build and send the next revision (UftpSendError if the DSO does not take it); None as `build_prognosis`."""
        msg = await self.build_prognosis(peer, congestion_point, day, tz, conversation_id, power_w)
        if msg is not None:
            await self.node.send(peer, msg)
        return msg

    async def send_metering(self, peer: UftpPeer, day: date, tz: str | None = None) -> list[Metering]:
        """Metering of each of `peer.eans` for the local `day`: ISP means of ended ISPs with samples."""
        if self.means is None or not peer.eans:
            return []
        tz = tz or self.node.config.time_zone
        bounds = day_bounds(day, tz)
        now = self.node.clock.now()
        eans = sorted(peer.eans)
        sites = [peer.eans[e] for e in eans]
        means = np.asarray(await self.means(sites, bounds[0][0], bounds[-1][1], ISP.total_seconds()))
        sent: list[Metering] = []
        for row, ean, site in zip(means, eans, sites, strict=True):
            kw = {
                n + 1: float(row[n])
                for n, (_, end) in enumerate(bounds)
                if n < len(row) and end <= now and not np.isnan(row[n])
            }
            if not kw:
                continue
            period = day.isoformat()
            revision = self._revision(self.metering, peer=peer.domain, ean=ean, period=period)
            msg = Metering(
                **self.node.header(peer),
                revision=revision,
                time_zone=tz,
                period=period,
                ean=ean,
                profiles=[MeteringProfile(profile_type="Power", unit="kW", isps=metering_isps(kw))],
            )
            self.metering.put(
                msg.message_id,
                SentMetering(peer=peer.domain, ean=ean, site=site, period=period, revision=revision, kw=kw),
            )
            await self.node.send(peer, msg)
            sent.append(msg)
        return sent

    def schedule_metering(self, peer: UftpPeer, day: date, at: datetime, tz: str | None = None) -> None:
        """Send `send_metering(peer, day)` at `at` (our clock), in a task; nothing if the peer has no EANs.

        Kept in the store until sent, so that a restart's `start` still sends it.
        """
        if self.means is None or not peer.eans:
            return
        due = MeteringDue(peer=peer.domain, period=day.isoformat(), at=at, time_zone=tz)
        key = f"{due.peer} {due.period} {at.isoformat()}"
        self.metering_due.put(key, due)
        self._arm(key, due)

    def start(self) -> int:
        """Arm every scheduled Metering not yet sent (a restart's); those past due go out at once. How many."""
        armed = 0
        for key in list(self.metering_due):
            due = self.metering_due[key]
            if not due.done and self.node.config.peer(due.peer, "DSO") is not None:
                self._arm(key, due)
                armed += 1
        return armed

    def _arm(self, key: str, due: MeteringDue) -> None:
        async def later() -> None:
            await self.node.clock.sleep(max(0.0, (due.at - self.node.clock.now()).total_seconds()))
            peer = self.node.config.peer(due.peer, "DSO")
            if peer is None:
                return
            try:
                await self.send_metering(peer, date.fromisoformat(due.period), due.time_zone)
            except UftpSendError as exc:  # left undone: the next start tries again
                self.node.failures.append({"message": "Metering", "message_id": "", "reason": str(exc)})
                log.warning("UFTP Metering of %s to %s not sent: %s", due.period, due.peer, exc)
                return
            self.metering_due.put(key, due.model_copy(update={"done": True}))

        task = asyncio.create_task(later(), name=f"uftp-metering-{due.peer}-{due.period}")
        self._scheduled.add(task)
        task.add_done_callback(self._scheduled.discard)

    async def aclose(self) -> None:
        """Cancel the Metering still scheduled (kept in the store: the next `start` arms it again)."""
        for task in list(self._scheduled):
            task.cancel()
        if self._scheduled:
            await asyncio.wait(self._scheduled, timeout=5.0)

    def on_response(self, msg: DPrognosisResponse | MeteringResponse) -> None:
        """Keep the DSO's answer with the message it answers (unknown MessageIDs are ignored)."""
        if isinstance(msg, DPrognosisResponse):
            sent_p = self.prognoses.get(msg.d_prognosis_message_id)
            if sent_p is not None:
                sent_p.result, sent_p.reason = msg.result, msg.rejection_reason
                self.prognoses.put(msg.d_prognosis_message_id, sent_p)
            return
        sent_m = self.metering.get(msg.metering_message_id)
        if sent_m is not None:
            sent_m.result, sent_m.reason = msg.result, msg.rejection_reason
            self.metering.put(msg.metering_message_id, sent_m)

    def status(self) -> dict[str, Any]:
        """What was sent and answered, for `GET /uftp/status`."""
        return {
            "d_prognoses": [
                {
                    "period": p.period,
                    "congestion_point": p.congestion_point,
                    "revision": p.revision,
                    "result": p.result,
                }
                for p in self.prognoses.values()
            ],
            "metering": [
                {"ean": m.ean, "period": m.period, "revision": m.revision, "result": m.result}
                for m in self.metering.values()
            ],
        }
