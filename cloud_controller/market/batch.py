"""Settling a month of orders for many sites at once: NODES' baseline and the settlement as array operations.

The same rules as `settlement.settle` with `settlement.nodes_baseline`, on arrays (S sites,
D days, 96 ISPs a day) instead of one order's dicts: per site and settled day, the
baseline of each ISP is the mean of the same ISP over the `n_days` preceding working
days that are no holiday and no event day *of that site* (a day it had an order);
delivered = max(0, baseline − actual), deficiency = max(0, ordered − delivered),
price = ordered kWh × price per kWh, penalty = factor × price per kWh × kWh short (our
policy), net = price − penalty. A site-day without an order (ordered 0) settles to 0.
`tests/unit/market/test_batch.py` checks it against the per-order path number for number.
Pure numpy; `gridflex bench settlement` times it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from cloud_controller.market.products import ISP_S

__all__ = ["MonthSettlement", "baseline_day_index", "isp_means", "settle_month"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]
H_PER_ISP = ISP_S / 3600.0


def isp_means(samples: Iterable[tuple[datetime, float]]) -> dict[datetime, float]:
    """The mean of the samples in each ISP, keyed by the ISP's start (UTC); numpy, a month of a site at once."""
    rows = list(samples)
    if not rows:
        return {}
    ts = np.fromiter((t.timestamp() for t, _ in rows), float, len(rows))
    values = np.fromiter((v for _, v in rows), float, len(rows))
    keys, inverse = np.unique(ts - ts % ISP_S, return_inverse=True)
    means = np.bincount(inverse, weights=values) / np.bincount(inverse)
    return {datetime.fromtimestamp(k, UTC): m for k, m in zip(keys.tolist(), means.tolist(), strict=True)}


@dataclass(frozen=True)
class MonthSettlement:
    """Per site, settled day and ISP (S, M, 96) the kW; per site and day (S, M) the euros."""

    baseline_kw: FloatArray
    actual_kw: FloatArray
    delivered_kw: FloatArray
    deficiency_kw: FloatArray
    price_eur: FloatArray
    penalty_eur: FloatArray

    @property
    def net_eur(self) -> FloatArray:
        """Price − penalty (UFTP), per site and day."""
        return self.price_eur - self.penalty_eur


def baseline_day_index(
    days: Sequence[date],
    first: int,
    event: np.ndarray[Any, np.dtype[np.bool_]],
    *,
    holidays: Collection[date] = (),
    n_days: int = 5,
) -> IntArray:
    """(S, M, n_days) indices into `days` of each site's baseline days for the settled days `days[first:]`.

    `event` is (S, D): the site had an order that day. ValueError naming the site and day
    when fewer than `n_days` working days lie before it.
    """
    working = np.asarray([d.weekday() < 5 and d not in holidays for d in days])
    S, D = event.shape
    settled = np.arange(first, D)
    out = np.empty((S, D - first, n_days), dtype=np.int64)
    back = np.arange(1, n_days + 1)
    for s in range(S):
        valid = np.flatnonzero(working & ~event[s])
        pos = np.searchsorted(valid, settled)  # how many valid days lie before each settled day
        if pos.min() < n_days:
            m = int(np.argmax(pos < n_days))
            raise ValueError(
                f"site {s}: fewer than {n_days} working days before {days[first + m].isoformat()}"
            )
        out[s] = valid[pos[:, None] - back]
    return out


def settle_month(
    metered_kw: FloatArray,
    days: Sequence[date],
    first: int,
    ordered_kw: FloatArray,
    price_eur_per_kwh: FloatArray,
    *,
    holidays: Collection[date] = (),
    penalty_factor: float = 1.0,
    n_days: int = 5,
) -> MonthSettlement:
    """Settle `ordered_kw` (S, M, 96) of the days `days[first:]` against `metered_kw` (S, D, 96).

    `price_eur_per_kwh` is (S, M), the price of each site-day's order.
    """
    S, D, n_isp = metered_kw.shape
    M = D - first
    if ordered_kw.shape != (S, M, n_isp) or price_eur_per_kwh.shape != (S, M) or len(days) != D:
        raise ValueError(
            f"shapes: metered {metered_kw.shape}, {len(days)} days, first {first}, "
            f"ordered {ordered_kw.shape}, price {price_eur_per_kwh.shape}"
        )
    if penalty_factor < 0:
        raise ValueError("penalty_factor must be >= 0")
    event = np.zeros((S, D), dtype=bool)
    event[:, first:] = (ordered_kw > 0).any(axis=2)
    idx = baseline_day_index(days, first, event, holidays=holidays, n_days=n_days)
    gathered = np.take_along_axis(metered_kw, idx.reshape(S, M * n_days, 1), axis=1)
    baseline = gathered.reshape(S, M, n_days, n_isp).mean(axis=2)
    actual = metered_kw[:, first:, :]
    delivered = np.maximum(0.0, baseline - actual)
    deficiency = np.maximum(0.0, ordered_kw - delivered)
    price = ordered_kw.sum(axis=2) * H_PER_ISP * price_eur_per_kwh
    penalty = penalty_factor * price_eur_per_kwh * deficiency.sum(axis=2) * H_PER_ISP
    return MonthSettlement(baseline, actual, delivered, deficiency, price, penalty)
