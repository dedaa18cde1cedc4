"""What the settlement meters: the delivering sites' net load per ISP, and its baseline, from the store.

Actual = the sum over the offer's sites of each site's mean grid-meter power (`meter/p_kw`,
load-positive) over the ISP. The baseline is computed on the same sum from the weeks
before: NODES' mean of the same ISP over the 5 preceding working days (`nodes_5wd`), or
the mean of the 4 highest of 5 (`high_4_of_5`, PJM/CAISO style); the FSP's prognosis and
our forecast are stored, not metered (only the actuals are read for them); the days of the order
are event days and never part of their own baseline. A site or ISP without data is a
ValueError naming it, so the order stays unsettled with that reason (never a zero).

The store is read as arrays (`Store.read_bucket_means`: ISP-aligned, so from the store's
ISP rollups kept at write time, `store/rollups.py`):
`store_metering` for one order's sites, `metered_month_kw` for a fleet-month that
`batch.settle_month` settles at once. Both give the numbers `isp_means` over `read_series`
gave (tests/integration/store/test_bucket_means.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np

from cloud_controller.market.baselines import HISTORY_BASELINES
from cloud_controller.market.batch import isp_means
from cloud_controller.market.products import ISP_S
from cloud_controller.market.settlement import nodes_baseline, x_of_y_baseline
from cloud_controller.market.settling import Metering
from cloud_controller.store import Store
from cloud_controller.store.buckets import FloatArray
from protocols.assets import Points

__all__ = ["HISTORY_DAYS", "isp_means", "metered", "metered_month_kw", "store_metering"]

#: Days of history read before an order: 5 working days with weekends and a few holidays between.
HISTORY_DAYS = 21


def metered(
    per_site: dict[str, dict[datetime, float]],
    isps: Sequence[datetime],
    baseline: str,
    *,
    holidays: Collection[date] = (),
) -> tuple[dict[datetime, float], dict[datetime, float]]:
    """(baseline, actual) kW per ISP of the sum of the sites' ISP means; ValueError naming what is missing."""
    total: dict[datetime, float] = defaultdict(float)
    seen: dict[datetime, int] = defaultdict(int)
    for means in per_site.values():
        for t, v in means.items():
            total[t] += v
            seen[t] += 1
    complete = {t: v for t, v in total.items() if seen[t] == len(per_site)}
    actual = {}
    for t in isps:
        if t not in complete:
            missing = sorted(s for s, m in per_site.items() if t not in m)
            raise ValueError(f"no metered power at {t.isoformat()} for site(s) {', '.join(missing)}")
        actual[t] = complete[t]
    events = {t.date() for t in isps}
    if baseline == "high_4_of_5":
        base = x_of_y_baseline(complete, isps, x=4, y=5, holidays=holidays, event_days=events)
    elif baseline == "nodes_5wd":
        base = nodes_baseline(complete, isps, holidays=holidays, event_days=events)
    else:  # fsp_prognosis, our_forecast: stored, not metered (settling.py)
        base = {}
    return base, actual


def store_metering(store: Store, *, holidays: Collection[date] = ()) -> Metering:
    """A `Book.settle_due` metering function reading the sites' meter power from `store`."""

    def meter(
        sites: Sequence[str], isps: Sequence[datetime], baseline: str
    ) -> tuple[dict[datetime, float], dict[datetime, float]]:
        start = min(isps) - timedelta(days=HISTORY_DAYS if baseline in HISTORY_BASELINES else 0)
        end = max(isps) + timedelta(seconds=ISP_S)
        means = store.read_bucket_means(sites, Points.METER_P_KW, start, end, ISP_S)
        per_site = {s: _by_isp(row, start) for s, row in zip(sites, means, strict=True)}
        return metered(per_site, isps, baseline, holidays=holidays)

    return meter


def _by_isp(row: FloatArray, start: datetime) -> dict[datetime, float]:
    """One site's bucket means as `isp_means` gives them: ISP start -> kW, only where there was data."""
    return {
        start + timedelta(seconds=ISP_S * k): float(row[k]) for k in np.flatnonzero(~np.isnan(row)).tolist()
    }


def metered_month_kw(
    store: Store, sites: Sequence[str], first_day: date, n_days: int, *, rollups: bool = True
) -> FloatArray:
    """(sites, n_days, 96) mean meter kW per ISP of `n_days` UTC days from `first_day`: `settle_month`'s input.

    NaN where a site has no sample in an ISP: `settle_month` then gives NaN for what
    depends on it (never a zero), and the caller names the site-days it cannot settle.
    Read from the store's ISP rollups; `rollups=False` reads the samples (the bench's anchor).
    """
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    per_day = round(86_400 / ISP_S)
    end = start + timedelta(days=n_days)
    means = store.read_bucket_means(sites, Points.METER_P_KW, start, end, ISP_S, rollups=rollups)
    return means.reshape(len(sites), n_days, per_day)
