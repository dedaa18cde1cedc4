"""The grid view of each finished background forecast, for the market (service.py calls it).

Why its own module: the service hands over what it has after a forecast (the forecast, the
plan it forecast, the planner with its region and sites); turning that into a `GridView`
needs the region's AC power-flow model, which is built once per fleet here and not per
forecast. Duck-typed on the planner (`region`, `sites`): a planner without a region, or a grid
that is neither a radial tree nor a `DcGrid`, gives no view, says why (`unavailable`, in
`GET /market/status`), and the market clears without grid rows, as before. A meshed or
multi-feed region (`DcGrid`) gets a view with its PTDFs and DC median flows (market/ptdf.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np

from cloud_controller.forecast.background import LatestForecast
from cloud_controller.grid.meshed.planning import DcGrid
from cloud_controller.grid.radial import RadialGrid
from cloud_controller.market.grid_check import pgm_power_flow
from cloud_controller.market.grid_view import FloatArray, GridView, PowerFlow
from cloud_controller.market.ptdf import dc_flows_kw, reduction_ptdf

__all__ = ["ViewBuilder", "is_tree", "meshed_view_parts"]


def is_tree(grid: Any) -> bool:
    """A radial tree: one branch into every bus but the root, so each bus has one path up.

    `DcGrid` (a meshed or multi-feed region, grid/meshed) is a `RadialGrid` by type, but its
    branches may form loops or several trees; those fail this count.
    """
    if not isinstance(grid, RadialGrid):
        return False
    child = [int(c) for c in grid.child]
    return len(child) == grid.n_bus - 1 and len(set(child)) == len(child) and int(grid.root) not in child


class ViewBuilder:
    """Builds `GridView`s; keeps the AC power flow of the last fleet (one worker thread at a time)."""

    def __init__(self) -> None:
        self._key: tuple[int, tuple[int, ...]] | None = None
        self._pf: PowerFlow | None = None
        #: why the last forecast gave no view (shown by GET /market/status), None when it did
        self.unavailable: str | None = None

    def view(self, latest: LatestForecast, plan: Any, planner: Any) -> GridView | None:
        """The view of `latest` (forecast of `plan` by `planner`), or None when the planner has no region."""
        region = getattr(planner, "region", None)
        sites = getattr(planner, "sites", None)
        p50 = getattr(plan, "site_forecast_kw", None)
        if region is None or sites is None or p50 is None:
            self.unavailable = "the planner gives no region, sites or per-site forecast"
            return None
        # a DcGrid's branches run from→to, not root→leaf even when it is a tree: always PTDFs
        meshed = isinstance(region.grid, DcGrid)
        if not meshed and not is_tree(region.grid):
            # neither a tree (paths to the root) nor a DC network (PTDFs): nothing to build rows on
            self.unavailable = (
                f"the region's grid ({type(region.grid).__name__}) is not a radial tree: no grid rows"
            )
            return None
        self.unavailable = None
        households = [int(s.region_site) for s in sites]
        key = (id(region), tuple(households))
        if key != self._key or self._pf is None:
            self._pf, self._key = pgm_power_flow(region, households), key
        fc = latest.forecast
        starts = tuple(latest.plan_at + timedelta(seconds=j * latest.period_s) for j in range(fc.n_intervals))
        site_bus = tuple(int(b) for b in np.asarray(region.site_bus)[households])
        p50_kw = np.asarray(p50, dtype=float)
        ptdf = flows = None
        if meshed:
            ptdf, flows = meshed_view_parts(region.grid, site_bus, p50_kw)
        return GridView(
            forecast=fc,
            interval_starts=starts,
            grid=region.grid,
            sites=tuple(str(s.site) for s in sites),
            site_bus=site_bus,
            p50_kw=p50_kw,
            power_flow=self._pf,
            ptdf=ptdf,
            flow_p50_kw=flows,
        )


def meshed_view_parts(
    grid: DcGrid, site_bus: tuple[int, ...], p50_kw: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(PTDF (K, n_sites), median from→to flows (T, K)) of the fleet's sites on a meshed grid.

    The median flows are the DC flows of the sites' medians alone (households outside the
    fleet at 0 kW, as in the congestion forecast); only their direction per interval is read.
    """
    loads = np.zeros((p50_kw.shape[0], grid.n_bus))
    np.add.at(loads.T, np.asarray(site_bus, dtype=np.int64), p50_kw.T)
    return reduction_ptdf(grid, site_bus), dc_flows_kw(grid, loads)
