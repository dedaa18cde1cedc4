"""Baseline accuracy per FSP on days without an order: `GET /market/baselines/accuracy`.

Every baseline raises the fairness question: does it pay for flexibility nobody
delivered? On days an FSP had no order its sites did nothing for the market, so a good
baseline should match their metered load there. Per FSP and method, over the working
days of the window (weekends are not baseline days) that are not event days (the dates
of the FSP's orders' ISPs):

| method | compared | sites |
|---|---|---|
| `nodes_5wd`, `high_4_of_5` | every ISP with meter data on those days | all sites the FSP's offers name |
| `fsp_prognosis` | the ISPs of the FSP's prognoses for offers not ordered | that offer's sites |
| `our_forecast` | the ISPs of our frozen forecasts for offers not ordered | that offer's sites |

Bias, MAE and RMSE in kW (`baselines.accuracy_table`). Reads the market store and the
time-series store; the arithmetic is pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cloud_controller.market.baselines import Pair, accuracy_table, days_between
from cloud_controller.market.metering import HISTORY_DAYS, isp_means
from cloud_controller.market.products import ISP_S
from cloud_controller.market.settlement import nodes_baseline, x_of_y_baseline
from cloud_controller.market.store import MarketStore
from cloud_controller.store import Store
from protocols.assets import Points

__all__ = ["MAX_DAYS", "accuracy_report"]

MAX_DAYS = 92


def _summed(store: Store, sites: Collection[str], start: datetime, end: datetime) -> dict[datetime, float]:
    """The sites' summed ISP means where every site has data."""
    total: dict[datetime, float] = defaultdict(float)
    seen: dict[datetime, int] = defaultdict(int)
    for s in sites:
        for t, v in isp_means(
            store.read_series(s, Points.METER_P_KW.asset, Points.METER_P_KW.point, start, end)
        ).items():
            total[t] += v
            seen[t] += 1
    return {t: v for t, v in total.items() if seen[t] == len(sites)}


def _history_pairs(
    metered: dict[datetime, float], days: Sequence[date], events: Collection[date], holidays: Collection[date]
) -> dict[str, list[Pair]]:
    out: dict[str, list[Pair]] = {"nodes_5wd": [], "high_4_of_5": []}
    for d in days:
        isps = sorted(t for t in metered if t.date() == d)
        if not isps or d.weekday() >= 5 or d in holidays or d in events:
            continue
        for method, rows in out.items():
            try:
                if method == "nodes_5wd":
                    base = nodes_baseline(metered, isps, holidays=holidays, event_days=events)
                else:
                    base = x_of_y_baseline(metered, isps, x=4, y=5, holidays=holidays, event_days=events)
            except ValueError:  # not enough history before this day: not compared
                continue
            rows.extend((t, base[t], metered[t]) for t in isps)
    return out


def _stored_pairs(
    market: MarketStore,
    store: Store,
    fsp: str,
    window: tuple[datetime, datetime],
    ordered: set[str],
) -> dict[str, list[Pair]]:
    """The FSP's prognoses and our frozen forecasts of its offers that were not ordered, against the meter."""
    out: dict[str, list[Pair]] = {"fsp_prognosis": [], "our_forecast": []}
    for offer, _, _ in market.offers(fsp=fsp):
        if offer.offer_id in ordered or not offer.sites:
            continue
        given: dict[str, dict[datetime, float]] = {}
        prog = market.prognosis(offer.offer_id)
        if prog is not None:
            given["fsp_prognosis"] = {i.start: i.kw for i in prog.isps}
        frozen = market.frozen_forecast(offer.offer_id)
        if frozen is not None:
            given["our_forecast"] = {
                datetime.fromisoformat(t).astimezone(UTC): v for t, v in frozen[1].items()
            }
        starts = [t for g in given.values() for t in g if window[0] <= t < window[1]]
        if not starts:
            continue
        metered = _summed(store, offer.sites, min(starts), max(starts) + timedelta(seconds=ISP_S))
        for method, series in given.items():
            out[method].extend(
                (t, kw, metered[t])
                for t, kw in sorted(series.items())
                if t in metered and window[0] <= t < window[1]
            )
    return out


def accuracy_report(
    market: MarketStore,
    store: Store,
    fsps: Sequence[str],
    now: datetime,
    days: int,
    *,
    holidays: Collection[date] = (),
) -> dict[str, Any]:
    """Per FSP: its sites, event days and, per method, n / bias / MAE / RMSE over the `days` before today."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1..{MAX_DAYS}, not {days}")
    last = now.astimezone(UTC).date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    start = datetime.combine(first, datetime.min.time(), UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    report: dict[str, Any] = {"from": first.isoformat(), "to": last.isoformat(), "fsps": {}}
    for fsp in fsps:
        orders = market.orders(fsp)
        events = {i.start.date() for o in orders for i in o.isps if i.kw > 0}
        sites = sorted({s for o, _, _ in market.offers(fsp=fsp) for s in o.sites})
        pairs: dict[str, list[Pair]] = {"nodes_5wd": [], "high_4_of_5": []}
        if sites:
            metered = _summed(store, sites, start - timedelta(days=HISTORY_DAYS), end)
            pairs = _history_pairs(metered, days_between(first, last), events, holidays)
        pairs |= _stored_pairs(market, store, fsp, (start, end), {o.offer_id for o in orders})
        report["fsps"][fsp] = {
            "sites": sites,
            "event_days": sorted(d.isoformat() for d in events if first <= d <= last),
            "methods": accuracy_table(pairs, events),
        }
    return report
