"""The probabilistic congestion forecast after each plan, and where its result goes.

Why apart from the control loop: the forecast is a consumer of plans, not part of
planning. It runs in a worker thread, one at a time (forecast/background.py); its result
feeds the market (the DSO's flexibility request) and the OpenADR VTN's auto mode.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

from cloud_controller.forecast.result import ForecastOptions
from cloud_controller.live.types import Plan

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["forecast_loop"]


async def forecast_loop(ctl: CloudController, first: Plan) -> None:
    """Forecast `first`, then each plan that arrived meanwhile (the newest only), until none waits.

    Cancelled (shutdown): the holder is told nothing runs any more; the worker thread ends
    on its own after its one forecast.
    """
    compute = ctl.built_planner.probabilistic_forecast  # type: ignore[union-attr]
    options = ForecastOptions(n_scenarios=ctl.config.control.congestion_scenarios)
    plan: Plan | None = first
    try:
        while plan is not None:
            latest = await asyncio.to_thread(
                ctl.congestion.run,
                functools.partial(compute, plan, options),
                plan_at=plan.at,
                period_s=plan.period_s,
                now=ctl.clock.now,
            )
            if latest is not None and ctl.config.market.enabled:  # the DSO's request, the grid rows
                await ctl.market.on_forecast(latest, plan, ctl.built_planner)
            if latest is not None and ctl.openadr is not None:  # auto mode's events (docs/openadr.md)
                await asyncio.to_thread(ctl.openadr.on_forecast, latest, ctl.built_planner)
            plan = ctl.congestion.release()
    except asyncio.CancelledError:
        ctl.congestion.abandon()
        raise
