"""Our DSO role's D-Prognoses and Metering from AGR peers: checked, answered, kept for settlement.

- A **D-Prognosis** (the AGR's portfolio power at one of our congestion points for every
  ISP of a local day) is Accepted when the congestion point is ours and its ISPs are
  exactly the day's (92/96/100 across DST; UFTP: "always contain data for all ISPs"), else
  Rejected with the reason. The latest revision per (peer, congestion point, day) counts.
- A FlexOffer that names an accepted D-Prognosis (`D-PrognosisMessageID`) is booked with
  `baseline: fsp_prognosis` and the prognosis of its ISPs as the offer's prognosis: the
  book then settles the order against the FSP's own prognosis (docs/market.md). Naming one
  we do not have (or another peer's, or one that lacks an ISP) refuses the offer.
- A **Metering** message (one EAN, one day, a `Power` profile in kW) is Accepted when the
  EAN is one of the peer's (`peer.eans`: EAN -> site) and kept per (site, ISP start, UTC):
  `actual_kw` gives the settlement's actual for the peer's sites; `uftp_metering` puts it
  under `POST /market/settle`: an order whose sites all have Metering for all its ISPs is
  settled on it (with a baseline that needs no history: the D-Prognosis, our forecast);
  any other order on the stored telemetry as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from cloud_controller.market.book import Metering as MeteringFn
from cloud_controller.market.book import Refused
from cloud_controller.market.uftp.config import UftpPeer
from cloud_controller.market.uftp.isp import expand, isp_start
from cloud_controller.market.uftp.messages import FlexOffer
from cloud_controller.market.uftp.prognosis_messages import (
    DPrognosis,
    DPrognosisResponse,
    Metering,
    MeteringResponse,
)
from cloud_controller.market.uftp.store import Ledger, UftpStore
from protocols.market import PrognosisIsp

__all__ = ["DsoPrognoses", "KeptMetering", "KeptPrognosis", "isps_of_day", "uftp_metering"]

#: baselines that need no metered history (settling.py stores them)
STORED_BASELINES = ("fsp_prognosis", "our_forecast")


def isps_of_day(period: date, tz: str) -> int:
    """How many 15-min ISPs the local day has (92, 96 or 100)."""
    n = 1
    while True:
        try:
            isp_start(period, n + 1, tz)
        except ValueError:
            return n
        n += 1


class KeptPrognosis(BaseModel):
    """An accepted D-Prognosis: whose, where, which day, W per ISP number."""

    model_config = ConfigDict(extra="forbid")
    peer: str
    congestion_point: str
    period: str
    time_zone: str
    revision: int
    power_w: dict[int, int]


class KeptMetering(BaseModel):
    """An accepted Metering message: the site its EAN is, kW per UTC ISP start."""

    model_config = ConfigDict(extra="forbid")
    peer: str
    site: str
    revision: int
    kw: dict[datetime, float]


class DsoPrognoses:
    """The D-Prognoses and Metering our DSO accepted (in `store` across restarts)."""

    def __init__(self, entity_prefix: str, store: UftpStore | None = None) -> None:
        self.entity_prefix = entity_prefix
        #: D-Prognosis MessageID -> the prognosis
        self.prognoses = Ledger(KeptPrognosis, "dso_prognosis", store)
        #: "<site>|<period>" -> the latest revision of that meter's day
        self.metering = Ledger(KeptMetering, "dso_metering", store)

    def accept_prognosis(self, msg: DPrognosis, peer: UftpPeer) -> str | None:
        """Keep `msg`; None, or the reason it is Rejected."""
        head, sep, cp = msg.congestion_point.rpartition(":")
        if not sep or head != self.entity_prefix:
            return f"CongestionPoint {msg.congestion_point!r} is not one of ours"
        try:
            power = expand((i.start, i.duration, i.power_w) for i in msg.isps)
        except ValueError as exc:
            return str(exc)
        day = date.fromisoformat(msg.period)
        n = isps_of_day(day, msg.time_zone)
        if sorted(power) != list(range(1, n + 1)):
            missing = sorted(set(range(1, n + 1)) - set(power))
            extra = sorted(set(power) - set(range(1, n + 1)))
            what = f"ISPs {missing[:5]} missing" if missing else f"ISPs {extra[:5]} not in the day"
            return f"a D-Prognosis gives every ISP of {msg.period} (1..{n}): {what}"
        for other in self.prognoses.values():
            same = (other.peer, other.congestion_point, other.period) == (peer.domain, cp, msg.period)
            if same and other.revision >= msg.revision:
                return f"Revision {msg.revision} is not above the accepted {other.revision}"
        self.prognoses.put(
            msg.message_id,
            KeptPrognosis(
                peer=peer.domain,
                congestion_point=cp,
                period=msg.period,
                time_zone=msg.time_zone,
                revision=msg.revision,
                power_w=power,
            ),
        )
        return None

    def offer_prognosis(
        self, msg: FlexOffer, peer: UftpPeer, starts: list[datetime]
    ) -> list[PrognosisIsp] | None:
        """The prognosis a FlexOffer names, over its ISP `starts` (kW, load positive); None if it names none.

        Refused (the offer is Rejected with the reason) when the named D-Prognosis is not
        one we accepted from this peer for the offer's congestion point and day.
        """
        ref = msg.d_prognosis_message_id
        if ref is None:
            return None
        kept = self.prognoses.get(ref)
        cp = msg.congestion_point.rpartition(":")[2]
        if (
            kept is None
            or kept.peer != peer.domain
            or (kept.congestion_point, kept.period) != (cp, msg.period)
        ):
            raise Refused(
                422, "D-PrognosisMessageID", f"{ref}: no accepted D-Prognosis of {peer.domain} for it"
            )
        day = date.fromisoformat(kept.period)
        by_start = {isp_start(day, n, kept.time_zone): w for n, w in kept.power_w.items()}
        return [PrognosisIsp(start=t, kw=by_start[t] / 1000.0) for t in sorted(starts)]

    def accept_metering(self, msg: Metering, peer: UftpPeer) -> str | None:
        """Keep `msg`; None, or the reason it is Rejected."""
        site = {e.upper(): s for e, s in peer.eans.items()}.get(msg.ean.upper())
        if site is None:
            return f"EAN {msg.ean} is not a meter of {peer.domain}"
        kw = msg.power_kw()
        if kw is None:
            return "no Power profile in kW"
        day = date.fromisoformat(msg.period)
        try:
            by_start = {isp_start(day, n, msg.time_zone): v for n, v in kw.items()}
        except ValueError as exc:
            return str(exc)
        key = f"{site}|{msg.period}"
        old = self.metering.get(key)
        if old is not None and old.revision >= msg.revision:
            return f"Revision {msg.revision} is not above the accepted {old.revision}"
        self.metering.put(key, KeptMetering(peer=peer.domain, site=site, revision=msg.revision, kw=by_start))
        return None

    def answer(
        self, msg: DPrognosis | Metering, peer: UftpPeer, header: dict[str, Any]
    ) -> DPrognosisResponse | MeteringResponse:
        """Take `msg` and the response to send back (`header`: the node's, in its conversation)."""
        if isinstance(msg, DPrognosis):
            reason = self.accept_prognosis(msg, peer)
            return DPrognosisResponse(
                **header,
                result="Rejected" if reason else "Accepted",
                rejection_reason=reason,
                d_prognosis_message_id=msg.message_id,
            )
        reason = self.accept_metering(msg, peer)
        return MeteringResponse(
            **header,
            result="Rejected" if reason else "Accepted",
            rejection_reason=reason,
            metering_message_id=msg.message_id,
        )

    def actual_kw(self, site: str, start: datetime) -> float | None:
        """The metered mean kW of `site` in the ISP starting at `start`; None if no Metering gave it."""
        for rec in self.metering.values():
            if rec.site == site and start in rec.kw:
                return rec.kw[start]
        return None

    def status(self) -> dict[str, int]:
        """Counts for `GET /uftp/status`."""
        return {"d_prognoses": len(self.prognoses), "metering_days": len(self.metering)}


def uftp_metering(inner: MeteringFn, prognoses: DsoPrognoses) -> MeteringFn:
    """`inner` (the store's metering), but the AGRs' Metering for orders it fully covers."""

    def meter(
        sites: Sequence[str], isps: Sequence[datetime], baseline: str
    ) -> tuple[dict[datetime, float], dict[datetime, float]]:
        if baseline in STORED_BASELINES and sites:
            got = {(s, t): prognoses.actual_kw(s, t) for s in sites for t in isps}
            if all(v is not None for v in got.values()):
                return {}, {t: sum(got[s, t] or 0.0 for s in sites) for t in isps}
        return inner(sites, isps, baseline)

    return meter
