"""The two baselines that do not come from metered history: the FSP's prognosis and our forecast.

- **The FSP's own prognosis** (USEF: the aggregator's prognosis): kW per ISP of the
  offer's sites without the activation, submitted with the offer or before its gate
  closure. It must give a value for every ISP of every option of the offer (a settlement
  cannot fall back to another baseline silently), and no ISP the offer does not have.
- **Our forecast**: the controller's median forecast of the offer's sites (the plan's
  p50 site powers in the grid view), summed over the sites and averaged per ISP over the
  forecast intervals that start in it. It is frozen when the offer is cleared (with
  `auto_clear`, at its gate closure) and never changed after, so nothing the FSP does
  later moves it.

`accuracy_table` compares each baseline with the metered load on days without an order
(the fairness question every baseline raises; published per FSP). Pure: no store, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from cloud_controller.market.products import ISP_S

__all__ = [
    "HISTORY_BASELINES",
    "BaselineMethod",
    "Pair",
    "accuracy_table",
    "days_between",
    "forecast_baseline_kw",
    "prognosis_gap",
]

#: The baselines computed from the sites' metered history (metering.py); the others are stored.
HISTORY_BASELINES = ("nodes_5wd", "high_4_of_5")
BaselineMethod = str


def prognosis_gap(prognosis_starts: Collection[datetime], offer_starts: Collection[datetime]) -> str | None:
    """Why a prognosis does not fit its offer (an ISP missing or foreign), None when it fits."""
    missing = sorted(set(offer_starts) - set(prognosis_starts))
    if missing:
        return f"no prognosis for the offer's ISP {missing[0].isoformat()} ({len(missing)} missing)"
    extra = sorted(set(prognosis_starts) - set(offer_starts))
    if extra:
        return f"ISP {extra[0].isoformat()} is not an ISP of the offer"
    return None


def forecast_baseline_kw(
    interval_starts: Sequence[datetime],
    p50_kw: np.ndarray[Any, np.dtype[np.float64]],
    site_columns: Mapping[str, int],
    sites: Sequence[str],
    isps: Iterable[datetime],
) -> dict[datetime, float]:
    """Per ISP the mean over its forecast intervals of the sites' summed median kW; ValueError naming a gap.

    `p50_kw` is (T, n_sites) with a column per site (`site_columns`); an interval belongs
    to the ISP it starts in.
    """
    unknown = [s for s in sites if s not in site_columns]
    if unknown:
        raise ValueError(f"our forecast has no site {', '.join(sorted(unknown))}")
    total = p50_kw[:, [site_columns[s] for s in sites]].sum(axis=1)
    keys = np.asarray([t.timestamp() - t.timestamp() % ISP_S for t in interval_starts])
    out = {}
    for isp in sorted(isps):
        hit = keys == isp.timestamp()
        if not hit.any():
            raise ValueError(f"our forecast does not cover ISP {isp.isoformat()}")
        out[isp] = float(total[hit].mean())
    return out


#: (ISP start, baseline kW, metered kW) of one comparison
Pair = tuple[datetime, float, float]


def accuracy_table(
    pairs: Mapping[BaselineMethod, Sequence[Pair]], event_days: Collection[date]
) -> dict[BaselineMethod, dict[str, Any]]:
    """Per method: n, bias, MAE, RMSE (kW) of its baseline against the metered load on days without an event.

    bias = mean(baseline − metered): above 0 the baseline pays for flexibility that was not
    delivered. A method with nothing to compare (no prognosis on a day without an order,
    say) gets `{"n": 0, "reason": ...}`: absent, never a zero error.
    """
    out: dict[BaselineMethod, dict[str, Any]] = {}
    for method, rows in pairs.items():
        err = np.asarray([b - a for t, b, a in rows if t.date() not in event_days], dtype=float)
        if err.size == 0:
            out[method] = {"n": 0, "reason": "nothing to compare on a day without an order"}
            continue
        out[method] = {
            "n": int(err.size),
            "bias_kw": float(err.mean()),
            "mae_kw": float(np.abs(err).mean()),
            "rmse_kw": float(np.sqrt((err**2).mean())),
        }
    return out


def days_between(start: date, end: date) -> list[date]:
    """The days from `start` to `end`, both included."""
    return [start + timedelta(days=k) for k in range((end - start).days + 1)]
