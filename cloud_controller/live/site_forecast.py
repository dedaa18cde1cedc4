"""The planner's per-site forecasts: each site's baseline from its history, the latest measurement blended in.

Pure over the history reader and the snapshots: `fleet_forecast` makes the net load without
the battery (household + EV + heat pump − PV) with p10–p90 spreads; `with_measurements`
lets the last measured value rule the first period and fade over `MEASUREMENT_FADE_H`
(a household's next quarter hour looks like its last one far more than like yesterday's).
The forecast backtest (`forecast/quality_backtest.py`) blends with the same constant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from cloud_controller.forecast.baseline import Baseline, seasonal_naive_smoothing
from cloud_controller.live.battery_state import battery_asset
from cloud_controller.live.types import History, SiteRef, SiteSnapshot
from protocols.assets import Points

__all__ = [
    "MEASUREMENT_FADE_H",
    "Z_80",
    "FleetForecast",
    "fleet_forecast",
    "period_start",
    "with_measurements",
]

Z_80 = 2.5631  # p90 − p10 of a normal distribution, in standard deviations
MEASUREMENT_FADE_H = 1.0


@dataclass(frozen=True)
class FleetForecast:
    """Per-site net load without the battery, and the spreads the congestion forecast needs."""

    base_kw: np.ndarray  # (T, n) meter − battery: household + EV + heat pump − PV
    #: (T,) standard deviation of the fleet total, from the sites' p10–p90 spreads (independent
    #: sites, normal approximation): the congestion forecast's probability of exceeding the limit.
    sigma_kw: np.ndarray
    site_sigma_kw: np.ndarray  # (T, n) each site's standard deviation


def period_start(now: datetime, period_s: float) -> datetime:
    """The start of the control period `now` falls in."""
    ts = now.timestamp()
    return datetime.fromtimestamp(ts - ts % period_s, tz=now.tzinfo)


def fleet_forecast(
    sites: Sequence[SiteRef],
    has_battery: Sequence[bool],
    history: History,
    now: datetime,
    *,
    period_s: float,
    horizon: int,
) -> FleetForecast:
    """Per-site forecasts: net load without the battery (household + EV + heat pump − PV)."""
    start = period_start(now, period_s)
    base = np.zeros((horizon, len(sites)))
    site_sigma = np.zeros((horizon, len(sites)))

    def baseline(site: str, asset: str, point: str) -> Baseline:
        rows = history.read_series(site, asset, point, now - timedelta(days=2), now)
        return seasonal_naive_smoothing(rows, now=start, period_s=period_s, horizon=horizon)

    for i, s in enumerate(sites):
        meter = baseline(s.site, *Points.METER_P_KW)
        base[:, i] = meter.p50
        if has_battery[i]:
            base[:, i] -= baseline(s.site, battery_asset(s), "p_kw").p50
        site_sigma[:, i] = np.maximum(meter.p90 - meter.p10, 0.0) / Z_80
    return FleetForecast(base, np.sqrt((site_sigma**2).sum(axis=1)), site_sigma)


def with_measurements(
    fc: FleetForecast,
    sites: Sequence[SiteRef],
    has_battery: Sequence[bool],
    snapshots: Mapping[str, SiteSnapshot],
    *,
    period_s: float,
) -> FleetForecast:
    """Blend each site's latest measurement in: it rules the first period and fades over an hour."""
    base = fc.base_kw.copy()
    k = np.arange(base.shape[0])
    weight = np.exp(-k * period_s / (MEASUREMENT_FADE_H * 3600.0))
    for i, s in enumerate(sites):
        snap = snapshots.get(s.site)
        if snap is None or snap.p_net_kw is None:
            continue
        p_bat = snap.points.get(f"{battery_asset(s)}/p_kw", 0.0) if has_battery[i] else 0.0
        base[:, i] += weight * (snap.p_net_kw - p_bat - base[0, i])
    return FleetForecast(base, fc.sigma_kw, fc.site_sigma_kw)
