"""Which DC-OPF answers a net: the radial dispatch engine, or the meshed B-theta one — chosen by inspection.

The radial engine (`cloud_controller.dispatch`, LinDistFlow on a tree) is fast and holds
the planner's warm state, but it needs one feeding point, no loop, and costs given as
`pwl_cost` (its mirror `problem_from_pandapower` refuses `poly_cost`); it also rates a line
without ``max_loading_percent`` at 100 %, where rundcopp leaves it unlimited. A net that
breaks any of these goes to the meshed engine (`opf.py`), which is exact for trees too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cloud_controller.grid.meshed.network import DcNetwork
from cloud_controller.grid.meshed.opf import DcOpfOptions, DcOpfResult, solve_network
from cloud_controller.grid.meshed.translate import dc_network_from_pandapower

RADIAL = "radial"
MESHED = "meshed"


@dataclass(frozen=True)
class NetworkShape:
    """What the inspection found: feeding points (ext_grids), islands and independent loops."""

    n_feeding_points: int
    n_islands: int
    n_loops: int

    @property
    def radial(self) -> bool:
        """One feeding point and a tree: what the radial engine models."""
        return self.n_feeding_points == 1 and self.n_loops == 0


@dataclass(frozen=True)
class EngineChoice:
    """The engine that answers and why."""

    engine: str  # RADIAL or MESHED
    reason: str
    shape: NetworkShape


def network_shape(network: DcNetwork) -> NetworkShape:
    """Feeding points, islands and loops of a translated network (parallel branches count as a loop)."""
    feeding = sum(1 for name in network.unit_names if name.startswith("ext_grid:"))
    return NetworkShape(feeding, network.n_island, network.n_loop)


def _ratings_all_set(net: Any) -> bool:
    for table in ("line", "trafo"):
        df = net[table]
        df = df[df.in_service.astype(bool)]
        if len(df) and (
            "max_loading_percent" not in df.columns or not np.isfinite(df.max_loading_percent).all()
        ):
            return False
    return True


def choose_engine(net: Any, network: DcNetwork | None = None) -> EngineChoice:
    """Radial engine for a radial net whose costs and ratings it reads as rundcopp does; meshed otherwise."""
    shape = network_shape(network if network is not None else dc_network_from_pandapower(net))
    if shape.n_feeding_points > 1:
        return EngineChoice(MESHED, f"{shape.n_feeding_points} feeding points", shape)
    if shape.n_loops > 0:
        return EngineChoice(MESHED, f"meshed: {shape.n_loops} loop(s)", shape)
    if len(net.poly_cost) or not len(net.pwl_cost):
        return EngineChoice(MESHED, "radial, but the radial engine reads pwl_cost only", shape)
    if not _ratings_all_set(net):
        return EngineChoice(
            MESHED, "radial, but a branch without max_loading_percent (rundcopp: unlimited)", shape
        )
    return EngineChoice(RADIAL, "radial with one feeding point", shape)


def solve_dc_opf(net: Any, options: DcOpfOptions | None = None) -> DcOpfResult:
    """The DC-OPF of a pandapower net, as `pp.rundcopp` defines it, by the engine its shape calls for."""
    opts = options or DcOpfOptions()
    network = dc_network_from_pandapower(net)
    choice = choose_engine(net, network)
    engine = choice.engine if opts.engine == "auto" else opts.engine
    reason = choice.reason if opts.engine == "auto" else f"forced by options ({choice.reason})"
    if engine == RADIAL:
        from cloud_controller.grid.meshed.radial_route import solve_radial

        return solve_radial(net, network, reason=reason)
    return solve_network(network, opts, reason=reason)
