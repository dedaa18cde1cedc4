"""Grid model: pandapower networks, the radial linear model the optimiser uses, the meshed DC-OPF, power-flow checks."""

from cloud_controller.grid.ac_check import dc_ac_discrepancy
from cloud_controller.grid.meshed import (
    DcNetwork,
    DcOpfInfeasible,
    DcOpfOptions,
    DcOpfResult,
    EngineChoice,
    NetworkShape,
    choose_engine,
    dc_network_from_pandapower,
    network_shape,
    solve_dc_opf,
)
from cloud_controller.grid.powerflow import BatchPowerFlow, PowerFlowResult
from cloud_controller.grid.radial import RadialGrid, radial_from_pandapower
from cloud_controller.grid.reduce import station_grid
from cloud_controller.grid.region import Region, build_schutterwald_region, region_from_json

__all__ = [
    "BatchPowerFlow",
    "DcNetwork",
    "DcOpfInfeasible",
    "DcOpfOptions",
    "DcOpfResult",
    "EngineChoice",
    "NetworkShape",
    "PowerFlowResult",
    "RadialGrid",
    "Region",
    "build_schutterwald_region",
    "choose_engine",
    "dc_ac_discrepancy",
    "dc_network_from_pandapower",
    "network_shape",
    "radial_from_pandapower",
    "region_from_json",
    "solve_dc_opf",
    "station_grid",
]
