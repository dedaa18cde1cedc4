"""What the planner and the study hold: an engine, whether one LP or one LP per area."""

from __future__ import annotations

from typing import Protocol

from cloud_controller.dispatch.model.problem import (
    BatterySteps,
    FloatArray,
    Problem,
    StepInputs,
    StorageState,
)
from cloud_controller.dispatch.model.schedule import Schedule
from cloud_controller.dispatch.routes.base import Answer


class Engine(Protocol):
    """`DispatchEngine` and `DecomposedEngine`: built once per problem, called every period."""

    problem: Problem

    def answer(self, inputs: StepInputs, state: StorageState) -> Answer:
        """The period's answer: schedule, the route that gave it, certified or not."""
        ...

    def solve(self, inputs: StepInputs, state: StorageState) -> Schedule:
        """`answer(...).schedule`."""
        ...

    def set_battery_limits(
        self,
        p_max_kw: FloatArray,
        e_min_kwh: FloatArray,
        e_max_kwh: FloatArray,
        steps: BatterySteps | None = None,
    ) -> None:
        """Per battery, until changed again: power range and energy window (`steps`: per period)."""
        ...

    def shift_basis(self, k: int) -> bool:
        """Move the warm start `k` periods on with a multi-period window."""
        ...
