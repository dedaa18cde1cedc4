"""The offline study: the Schutterwald rolling-horizon OPF over a year, per scenario and stress level.

The public face for the `gridflex study` and `gridflex bench study` commands; names are
imported on first use, so importing the package loads neither pandapower nor pyomo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.lazy import lazy_exports

if TYPE_CHECKING:
    from cloud_controller.study.config import BEYOND, SCENARIOS, StudyConfig, load_study_config
    from cloud_controller.study.inputs import StudyInputs
    from cloud_controller.study.report import LABELS
    from cloud_controller.study.results import ScenarioRun
    from cloud_controller.study.runner import run_scenario
    from cloud_controller.study.study import (
        StudyResult,
        load_inputs,
        plan_jobs,
        run_study,
        summarise,
        write_steps,
    )
    from cloud_controller.study.sweep import SweepAxis, SweepPoint, parse_axis, sweep_points, sweep_row
    from cloud_controller.study.sweep_report import figure_sweep, write_sweep_table
    from cloud_controller.study.sweep_run import run_sweep
    from cloud_controller.study.validate import validate_run

__all__ = [
    "BEYOND",
    "LABELS",
    "SCENARIOS",
    "ScenarioRun",
    "StudyConfig",
    "StudyInputs",
    "StudyResult",
    "SweepAxis",
    "SweepPoint",
    "figure_sweep",
    "load_inputs",
    "load_study_config",
    "parse_axis",
    "plan_jobs",
    "run_scenario",
    "run_study",
    "run_sweep",
    "summarise",
    "sweep_points",
    "sweep_row",
    "validate_run",
    "write_steps",
    "write_sweep_table",
]

_WHERE = {
    "BEYOND": "cloud_controller.study.config",
    "SCENARIOS": "cloud_controller.study.config",
    "StudyConfig": "cloud_controller.study.config",
    "load_study_config": "cloud_controller.study.config",
    "LABELS": "cloud_controller.study.report",
    "ScenarioRun": "cloud_controller.study.results",
    "StudyInputs": "cloud_controller.study.inputs",
    "run_scenario": "cloud_controller.study.runner",
    "StudyResult": "cloud_controller.study.study",
    "load_inputs": "cloud_controller.study.study",
    "plan_jobs": "cloud_controller.study.study",
    "run_study": "cloud_controller.study.study",
    "summarise": "cloud_controller.study.study",
    "write_steps": "cloud_controller.study.study",
    "validate_run": "cloud_controller.study.validate",
    "SweepAxis": "cloud_controller.study.sweep",
    "SweepPoint": "cloud_controller.study.sweep",
    "parse_axis": "cloud_controller.study.sweep",
    "sweep_points": "cloud_controller.study.sweep",
    "sweep_row": "cloud_controller.study.sweep",
    "figure_sweep": "cloud_controller.study.sweep_report",
    "write_sweep_table": "cloud_controller.study.sweep_report",
    "run_sweep": "cloud_controller.study.sweep_run",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
