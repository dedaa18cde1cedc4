"""Our AGR's D-Prognosis and Metering values as pure functions: ISP bounds, the portfolio's kW, wire runs.

Kept apart from `agr_prognosis.py` (which sends them and keeps what was sent): these take
numbers and return numbers, with no node, clock or store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from cloud_controller.dr.delivery import baseline_per_interval
from cloud_controller.market.uftp.dso_prognosis import isps_of_day
from cloud_controller.market.uftp.isp import ISP, isp_start
from cloud_controller.market.uftp.prognosis_messages import DPrognosisIsp, MeteringIsp

__all__ = ["day_bounds", "metering_isps", "plan_portfolio_kw", "prognosis_isps"]


def day_bounds(day: date, tz: str) -> list[tuple[datetime, datetime]]:
    """[start, end) in UTC of every ISP of the local day `day` (92, 96 or 100)."""
    starts = [isp_start(day, n, tz) for n in range(1, isps_of_day(day, tz) + 1)]
    return [(t, t + ISP) for t in starts]


def prognosis_isps(power_w: Mapping[int, int]) -> list[DPrognosisIsp]:
    """W per ISP number as D-Prognosis ISP elements, runs of one value as one (Start, Duration)."""
    out: list[DPrognosisIsp] = []
    for n in sorted(power_w):
        last = out[-1] if out else None
        if last is not None and last.power_w == power_w[n] and last.start + last.duration == n:
            out[-1] = DPrognosisIsp(power_w=last.power_w, start=last.start, duration=last.duration + 1)
        else:
            out.append(DPrognosisIsp(power_w=power_w[n], start=n))
    return out


def metering_isps(kw: Mapping[int, float]) -> list[MeteringIsp]:
    """Metering ISPs from kW per ISP number, 3 decimals (no exponent, no −0)."""
    return [
        MeteringIsp(start=n, value=Decimal(f"{(v if abs(v) >= 0.0005 else 0.0):.3f}"))
        for n, v in sorted(kw.items())
    ]


def plan_portfolio_kw(
    sites: Sequence[str],
    bounds: Sequence[tuple[datetime, datetime]],
    *,
    plan_at: datetime | None,
    period_s: float,
    site_forecast_kw: Any,
    site_order: Sequence[str],
    p_now_kw: Mapping[str, float | None],
) -> dict[str, list[float]]:
    """Per site kW per ISP: the plan's median forecast where it covers the ISP, else measured now (else 0)."""
    out: dict[str, list[float]] = {}
    for site in sites:
        forecast = None
        if site_forecast_kw is not None and site in site_order:
            forecast = [float(v) for v in np.asarray(site_forecast_kw)[:, list(site_order).index(site)]]
        out[site], _ = baseline_per_interval(
            bounds, plan_at=plan_at, period_s=period_s, forecast_kw=forecast, p_now_kw=p_now_kw.get(site)
        )
    return out
