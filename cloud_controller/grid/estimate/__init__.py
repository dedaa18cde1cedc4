"""State estimation of the grid (the FlexiGrid DSO guide's network observability): WLS with power-grid-model.

`measurements` builds sensor arrays with σ from meter class, quality and forecasts;
`observability` says what the meters cannot see and where a meter would fix it;
`estimator` runs power-grid-model's batch estimation with a χ² test and largest-
normalised-residual removal; `wls` is the numpy linearisation that supplies the residual
covariances PGM does not expose. See docs/grid-state.md.
"""

from cloud_controller.grid.estimate.estimator import EstimateOptions, StateEstimator
from cloud_controller.grid.estimate.measurements import (
    FlowSensors,
    LoadForecast,
    LoadReadings,
    LoadSensors,
    MeasurementBatch,
    MeterClass,
    QualityPolicy,
    SensorSpec,
    VoltageSensors,
    age_widened_sigma,
    load_sensors,
    meter_sigma,
    pseudo_sigma_kw,
)
from cloud_controller.grid.estimate.observability import (
    Island,
    MeterSuggestion,
    Observability,
    Topology,
    check_observability,
)
from cloud_controller.grid.estimate.result import BadDatum, PseudoWidening, StateEstimate

__all__ = [
    "BadDatum",
    "EstimateOptions",
    "FlowSensors",
    "Island",
    "LoadForecast",
    "LoadReadings",
    "LoadSensors",
    "MeasurementBatch",
    "MeterClass",
    "MeterSuggestion",
    "Observability",
    "PseudoWidening",
    "QualityPolicy",
    "SensorSpec",
    "StateEstimate",
    "StateEstimator",
    "Topology",
    "VoltageSensors",
    "age_widened_sigma",
    "check_observability",
    "load_sensors",
    "meter_sigma",
    "pseudo_sigma_kw",
]
