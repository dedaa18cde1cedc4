"""The book's settlement side over the market store: baselines of each kind, settling what is due.

Each order is settled against the baseline its offer named (`MarketOrder.baseline`), and
the settlement states it (`MarketSettlement.baseline`):

| baseline | from |
|---|---|
| `nodes_5wd`, `high_4_of_5` | the sites' metered history (metering.py) |
| `fsp_prognosis` | the FSP's `MarketPrognosis` for the offer, given before gate closure |
| `our_forecast` | our forecast of the offer's sites, frozen when the offer was cleared |

A baseline that is missing leaves the order unsettled with the reason, never a zero or a
silent fallback to another kind. Called by `Book` inside the store's write section.

`settle_period` settles every order of a period again from the store (the batch endpoint
`POST /market/settlements`): an order's settlement is replaced, with `revision` + 1, only
when its numbers changed (late meter data), so a second call returns the same settlements.

Both first say what they will meter: `prefetch` (when given) gets every due order's
`MeterAsk` before the first is metered, so the endpoints' `batch_orders.ArrayMetering` reads
all their sites in one array read and computes every baseline at once; the orders are then
metered and settled one by one as before, in the same order, with the same failures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from cloud_controller.market.baselines import HISTORY_BASELINES, forecast_baseline_kw
from cloud_controller.market.clearing import Order
from cloud_controller.market.grid_view import GridView
from cloud_controller.market.products import ISP_S
from cloud_controller.market.settlement import settle
from cloud_controller.market.store import MarketStore
from protocols.market import Baseline, MarketOffer, MarketOrder, MarketSettlement, SettledIsp

__all__ = [
    "MeterAsk",
    "Metering",
    "PeriodSettlement",
    "Prefetch",
    "baseline_of",
    "freeze_baselines",
    "settle_due",
    "settle_period",
    "settlement_of",
]

#: (sites, ISP starts, baseline kind) -> (baseline kW, actual kW) per ISP; ValueError when it cannot.
#: For a kind not computed from history (`fsp_prognosis`, `our_forecast`) the baseline is `{}`.
Metering = Callable[
    [Sequence[str], Sequence[datetime], str], tuple[dict[datetime, float], dict[datetime, float]]
]


@dataclass(frozen=True)
class MeterAsk:
    """One order's metering question, as the book will ask its `Metering`: sites, ISP starts, baseline kind."""

    sites: tuple[str, ...]
    isps: tuple[datetime, ...]
    baseline: str


#: told every order's `MeterAsk` before the first is metered (one read for all: batch_orders.py)
Prefetch = Callable[[Sequence[MeterAsk]], None]


def _ask(order: MarketOrder, sites: Sequence[str], kind: str) -> MeterAsk:
    return MeterAsk(tuple(sites), tuple(i.start for i in order.isps), kind)


def _offer_isps(offer: MarketOffer) -> set[datetime]:
    return {i.start for o in offer.options for i in o.isps}


def freeze_baselines(
    store: MarketStore, offers: Sequence[MarketOffer], view: GridView | None, now: datetime
) -> dict[str, str]:
    """At a clearing: freeze our forecast for each offer (once), and say which offers cannot be settled.

    Returns offer id -> reason for the offers to refuse: one naming `fsp_prognosis` without
    a prognosis, one naming `our_forecast` that our forecast does not cover. The forecast
    is frozen for every offer it covers, whatever its baseline, so the accuracy of our
    forecast can be published on days without an order too.
    """
    refused: dict[str, str] = {}
    columns = {} if view is None else {s: i for i, s in enumerate(view.sites)}
    for offer in offers:
        why: str | None = None
        if store.frozen_forecast(offer.offer_id) is None:
            if view is None:
                why = "no forecast yet"
            else:
                try:
                    kw = forecast_baseline_kw(
                        view.interval_starts,
                        np.asarray(view.p50_kw),
                        columns,
                        offer.sites,
                        _offer_isps(offer),
                    )
                    store.freeze_forecast(
                        offer.offer_id, now.timestamp(), {t.isoformat(): v for t, v in kw.items()}
                    )
                except ValueError as exc:
                    why = str(exc)
        if offer.baseline == "our_forecast" and why is not None:
            refused[offer.offer_id] = f"baseline our_forecast: {why}"
        if offer.baseline == "fsp_prognosis" and store.prognosis(offer.offer_id) is None:
            refused[offer.offer_id] = (
                f"baseline fsp_prognosis: FSP {offer.fsp!r} gave no prognosis by gate closure"
            )
    return refused


def baseline_of(
    store: MarketStore, order: MarketOrder, sites: Sequence[str], kind: Baseline, metering: Metering
) -> tuple[dict[datetime, float], dict[datetime, float]]:
    """(baseline, actual) kW per ISP of `order` with baseline `kind`; ValueError naming what is missing."""
    isps = [i.start for i in order.isps]
    baseline, actual = metering(sites, isps, kind)
    if kind in HISTORY_BASELINES:
        return baseline, actual
    if kind == "fsp_prognosis":
        prog = store.prognosis(order.offer_id)
        if prog is None:
            raise ValueError(f"baseline fsp_prognosis: no prognosis for offer {order.offer_id!r}")
        given = {i.start: i.kw for i in prog.isps}
    else:
        frozen = store.frozen_forecast(order.offer_id)
        if frozen is None:
            raise ValueError(f"baseline our_forecast: none was frozen for offer {order.offer_id!r}")
        given = {datetime.fromisoformat(t).astimezone(UTC): v for t, v in frozen[1].items()}
    missing = [t for t in isps if t not in given]
    if missing:
        raise ValueError(f"baseline {kind}: no value at {missing[0].isoformat()}")
    return {t: given[t] for t in isps}, actual


def settle_due(
    store: MarketStore,
    now: datetime,
    metering: Metering,
    penalty_factor: float,
    *,
    prefetch: Prefetch | None = None,
) -> tuple[list[MarketSettlement], list[dict[str, str]]]:
    """Settle every unsettled order whose last ISP has ended; (settlements, failures with reasons)."""
    done = {s.order_id for s in store.settlements()}
    due: list[tuple[MarketOrder, MarketOffer | None]] = []
    for order in store.orders():
        end = max(i.start for i in order.isps) + timedelta(seconds=ISP_S)
        if order.order_id in done or end > now:
            continue
        found = store.offer(order.offer_id)
        due.append((order, None if found is None or not found[0].sites else found[0]))
    if prefetch is not None:
        prefetch([_ask(o, off.sites, o.baseline) for o, off in due if off is not None])
    out: list[MarketSettlement] = []
    failed: list[dict[str, str]] = []
    for order, offer in due:
        if offer is None:
            failed.append({"order_id": order.order_id, "reason": "its offer names no sites to meter"})
            continue
        try:
            baseline, actual = baseline_of(store, order, offer.sites, order.baseline, metering)
        except ValueError as exc:
            failed.append({"order_id": order.order_id, "reason": str(exc)})
            continue
        s = settlement_of(order, baseline, actual, now, order.baseline, penalty_factor)
        store.put_settlement(s)
        out.append(s)
    return out, failed


def settlement_of(
    order: MarketOrder,
    baseline_kw: Mapping[datetime, float],
    actual_kw: Mapping[datetime, float],
    now: datetime,
    baseline: Baseline,
    penalty_factor: float,
    *,
    revision: int = 0,
) -> MarketSettlement:
    """The core's settlement of `order` as the wire's FlexSettlement, stating its baseline."""
    core = Order(
        order_id=order.order_id,
        offer_id=order.offer_id,
        option_id=order.option_id,
        fsp=order.fsp,
        congestion_point=order.congestion_point,
        factor=order.factor,
        kw={i.start: i.kw for i in order.isps},
        price_eur_per_kwh=order.price_eur_per_kwh,
        price_eur=order.price_eur,
    )
    s = settle(core, baseline_kw, actual_kw, penalty_factor=penalty_factor)
    return MarketSettlement(
        order_id=order.order_id,
        fsp=order.fsp,
        congestion_point=order.congestion_point,
        ts=now,
        baseline=baseline,
        isps=[
            SettledIsp(
                start=i.isp,
                baseline_kw=i.baseline_kw,
                ordered_kw=i.ordered_kw,
                actual_kw=i.actual_kw,
                delivered_kw=i.delivered_kw,
                deficiency_kw=i.deficiency_kw,
            )
            for i in s.isps
        ],
        price_eur=s.price_eur,
        penalty_eur=s.penalty_eur,
        net_eur=s.net_eur,
        delivered_kwh=s.delivered_kwh,
        deficiency_kwh=s.deficiency_kwh,
        revision=revision,
    )


@dataclass
class PeriodSettlement:
    """What `settle_period` did: each order's settlement, and which were new, revised or unchanged."""

    settlements: list[MarketSettlement] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    revised: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    not_due: list[str] = field(default_factory=list)  # an ISP not over yet

    @property
    def changed(self) -> list[MarketSettlement]:
        """The new and revised settlements (to send to their FSPs)."""
        ids = set(self.new) | set(self.revised)
        return [s for s in self.settlements if s.order_id in ids]


def _same(a: MarketSettlement, b: MarketSettlement) -> bool:
    """Equal numbers and baseline (the time and revision aside)."""
    skip = {"ts", "revision"}
    return a.model_dump(exclude=skip) == b.model_dump(exclude=skip)


def settle_period(
    store: MarketStore,
    start: datetime,
    end: datetime,
    now: datetime,
    metering: Metering,
    penalty_factor: float,
    *,
    prefetch: Prefetch | None = None,
) -> PeriodSettlement:
    """Settle every order whose first ISP starts in [start, end) and whose last has ended, from the store.

    An order settled before is settled again against the baseline its settlement states
    (after an accepted dispute: the dispute's); the stored one is kept when the numbers
    are the same, replaced with `revision` + 1 when they changed.
    """
    known = {s.order_id: s for s in store.settlements()}
    out = PeriodSettlement()
    due: list[tuple[MarketOrder, MarketOffer | None]] = []
    for order in store.orders():
        first = min(i.start for i in order.isps)
        if not start <= first < end:
            continue
        if max(i.start for i in order.isps) + timedelta(seconds=ISP_S) > now:
            out.not_due.append(order.order_id)
            continue
        found = store.offer(order.offer_id)
        due.append((order, None if found is None or not found[0].sites else found[0]))
    if prefetch is not None:
        prefetch([_ask(o, off.sites, _kind(o, known)) for o, off in due if off is not None])
    for order, offer in due:
        if offer is None:
            out.failed.append({"order_id": order.order_id, "reason": "its offer names no sites to meter"})
            continue
        old = known.get(order.order_id)
        kind = _kind(order, known)
        try:
            baseline, actual = baseline_of(store, order, offer.sites, kind, metering)
        except ValueError as exc:
            out.failed.append({"order_id": order.order_id, "reason": str(exc)})
            if old is not None:
                out.settlements.append(old)
            continue
        s = settlement_of(order, baseline, actual, now, kind, penalty_factor)
        if old is not None and _same(old, s):
            out.settlements.append(old)
            out.unchanged.append(order.order_id)
            continue
        if old is not None:
            s = s.model_copy(update={"revision": old.revision + 1})
            out.revised.append(order.order_id)
        else:
            out.new.append(order.order_id)
        store.put_settlement(s)
        out.settlements.append(s)
    return out


def _kind(order: MarketOrder, known: Mapping[str, MarketSettlement]) -> Baseline:
    """The baseline to settle `order` against: its settlement's (after a dispute), else its offer's."""
    old = known.get(order.order_id)
    return order.baseline if old is None else old.baseline
