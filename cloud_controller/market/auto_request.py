"""The DSO's request from its own congestion forecast: post, revise or withdraw, never after gate closure.

USEF: the DSO sends a FlexRequest per congestion point and ISP and may revise it (a higher
revision replaces the open one). What the need is comes from our forecast
(`GridView.relief_needed_kw`: the kW that bring P(exceed) under the configured risk). Our
policy for when to change the open request:
- an open request whose gate has closed is left alone (the clearing is due; NODES/UFTP: no
  change after gate closure), and so is a request the DSO posted by hand (not ours);
- only ISPs whose gate is still open are asked for, and not ISPs already ordered at that
  congestion point (the forecast does not know our orders yet: it would ask twice);
- a need under `min_kw` is no need (the forecast's noise would flood the FSPs);
- the open request is revised when an ISP appears, goes, or moves by `min_kw` or more;
  withdrawn when nothing is left.

Pure: the open request and the needs in, one action out; the shell applies it to the book.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cloud_controller.market.config import AutoRequestConfig
from protocols.market import MarketIsp, MarketRequest

__all__ = ["AUTO_PREFIX", "RequestAction", "request_action"]

AUTO_PREFIX = "auto-"  # request ids the forecast owns


@dataclass(frozen=True)
class RequestAction:
    """What to do at one congestion point: post a new request, revise the open one, or withdraw it."""

    kind: Literal["post", "revise", "withdraw"]
    request_id: str
    request: MarketRequest | None = None  # None for a withdrawal


def request_action(
    congestion_point: str,
    needed_kw: Mapping[datetime, float],
    open_request: MarketRequest | None,
    ordered_isps: Collection[datetime],
    *,
    now: datetime,
    gate_closure_s: float,
    policy: AutoRequestConfig,
    serial: int = 0,
) -> RequestAction | None:
    """The action the new forecast calls for at `congestion_point`, or None (nothing changes).

    `policy` gives `min_kw` and the value of relief; `serial` (how many requests the book has
    seen) keeps a new request's id unique.
    """
    gate = timedelta(seconds=gate_closure_s)
    min_kw = policy.min_kw
    if open_request is not None:
        frozen = min(i.start for i in open_request.isps) - gate <= now
        if frozen or not open_request.request_id.startswith(AUTO_PREFIX):
            return None
    wanted = {
        t: round(kw, 1)
        for t, kw in sorted(needed_kw.items())
        if kw >= min_kw and t - gate > now and t not in ordered_isps
    }
    if not wanted:
        if open_request is None:
            return None
        return RequestAction("withdraw", open_request.request_id)
    isps = [MarketIsp(start=t, kw=kw) for t, kw in wanted.items()]
    if open_request is None:
        first = min(wanted)
        rid = f"{AUTO_PREFIX}{congestion_point}-{first:%Y%m%dT%H%M}-{serial}"
        req = MarketRequest(
            request_id=rid[:64],
            congestion_point=congestion_point,
            ts=now,
            isps=isps,
            value_eur_per_kwh=policy.value_eur_per_kwh,
        )
        return RequestAction("post", req.request_id, req)
    old = {i.start: i.kw for i in open_request.isps}
    same = old.keys() == wanted.keys() and all(abs(old[t] - wanted[t]) < min_kw for t in wanted)
    if same:
        return None
    req = open_request.model_copy(update={"ts": now, "isps": isps, "revision": open_request.revision + 1})
    return RequestAction("revise", req.request_id, MarketRequest.model_validate(req.model_dump()))
