"""What the record-store tests write: DR contracts and requests, market requests and offers, VTN programs.

Shared by the round-trip tests, the race tests (their forked writers build the same
objects) and the two-controller test, so each reads as the behaviour it checks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cloud_controller.market.config import MarketConfig
from protocols.market import MarketIsp, MarketOffer, MarketOption, MarketRequest
from protocols.messages import DRRequest

T0 = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)  # DR events start here (and later the same day)
NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)  # the market's clock; the DR requests arrive then
DELIVERY = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
CP = "feeder-1"
MARKET = MarketConfig(fsps={"fsp-a": {}, "fsp-b": {}}, congestion_points={CP: ["a1", "b1"]})


def dr_request(request_id: str = "r1", start: datetime = T0, **kw: object) -> DRRequest:
    """Reduce 10 kW for 30 min from `start` under programme `peak`."""
    base: dict[str, object] = {
        "program": "peak",
        "ts": NOW,
        "request_id": request_id,
        "start": start,
        "end": start + timedelta(minutes=30),
        "direction": "reduce",
        "p_kw": 10.0,
    }
    base.update(kw)
    return DRRequest.model_validate(base)


def isps(kw: float) -> list[MarketIsp]:
    """The delivery hour's four ISPs at `kw` each."""
    return [MarketIsp(start=DELIVERY + timedelta(minutes=15 * k), kw=kw) for k in range(4)]


def market_request(request_id: str = "need-1", kw: float = 15.0) -> MarketRequest:
    """The DSO's need at CP during the delivery hour, valued at 100 €/kWh."""
    return MarketRequest(
        request_id=request_id, congestion_point=CP, ts=NOW, isps=isps(kw), value_eur_per_kwh=100.0
    )


def offer(offer_id: str, fsp: str = "fsp-a", kw: float = 10.0, price: float = 10.0) -> MarketOffer:
    """`kw` at site a1 for the delivery hour, divisible (min factor 0)."""
    return MarketOffer(
        offer_id=offer_id,
        fsp=fsp,
        congestion_point=CP,
        ts=NOW,
        sites=["a1"],
        expires=DELIVERY + timedelta(hours=1),
        options=[
            MarketOption(option_id="o1", isps=isps(kw), price_eur_per_kwh=price, min_activation_factor=0.0)
        ],
    )


def program(name: str) -> dict[str, Any]:
    """A VTN program body as a BL client posts it."""
    return {"programName": name}
