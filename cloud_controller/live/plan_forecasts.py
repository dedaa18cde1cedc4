"""The congestion forecasts of a plan: the on-demand AC scenarios and the full probabilistic forecast.

Split from the planner: both read only a finished plan and a model built once per fleet (never
the LP), so the service runs them in a worker thread without holding the plan lock. The
planner hands in what it knows — its HV/MV threshold, the limits in force, the stations'
load outside the fleet.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from cloud_controller.forecast.congestion import CongestionForecast, ScenarioCongestion
from cloud_controller.forecast.limits_input import forecast_limits
from cloud_controller.forecast.probabilistic import ProbabilisticCongestion
from cloud_controller.forecast.result import ForecastOptions, ProbabilisticForecast
from cloud_controller.grid import Region
from cloud_controller.grid.limits import GridLimits
from cloud_controller.grid.limits_check import interval_starts
from cloud_controller.live.site_forecast import period_start
from cloud_controller.live.types import CongestionInterval, Plan

__all__ = ["PlanForecasts", "hvmv_congestion"]


class PlanForecasts:
    """One region and fleet (region households of the planner's sites); the models are built on first use."""

    def __init__(self, region: Region, households: list[int], *, period_s: float) -> None:
        self.region = region
        self.households = households
        self.period_s = period_s
        self._scenarios: ScenarioCongestion | None = None
        self._probabilistic: ProbabilisticCongestion | None = None

    def scenarios(self, plan: Plan, n_scenarios: int, limit_kw: float | None) -> CongestionForecast:
        """The FlexiGrid DSO guide's AC scenario forecast of `plan` (forecast/congestion.py); seconds of CPU."""
        if plan.site_forecast_kw is None or plan.site_sigma_kw is None:
            raise ValueError("the plan carries no per-site forecast")
        if self._scenarios is None or self._scenarios.n_scenarios != n_scenarios:
            self._scenarios = ScenarioCongestion(self.region, self.households, n_scenarios=n_scenarios)
        return self._scenarios.forecast(plan.site_forecast_kw, plan.site_sigma_kw, hvmv_limit_kw=limit_kw)

    def probabilistic(
        self,
        plan: Plan,
        options: ForecastOptions | None,
        *,
        limits: GridLimits,
        limit_kw: float | None,
        background_kw: npt.NDArray[np.float64] | None,
    ) -> ProbabilisticForecast:
        """Every element of `plan`'s horizon against the limit in force in each interval (forecast/limits_input.py)."""
        if plan.site_forecast_kw is None or plan.site_sigma_kw is None:
            raise ValueError("the plan carries no per-site forecast")
        if self._probabilistic is None:
            self._probabilistic = ProbabilisticCongestion(self.region, self.households)
        pc = self._probabilistic
        starts = interval_starts(
            period_start(plan.at, self.period_s), len(plan.site_forecast_kw), self.period_s
        )
        branch_pct, band = forecast_limits(limits, pc.branch_refs, pc.bus_refs, starts, self.period_s)
        return pc.forecast(
            plan.site_forecast_kw,
            plan.site_sigma_kw,
            options,
            background_kw=background_kw,  # None: the fleet only
            hvmv_limit_kw=limit_kw,
            branch_limit_pct=branch_pct,
            bus_band_pu=band,
        )


def hvmv_congestion(
    start: datetime,
    base_total_kw: npt.NDArray[np.float64],
    sigma_total_kw: npt.NDArray[np.float64],
    limit_kw: float,
    period_s: float,
) -> list[CongestionInterval]:
    """The plan's own HV/MV congestion per period: the fleet's forecast loading and P(over the limit).

    A normal forecast error of `sigma_total_kw` around the baseline `base_total_kw`; without a
    limit (inf) every period reads 0 % and 0.
    """
    finite = bool(np.isfinite(limit_kw))
    z = (limit_kw - base_total_kw) / np.maximum(sigma_total_kw, 1e-6)
    p_exceed = 0.5 * np.vectorize(math.erfc)(z / math.sqrt(2.0))
    return [
        CongestionInterval(
            start=start + timedelta(seconds=k * period_s),
            element="hvmv",
            loading_pct=float(100.0 * base_total_kw[k] / limit_kw) if finite else 0.0,
            p_exceed=float(p_exceed[k]) if finite else 0.0,
        )
        for k in range(len(base_total_kw))
    ]
