"""Grid-aware dispatch: the Schutterwald study's rolling-horizon OPF and an MPC mode, solved by HiGHS.

The public face: code outside `cloud_controller.dispatch` imports from here only. Layout
(docs/dispatch.md): `model/` states the LP (pyomo and numpy, one family table), `highs/`
holds it in HiGHS, `routes/` are the ways a call is answered, `areas/` the decomposition,
`engine.py` runs the routes in order.
"""

from cloud_controller.dispatch.areas.dask_areas import DaskAreas
from cloud_controller.dispatch.areas.decompose import DecomposedEngine, DecompositionStats
from cloud_controller.dispatch.areas.execution import (
    EXECUTIONS,
    AreaExecution,
    ProcessAreas,
    SerialAreas,
    area_execution,
)
from cloud_controller.dispatch.engine import DispatchEngine
from cloud_controller.dispatch.model.build import SiteAssets, build_problem
from cloud_controller.dispatch.model.ppcase import KW_PER_MW, problem_from_pandapower
from cloud_controller.dispatch.model.problem import (
    BatterySteps,
    FloatArray,
    IntArray,
    Problem,
    PwlCost,
    StepInputs,
    StorageState,
    Weights,
)
from cloud_controller.dispatch.model.pyomo_model import build_model
from cloud_controller.dispatch.model.schedule import DispatchInfeasible, Schedule, Violation
from cloud_controller.dispatch.options import EngineOptions
from cloud_controller.dispatch.protocol import Engine
from cloud_controller.dispatch.routes.base import AREAS, LAZY, LP, MEND, SITE, THRESHOLD, Answer

__all__ = [
    "AREAS",
    "EXECUTIONS",
    "KW_PER_MW",
    "LAZY",
    "LP",
    "MEND",
    "SITE",
    "THRESHOLD",
    "Answer",
    "AreaExecution",
    "BatterySteps",
    "DaskAreas",
    "DecomposedEngine",
    "DecompositionStats",
    "DispatchEngine",
    "DispatchInfeasible",
    "Engine",
    "EngineOptions",
    "FloatArray",
    "IntArray",
    "Problem",
    "ProcessAreas",
    "PwlCost",
    "Schedule",
    "SerialAreas",
    "SiteAssets",
    "StepInputs",
    "StorageState",
    "Violation",
    "Weights",
    "area_execution",
    "build_model",
    "build_problem",
    "problem_from_pandapower",
]
