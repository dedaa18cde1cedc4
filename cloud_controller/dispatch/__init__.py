"""Grid-aware dispatch: seed 001's rolling-horizon OPF and an MPC mode, pyomo model solved by HiGHS."""

from cloud_controller.dispatch.build import SiteAssets, build_problem
from cloud_controller.dispatch.decompose import DecomposedEngine
from cloud_controller.dispatch.engine import DispatchEngine, DispatchInfeasible, Schedule, Violation
from cloud_controller.dispatch.model import build_model
from cloud_controller.dispatch.problem import Problem, PwlCost, StepInputs, StorageState, Weights

__all__ = [
    "DecomposedEngine",
    "DispatchEngine",
    "DispatchInfeasible",
    "Problem",
    "PwlCost",
    "Schedule",
    "SiteAssets",
    "StepInputs",
    "StorageState",
    "Violation",
    "Weights",
    "build_model",
    "build_problem",
]
