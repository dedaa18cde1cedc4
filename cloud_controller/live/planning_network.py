"""The network the live planner plans on, and its engine: the radial station level, or the whole meshed net.

Why two: a radial region's limits the planner manages are its transformers, so it plans on
the station-level tree (`grid/reduce.station_grid`) with every route of the engine; a meshed
or multi-feed region (`grid/meshed/planning.meshed_region`, chosen by `network_shape` when
the region is loaded) has no such reduction — the flow on a branch of a loop depends on
every injection — so it plans on its whole DC network (`DcGrid`: the B-theta rows in the
LinDistFlow rows' place), with its other ext_grids as import units at their own costs.
Sites, batteries, the per-branch (T, K) ratings and the station limit are the same LP
families either way; a meshed problem is answered by the whole-LP route only, warm from
the last basis (bounds and costs change between plans, the matrix does not).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cloud_controller.dispatch import (
    AreaExecution,
    DecomposedEngine,
    DispatchEngine,
    Engine,
    EngineOptions,
    Problem,
    SiteAssets,
    build_problem,
)
from cloud_controller.dispatch.model.meshed_case import with_feeding_points
from cloud_controller.grid import Region
from cloud_controller.grid.meshed import MESHED, RADIAL, DcNetwork, dc_network_from_pandapower, network_shape
from cloud_controller.grid.meshed.planning import DcGrid
from cloud_controller.grid.radial import RadialGrid
from cloud_controller.grid.reduce import station_grid

__all__ = ["PlanningNetwork", "planning_engine", "planning_network", "planning_problem"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanningNetwork:
    """The grid a planner's LP holds, each planner site's bus on it, and which engine and why."""

    grid: RadialGrid  # a `DcGrid` for a meshed region
    site_bus: np.ndarray  # per planner site
    engine: str  # RADIAL or MESHED
    reason: str
    station_sites: dict[str, frozenset[str]]  # MV/LV station "<table>:<index>" -> the sites below it
    network: DcNetwork | None = None  # the translated net (meshed only): feeding points and costs


def planning_network(
    region: Region, region_sites: Sequence[int], site_names: Sequence[str]
) -> PlanningNetwork:
    """The planning network of `region` for the planner's sites (`region_sites`: their index in the region)."""
    if isinstance(region.grid, DcGrid):
        network = dc_network_from_pandapower(region.net)
        shape = network_shape(network)
        if list(network.branch_names) != list(region.grid.branch_names):
            raise ValueError("the region's DcGrid is not its net's translation (was the net changed?)")
        reason = (
            f"meshed: {shape.n_loops} loop(s)"
            if shape.n_loops
            else f"{shape.n_feeding_points} feeding points"
            if shape.n_feeding_points > 1
            else "a DC network region"
        )
        site_bus = region.site_bus[list(region_sites)]
        return PlanningNetwork(region.grid, site_bus, MESHED, reason, {}, network)
    grid, all_site_bus = station_grid(region)
    site_bus = all_site_bus[list(region_sites)]
    stations = {
        grid.branch_names[k]: frozenset(
            s for s, b in zip(site_names, site_bus.tolist(), strict=True) if b == int(grid.child[k])
        )
        for k in range(1, grid.n_branch)
    }
    return PlanningNetwork(grid, site_bus, RADIAL, "radial with one feeding point", stations)


def planning_problem(
    plan_net: PlanningNetwork, assets: SiteAssets, *, horizon: int, dt_h: float, bat_soc_min: float
) -> Problem:
    """The planner's dispatch problem on its planning network (a meshed one with its feeding points)."""
    problem = build_problem(
        plan_net.grid,
        plan_net.site_bus,
        assets,
        horizon=horizon,
        dt_h=dt_h,
        bat_soc_min=bat_soc_min,
        enforce_voltage=False,
    )
    if plan_net.network is None:
        return problem
    return with_feeding_points(problem, plan_net.network)


def planning_engine(problem: Problem, *, by_area: bool, execution: AreaExecution | None = None) -> Engine:
    """The engine the planner re-solves every period: presolve + interior point cold, then warm simplex.

    Cold start: presolve and interior point for the first plan (1,000 sites: 666 -> 221 s),
    then warm dual simplex from the basis the crossover leaves (~1 s per period).
    `execution` (by area only): where the areas are solved (`dispatch.areas` in the
    config); the engine starts it now and closes it with itself. None: 2 threads here.
    """
    options = EngineOptions(presolve_first=True, cold_solver="ipm")
    if problem.meshed:
        if by_area:
            log.warning("by_area ignored: a meshed region is planned as one LP (areas need a tree)")
        if execution is not None:
            execution.close()  # never started: nothing runs, but say it is done with
        return DispatchEngine(problem, options)
    if by_area:
        # max_sites=0: as fine as the tree allows, one area per station on this network;
        # lazy grid rows: where the HV/MV threshold binds, the whole LP starts from the
        # areas' joined bases instead of cold (dispatch/joined_basis.py)
        return DecomposedEngine(
            problem,
            EngineOptions(presolve_first=True, cold_solver="ipm", lazy_grid=True),
            max_sites=0,
            threads=2,
            execution=execution,
        )
    return DispatchEngine(problem, options)
