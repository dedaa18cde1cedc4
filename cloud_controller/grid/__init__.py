"""Grid model: pandapower networks, the radial linear model the optimiser uses, power-flow checks."""

from cloud_controller.grid.ac_check import dc_ac_discrepancy
from cloud_controller.grid.estimate import MeasurementBatch, StateEstimate, StateEstimator
from cloud_controller.grid.powerflow import BatchPowerFlow, PowerFlowResult
from cloud_controller.grid.radial import RadialGrid, radial_from_pandapower
from cloud_controller.grid.reduce import station_grid
from cloud_controller.grid.region import Region, build_schutterwald_region, region_from_json

__all__ = [
    "BatchPowerFlow",
    "MeasurementBatch",
    "PowerFlowResult",
    "RadialGrid",
    "Region",
    "StateEstimate",
    "StateEstimator",
    "build_schutterwald_region",
    "dc_ac_discrepancy",
    "radial_from_pandapower",
    "region_from_json",
    "station_grid",
]
