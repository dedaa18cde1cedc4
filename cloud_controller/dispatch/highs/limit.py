"""HiGHS's time limit: set on every instance, and a solve that hits it says so (never silently).

Why: a live controller that waits without bound on one LP plans nothing at all, and its
sites fall back one by one while it still looks alive. With a limit the call raises
`DispatchTimeLimit` (a `DispatchInfeasible`, so the planner's error path counts and logs
it and no command of a half-solved LP is published); the session counts every hit.
"""

from __future__ import annotations

import logging
from typing import Any

import highspy

from cloud_controller.dispatch.model.schedule import DispatchInfeasible

__all__ = ["DispatchTimeLimit", "check_optimal", "set_time_limit"]

log = logging.getLogger(__name__)


class DispatchTimeLimit(DispatchInfeasible):
    """HiGHS stopped at its time limit before an optimal answer: this call has no plan."""


def set_time_limit(h: Any, time_limit_s: float) -> None:
    """Give HiGHS instance `h` a wall-time limit per `run()` (seconds)."""
    h.setOptionValue("time_limit", float(time_limit_s))


def time_limit_of(h: Any) -> float:
    """The time limit HiGHS instance `h` holds (seconds)."""
    got = h.getOptionValue("time_limit")
    return float(got[1] if isinstance(got, tuple) else got)


def check_optimal(h: Any) -> None:
    """Raise unless HiGHS's last run ended optimal; `DispatchTimeLimit` when it ran out of time."""
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        return
    if status == highspy.HighsModelStatus.kTimeLimit:
        limit = time_limit_of(h)
        log.warning("HiGHS hit its time limit of %.3g s: no plan from this solve", limit)
        raise DispatchTimeLimit(f"HiGHS hit its time limit of {limit:.3g} s")
    raise DispatchInfeasible(f"HiGHS status {h.modelStatusToString(status)}")
