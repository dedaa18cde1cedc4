"""Grid model: pandapower networks, the radial linear model the optimiser uses, the meshed DC-OPF, power-flow checks.

Names load on first use (protocols/lazy.py): a light module of the package (the limits
the registry's types use) must not load pandapower and pandas for its neighbours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.lazy import lazy_exports

if TYPE_CHECKING:
    from cloud_controller.grid.ac_check import dc_ac_discrepancy
    from cloud_controller.grid.estimate import MeasurementBatch, StateEstimate, StateEstimator
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
    "MeasurementBatch",
    "NetworkShape",
    "PowerFlowResult",
    "RadialGrid",
    "Region",
    "StateEstimate",
    "StateEstimator",
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

_WHERE = {
    "BatchPowerFlow": "cloud_controller.grid.powerflow",
    "DcNetwork": "cloud_controller.grid.meshed",
    "DcOpfInfeasible": "cloud_controller.grid.meshed",
    "DcOpfOptions": "cloud_controller.grid.meshed",
    "DcOpfResult": "cloud_controller.grid.meshed",
    "EngineChoice": "cloud_controller.grid.meshed",
    "MeasurementBatch": "cloud_controller.grid.estimate",
    "NetworkShape": "cloud_controller.grid.meshed",
    "PowerFlowResult": "cloud_controller.grid.powerflow",
    "RadialGrid": "cloud_controller.grid.radial",
    "Region": "cloud_controller.grid.region",
    "StateEstimate": "cloud_controller.grid.estimate",
    "StateEstimator": "cloud_controller.grid.estimate",
    "build_schutterwald_region": "cloud_controller.grid.region",
    "choose_engine": "cloud_controller.grid.meshed",
    "dc_ac_discrepancy": "cloud_controller.grid.ac_check",
    "dc_network_from_pandapower": "cloud_controller.grid.meshed",
    "network_shape": "cloud_controller.grid.meshed",
    "radial_from_pandapower": "cloud_controller.grid.radial",
    "region_from_json": "cloud_controller.grid.region",
    "solve_dc_opf": "cloud_controller.grid.meshed",
    "station_grid": "cloud_controller.grid.reduce",
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
