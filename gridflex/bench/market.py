"""Market clearing at scale: offers x ISPs x congestion points, MILP vs its LP anchor, in one run.

The anchor is the same market with every option divisible (min activation factor 0: no
binaries, an LP) timed in the same run; the ratio says what the lumpy options (UFTP's
MinActivationFactor) cost. Offers are seeded random: kW per ISP uniform 0-10, prices
uniform 1-60 €/kWh against a DSO value of 50 €/kWh, a third each of factors 0, 0.5, 1;
every congestion point needs 200 kW per ISP (about 40 % of what is offered there).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cloud_controller.market import ClearingOptions, FlexOffer, FlexRequest, OfferOption, clear

__all__ = ["MarketFigures", "market_case", "market_figures"]

DELIVERY = datetime(2030, 1, 15, tzinfo=UTC)


@dataclass(frozen=True)
class MarketFigures:
    """One size: clearing time (lumpy MILP and the divisible LP anchor), orders, gap, shortfall."""

    offers: int
    isps: int
    congestion_points: int
    milp_s: float
    lp_s: float
    orders: int
    mip_gap: float
    short_isps: int

    @property
    def ratio(self) -> float:
        """MILP time over the LP anchor's."""
        return self.milp_s / self.lp_s if self.lp_s > 0 else float("inf")


def market_case(
    n_offers: int, n_isps: int, n_cps: int, *, seed: int = 1
) -> tuple[list[FlexRequest], list[FlexOffer]]:
    """Seeded requests (200 kW per ISP at every congestion point) and offers spread over the points."""
    rng = random.Random(seed)
    isps = [DELIVERY + timedelta(minutes=15 * k) for k in range(n_isps)]
    cps = [f"cp{i}" for i in range(n_cps)]
    requests = [FlexRequest(f"r-{cp}", cp, dict.fromkeys(isps, 200.0), 50.0) for cp in cps]
    offers = [
        FlexOffer(
            offer_id=f"o{k}",
            fsp=f"fsp{k % 7}",
            congestion_point=cps[k % n_cps],
            options=(
                OfferOption(
                    "a",
                    {t: rng.uniform(0.0, 10.0) for t in isps},
                    rng.uniform(1.0, 60.0),
                    rng.choice([0.0, 0.5, 1.0]),
                ),
            ),
            submitted=DELIVERY - timedelta(hours=5),
            expires=DELIVERY + timedelta(days=1),
        )
        for k in range(n_offers)
    ]
    return requests, offers


def _divisible(offers: list[FlexOffer]) -> list[FlexOffer]:
    return [
        replace(o, options=tuple(replace(opt, min_activation_factor=0.0) for opt in o.options))
        for o in offers
    ]


def market_figures(n_offers: int, n_isps: int, n_cps: int, *, seed: int = 1) -> MarketFigures:
    """Clear the seeded case twice (lumpy, then all divisible) and time each `clear` call alone."""
    requests, offers = market_case(n_offers, n_isps, n_cps, seed=seed)
    now = DELIVERY - timedelta(hours=4)
    opts = ClearingOptions(time_limit_s=120.0)
    clear(requests[:1], offers[:1], now=now)  # imports and HiGHS's first construction, untimed
    t0 = time.perf_counter()
    lp = clear(requests, _divisible(offers), now=now, options=opts)
    lp_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    milp = clear(requests, offers, now=now, options=opts)
    milp_s = time.perf_counter() - t0
    assert lp.cost_eur >= 0
    return MarketFigures(
        offers=n_offers,
        isps=n_isps,
        congestion_points=n_cps,
        milp_s=milp_s,
        lp_s=lp_s,
        orders=len(milp.orders),
        mip_gap=milp.mip_gap,
        short_isps=len(milp.shortfall_kw),
    )
