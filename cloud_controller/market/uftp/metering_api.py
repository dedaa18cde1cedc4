"""`POST /uftp/metering/{day}`: an operator sends our AGR's Metering of a day now.

The order's scheduled send covers the normal case (`AgrPrognoses.schedule_metering`, kept
across restarts); this is for the rest: a send that failed, a day re-measured, a peer
added later. Beside `router.py` rather than in it because it sits on our AGR's
prognoses (and through them on the market's book), which the transport's face must not
import (`market.config` reads `uftp.config`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from cloud_controller.market.uftp.agr_prognosis import AgrPrognoses, day_bounds
from cloud_controller.market.uftp.node import UftpSendError

__all__ = ["metering_router"]


def metering_router(prognoses: AgrPrognoses, *, write: Sequence[Any]) -> APIRouter:
    """`POST /uftp/metering/{day}[?peer=]`: our AGR's Metering of a local day sent now (an operator's write).

    For a delivery whose scheduled send was lost or failed, or a day re-measured: each of the
    DSO peers' (or `peer`'s) EANs, the ended ISPs with samples, the next Revision. 400 for
    a day that is no date or has not begun, 404 for a peer that is not a configured DSO,
    409 for one without `eans`, 502 when the DSO does not take it; `write` must guard it.
    """
    if not write:
        raise ValueError("the Metering route sends on our behalf: it needs the operator's dependency")
    router = APIRouter(prefix="/uftp", tags=["uftp"])
    node = prognoses.node

    def refuse(status: int, kind: str, reason: str) -> JSONResponse:
        return JSONResponse({"kind": kind, "reason": reason}, status_code=status)

    @router.post("/metering/{day}", dependencies=list(write))
    async def send_metering(day: str, peer: str | None = None) -> Response:
        """Send the Metering of `day` (YYYY-MM-DD, our time zone) now."""
        try:
            local = date.fromisoformat(day)
        except ValueError:
            return refuse(400, "day", f"{day!r} is not a date (YYYY-MM-DD)")
        tz = node.config.time_zone
        if day_bounds(local, tz)[0][0] >= node.clock.now():
            return refuse(400, "day", f"{local} has not begun ({tz}): no ISP of it has ended")
        peers = node.peers("DSO")
        if peer is not None:
            peers = [p for p in peers if p.domain == peer]
            if not peers:
                return refuse(404, "peer", f"{peer!r} is not a configured DSO peer")
            if not peers[0].eans:
                return refuse(409, "peer", f"DSO peer {peer!r} has no `eans`: none of our meters to report")
        sent = []
        for p in peers:
            try:
                msgs = await prognoses.send_metering(p, local, tz)
            except UftpSendError as exc:
                return refuse(502, "send", f"{p.domain}: {exc}")
            sent += [
                {
                    "peer": p.domain,
                    "ean": m.ean,
                    "message_id": m.message_id,
                    "revision": m.revision,
                    "isps": len(m.profiles[0].isps),
                }
                for m in msgs
            ]
        return JSONResponse({"day": local.isoformat(), "sent": sent})

    return router
