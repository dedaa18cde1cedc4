"""Meshed networks and several feeding points: a DC network model and its DC-OPF in HiGHS (docs/grid.md).

`solve_dc_opf(net)` answers `pp.rundcopp`'s problem: `choose_engine` sends a radial net with
one feeding point to the dispatch engine, anything else to the B-theta DC-OPF here.
`meshed_region(net)` makes such a net a region the live planner plans on (`DcGrid`).
"""

from cloud_controller.grid.meshed.choose import (
    MESHED,
    RADIAL,
    EngineChoice,
    NetworkShape,
    choose_engine,
    network_shape,
    solve_dc_opf,
)
from cloud_controller.grid.meshed.network import DcNetwork, PwlSegments
from cloud_controller.grid.meshed.opf import DcOpfInfeasible, DcOpfOptions, DcOpfResult, solve_network
from cloud_controller.grid.meshed.planning import DcGrid, dc_grid, is_meshed_net, meshed_region
from cloud_controller.grid.meshed.radial_route import dc_power_flow
from cloud_controller.grid.meshed.translate import dc_network_from_pandapower

__all__ = [
    "MESHED",
    "RADIAL",
    "DcGrid",
    "DcNetwork",
    "DcOpfInfeasible",
    "DcOpfOptions",
    "DcOpfResult",
    "EngineChoice",
    "NetworkShape",
    "PwlSegments",
    "choose_engine",
    "dc_grid",
    "dc_network_from_pandapower",
    "dc_power_flow",
    "is_meshed_net",
    "meshed_region",
    "network_shape",
    "solve_dc_opf",
    "solve_network",
]
