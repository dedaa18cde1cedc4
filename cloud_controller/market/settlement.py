"""Settlement of flexibility orders against a baseline, per ISP, the way UFTP's FlexSettlement reports it.

Per ISP and order (a reduction): delivered = max(0, baseline − actual), deficiency =
max(0, ordered − delivered). The order's price is what it was cleared at (ordered energy ×
its price per kWh); the penalty is **our policy**, not a standard's — each kWh short costs
`penalty_factor` × the order's price per kWh (default 1.0: a shortfall is paid back at the
price it was bought at, so net = price of what was delivered; more than 1.0 also
compensates the DSO for having relied on it) — and net = price − penalty (UFTP).

Baselines, each from the site's own metered history (kW per ISP start):
- `nodes_baseline`: NODES' mean of the same ISP over the 5 preceding *working* days
  (weekends and the given holidays skipped, and days with an event of the site);
- `x_of_y_baseline`: the mean of the X highest of the Y preceding working days at that ISP
  (the "high X of Y" family PJM and CAISO use; X=4, Y=5 by default);
- the FSP's own prognosis and our forecast come in as series (`settle` takes any).
`baseline_accuracy` says how good a baseline is on days without an event — the fairness
question every baseline raises, published per FSP.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from cloud_controller.market.clearing import Order
from cloud_controller.market.products import ISP_S

__all__ = [
    "BaselineAccuracy",
    "IspSettlement",
    "OrderSettlement",
    "baseline_accuracy",
    "nodes_baseline",
    "settle",
    "working_days_before",
    "x_of_y_baseline",
]

Series = Mapping[datetime, float]


def working_days_before(
    day: date, n: int, *, holidays: Collection[date] = (), skip: Collection[date] = ()
) -> list[date]:
    """The `n` working days before `day`, newest first: no Saturday, Sunday, holiday or skipped day."""
    out: list[date] = []
    d = day
    for _ in range(366):
        d -= timedelta(days=1)
        if d.weekday() >= 5 or d in holidays or d in skip:
            continue
        out.append(d)
        if len(out) == n:
            return out
    raise ValueError(f"fewer than {n} working days in the year before {day}")


def _same_isp(history: Series, isp: datetime, days: Sequence[date]) -> list[float]:
    values = []
    for d in days:
        t = datetime.combine(d, isp.timetz())
        if t not in history:
            raise ValueError(f"history has no value at {t.isoformat()} (baseline for {isp.isoformat()})")
        values.append(history[t])
    return values


def nodes_baseline(
    history: Series,
    isps: Sequence[datetime],
    *,
    holidays: Collection[date] = (),
    event_days: Collection[date] = (),
    n_days: int = 5,
) -> dict[datetime, float]:
    """Per ISP the mean of the same ISP over the `n_days` preceding working days (NODES)."""
    out = {}
    for isp in isps:
        days = working_days_before(isp.date(), n_days, holidays=holidays, skip=event_days)
        out[isp] = float(np.mean(_same_isp(history, isp, days)))
    return out


def x_of_y_baseline(
    history: Series,
    isps: Sequence[datetime],
    *,
    x: int = 4,
    y: int = 5,
    holidays: Collection[date] = (),
    event_days: Collection[date] = (),
) -> dict[datetime, float]:
    """Per ISP the mean of the `x` highest values of the same ISP over the `y` preceding working days."""
    if not 0 < x <= y:
        raise ValueError("need 0 < x <= y")
    out = {}
    for isp in isps:
        days = working_days_before(isp.date(), y, holidays=holidays, skip=event_days)
        values = sorted(_same_isp(history, isp, days), reverse=True)
        out[isp] = float(np.mean(values[:x]))
    return out


@dataclass(frozen=True)
class IspSettlement:
    """One ISP of one order, as UFTP's FlexSettlement carries it (kW means over the ISP)."""

    isp: datetime
    baseline_kw: float
    ordered_kw: float
    actual_kw: float
    delivered_kw: float
    deficiency_kw: float


@dataclass(frozen=True)
class OrderSettlement:
    """An order settled: per ISP, then price, penalty and net (€)."""

    order_id: str
    fsp: str
    isps: tuple[IspSettlement, ...]
    price_eur: float
    penalty_eur: float

    @property
    def net_eur(self) -> float:
        """What the FSP is paid: price − penalty (UFTP)."""
        return self.price_eur - self.penalty_eur

    @property
    def delivered_kwh(self) -> float:
        """Energy delivered over the order's ISPs."""
        return sum(i.delivered_kw for i in self.isps) * ISP_S / 3600.0

    @property
    def deficiency_kwh(self) -> float:
        """Energy ordered but not delivered."""
        return sum(i.deficiency_kw for i in self.isps) * ISP_S / 3600.0


def settle(
    order: Order, baseline_kw: Series, actual_kw: Series, *, penalty_factor: float = 1.0
) -> OrderSettlement:
    """Settle one reduction order from its baseline and the metered actuals (kW per ISP)."""
    if penalty_factor < 0:
        raise ValueError("penalty_factor must be >= 0")
    rows = []
    for isp, ordered in sorted(order.kw.items()):
        if isp not in baseline_kw or isp not in actual_kw:
            raise ValueError(f"order {order.order_id}: no baseline or actual at {isp.isoformat()}")
        delivered = max(0.0, baseline_kw[isp] - actual_kw[isp])
        rows.append(
            IspSettlement(
                isp=isp,
                baseline_kw=baseline_kw[isp],
                ordered_kw=ordered,
                actual_kw=actual_kw[isp],
                delivered_kw=delivered,
                deficiency_kw=max(0.0, ordered - delivered),
            )
        )
    deficiency_kwh = sum(r.deficiency_kw for r in rows) * ISP_S / 3600.0
    return OrderSettlement(
        order_id=order.order_id,
        fsp=order.fsp,
        isps=tuple(rows),
        price_eur=order.price_eur,
        penalty_eur=penalty_factor * order.price_eur_per_kwh * deficiency_kwh,
    )


@dataclass(frozen=True)
class BaselineAccuracy:
    """How a baseline did on days without an event: bias and errors in kW, over `n` ISPs."""

    n: int
    bias_kw: float  # mean(baseline - actual): > 0 pays for flexibility that was not delivered
    mae_kw: float
    rmse_kw: float


def baseline_accuracy(baseline_kw: Series, actual_kw: Series) -> BaselineAccuracy:
    """Bias, MAE and RMSE of a baseline against the actuals at the ISPs both have."""
    common = sorted(set(baseline_kw) & set(actual_kw))
    if not common:
        raise ValueError("no ISP with both a baseline and an actual value")
    err = np.asarray([baseline_kw[t] - actual_kw[t] for t in common])
    return BaselineAccuracy(
        n=len(common),
        bias_kw=float(err.mean()),
        mae_kw=float(np.abs(err).mean()),
        rmse_kw=float(np.sqrt((err**2).mean())),
    )
