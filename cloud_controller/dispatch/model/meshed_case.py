"""A `DcNetwork`'s units and costs as a dispatch Problem: the mirror of `rundcopp`, and a planner's feeding points.

Why here and not in `grid/meshed`: the units, their piecewise-linear costs and the slack's
cost are the dispatch LP's own families (`problem.py`); the grid rows come from
`grid.meshed.planning.DcGrid`. The same conversion serves both callers:

- `problem_from_dc_network`: every unit of the network (ext_grids beside the slack, gens,
  controllable sgens / loads / storage) with its cost, fixed injections as bus loads: one
  period whose optimum is `rundcopp`'s (tests/unit/dispatch/test_meshed_planning.py);
- `with_feeding_points`: a planner's problem of sites and batteries on a `DcGrid` gets the
  ext_grids beside the slack as import units (`Problem.unit_feed`), each at its own cost.

Costs are linear only (the dispatch LP has no Hessian): a quadratic `poly_cost` is refused
with its unit's name; `solve_dc_opf` answers those exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cloud_controller.dispatch.model.problem import FloatArray, IntArray, Problem, PwlCost, StepInputs
from cloud_controller.grid.meshed.network import DcNetwork
from cloud_controller.grid.meshed.planning import KW_PER_MW, DcGrid, dc_grid
from protocols.errors import ConfigError

__all__ = ["problem_from_dc_network", "with_feeding_points"]


@dataclass(frozen=True)
class _Units:
    """Network units as dispatch units: load-positive kW, costs on the injection (`unit_sign` -1)."""

    bus: IntArray
    p_min_kw: FloatArray
    p_max_kw: FloatArray
    cost: tuple[PwlCost, ...]


def unit_cost(network: DcNetwork, g: int, *, scale: float = 1.0) -> PwlCost:
    """Unit g's cost per kW of injection (× `scale`, e.g. a period's hours); linear or PWL only."""
    name = network.unit_names[g]
    if network.cost_c2_eur_per_mw2[g] != 0.0:
        raise ConfigError(
            f"{name} has a quadratic cost; the dispatch LP is linear (solve_dc_opf solves it exactly)",
            key=f"poly_cost:{name}",
        )
    seg = network.cost_pwl[g]
    if seg is not None:
        return PwlCost(
            tuple(float(s) * scale / KW_PER_MW for s in seg.slope_eur_per_mw),
            tuple(float(o) * scale for o in seg.offset_eur),
        )
    return PwlCost(
        (float(network.cost_c1_eur_per_mw[g]) * scale / KW_PER_MW,), (float(network.cost_c0_eur[g]) * scale,)
    )


def import_cost(cost: PwlCost) -> PwlCost:
    """`cost` on a feeding point's import only: its export earns nothing (a cost of at least 0).

    Why: two feeding points at different prices would otherwise trade through the region
    (import at the cheap one, export at the dear one, up to the limits), as a site's export
    earns nothing in the planner either (`Weights.c_export` = 0).
    """
    return PwlCost((0.0, *cost.slopes), (0.0, *(0.0 for _ in cost.offsets)))


def _units(network: DcNetwork, which: list[int], scale: float) -> _Units:
    return _Units(
        bus=network.unit_bus[which].astype(np.int64),
        # unit power is load-positive: an injection p is -p
        p_min_kw=-network.unit_p_max_mw[which] * KW_PER_MW,
        p_max_kw=-network.unit_p_min_mw[which] * KW_PER_MW,
        cost=tuple(unit_cost(network, g, scale=scale) for g in which),
    )


def _slack(network: DcNetwork, grid: DcGrid) -> int:
    return network.unit_names.index(grid.root_name)


def _with_root(problem: Problem, network: DcNetwork, grid: DcGrid, scale: float) -> Problem:
    """The slack's power range and cost: its ext_grid's."""
    r = _slack(network, grid)
    lo, hi = float(network.unit_p_min_mw[r]), float(network.unit_p_max_mw[r])
    return replace(
        problem,
        root_p_min_kw=lo * KW_PER_MW if np.isfinite(lo) else -np.inf,
        root_p_max_kw=hi * KW_PER_MW if np.isfinite(hi) else np.inf,
        root_cost=unit_cost(network, r, scale=scale),
    )


def problem_from_dc_network(network: DcNetwork) -> tuple[Problem, StepInputs]:
    """One period of `rundcopp`'s problem on the dispatch LP: every unit beside the slack, fixed loads per bus."""
    grid = dc_grid(network)  # rundcopp's ratings: unlimited where max_loading_percent is absent
    slack = _slack(network, grid)
    which = [g for g in range(network.n_unit) if g != slack]
    u = _units(network, which, 1.0)
    problem = Problem(
        grid=grid,
        site_bus=np.zeros(0, dtype=np.int64),
        dt_h=1.0,
        unit_bus=u.bus,
        unit_p_min_kw=u.p_min_kw,
        unit_p_max_kw=u.p_max_kw,
        unit_sign=np.full(len(which), -1.0),
        unit_cost=u.cost,
        unit_feed=np.asarray([network.unit_names[g].startswith("ext_grid:") for g in which], dtype=bool),
        enforce_voltage=False,
    )
    inputs = StepInputs(base_kw=np.zeros((1, 0)), bus_fixed_kw=network.fixed_load_mw[None, :] * KW_PER_MW)
    return _with_root(problem, network, grid, 1.0), inputs


def with_feeding_points(problem: Problem, network: DcNetwork) -> Problem:
    """`problem` (sites on `network`'s `DcGrid`) with every ext_grid beside the slack as an import unit.

    Costs per kWh of import: the network's € per MWh / 1000 × the period's hours, on the
    slack as on the others, so the feeding points are ranked by their own costs (with none
    in the net, `rundcopp`'s default of 1 per MW each: a tie-break, not a preference); a
    feeding point's export earns nothing (`import_cost`). The offset (c0) is dropped: a
    constant per period does not change the plan.
    """
    grid = problem.grid
    if not isinstance(grid, DcGrid):
        raise ValueError("feeding points need a DcGrid (grid.meshed.planning)")
    if problem.n_units:
        raise ValueError("the problem has units already")
    which = [network.unit_names.index(name) for name in grid.feed_names]
    u = _units(network, which, problem.dt_h)
    fed = replace(
        problem,
        unit_bus=u.bus,
        unit_p_min_kw=u.p_min_kw,
        unit_p_max_kw=u.p_max_kw,
        unit_sign=np.full(len(which), -1.0),
        unit_cost=tuple(import_cost(c) for c in u.cost),
        unit_feed=np.ones(len(which), dtype=bool),
        enforce_voltage=False,
    )
    fed = _with_root(fed, network, grid, problem.dt_h)
    assert fed.root_cost is not None
    return replace(fed, root_cost=import_cost(fed.root_cost))
