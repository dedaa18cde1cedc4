"""The route protocol: each way of answering a call either answers it or passes (None)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cloud_controller.dispatch.model.problem import StepInputs, StorageState
from cloud_controller.dispatch.model.schedule import Schedule

# Route names, in the order `DispatchEngine` tries them (a route absent by the options is skipped).
SITE = "site"  # site by site without HiGHS: no grid row binds
THRESHOLD = "threshold"  # site by site with a price on a binding HV/MV threshold
MEND = "mend"  # site by site, the subtrees below overloaded branches re-solved
LAZY = "lazy"  # HiGHS, the LP with grid rows added where broken
LP = "lp"  # HiGHS, the whole LP
AREAS = "areas"  # `DecomposedEngine`: one LP per area, certified against the whole LP
HIGHS_ROUTES = (LAZY, LP)  # the routes that leave a HiGHS solution (row duals) behind


@dataclass(frozen=True)
class Answer:
    """One call's answer: the schedule, the route that produced it, and whether it is certified.

    Certified means optimal for the whole LP of that call (checked, not assumed).
    """

    schedule: Schedule
    route: str
    certified: bool


class Route(Protocol):
    """One way of answering a call; None passes it to the next route."""

    name: str

    def answer(self, inputs: StepInputs, state: StorageState) -> Answer | None:
        """This route's answer to the call, or None to pass it to the next route."""
        ...
