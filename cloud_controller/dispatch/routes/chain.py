"""The routes of `DispatchEngine`, each a small class that answers a call or passes (None).

Order (the engine's): `SiteRoute` (site by site, no grid row binds), `ThresholdRoute` (a
binding HV/MV threshold priced into every site's exchange), `MendRoute` (the subtrees below
overloaded branches re-solved), then HiGHS: `LazyGridRoute` (grid rows added where broken)
or `WholeLpRoute`. The last one always answers. A meshed problem (`Problem.meshed`: loops
or several feeding points) has `WholeLpRoute` only: the per-site, threshold, mend and lazy
routes read a branch's flow as the sum over its subtree, which holds on a tree only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloud_controller.dispatch.highs.session import LpSession
from cloud_controller.dispatch.model.problem import IntArray, Problem, StepInputs, StorageState
from cloud_controller.dispatch.routes.base import LAZY, LP, MEND, SITE, THRESHOLD, Answer
from cloud_controller.dispatch.routes.repair import SubtreeRepair
from cloud_controller.dispatch.routes.site_inputs import SiteInputs
from cloud_controller.dispatch.routes.sites import SiteAnswer, SiteSolver, StepData


@dataclass
class Broken:
    """This call's per-site answer that broke a grid row (what the mending routes start from)."""

    data: StepData
    answer: SiteAnswer
    overloaded: IntArray | None  # the branches it overloads, if that is all it breaks


class SiteRoute:
    """Every site's own optimum, certified: answers when no grid row binds."""

    name = SITE

    def __init__(self, sites: SiteSolver, site_inputs: SiteInputs, *, keep_broken: bool) -> None:
        """`keep_broken`: keep an answer that broke a grid row for the mending routes."""
        self.sites = sites
        self.inputs = site_inputs
        self._keep_broken = keep_broken
        self.broken: Broken | None = None  # set on every call

    def answer(self, inputs: StepInputs, state: StorageState) -> Answer | None:
        """Solve site by site; certified if every site passes its check and no grid row breaks."""
        sv = self.sites
        data = self.inputs.step_data(inputs, state)
        ans = sv.solve(data)
        self.broken = None
        if ans is not None:
            return Answer(self.inputs.schedule(ans), SITE, certified=True)
        if sv.unchecked is not None and self._keep_broken:
            self.broken = Broken(data, sv.unchecked, sv.overloaded(data, sv.unchecked))
            sv.unchecked = None
        return None


class ThresholdRoute:
    """The per-site answer broke an HV/MV threshold (and no branch): price the threshold.

    The threshold's price on every site's exchange (`threshold.clear_threshold`),
    certified, or pass.
    """

    name = THRESHOLD

    def __init__(self, site: SiteRoute) -> None:
        self.site = site
        self.priced = 0  # periods answered this way

    def answer(self, inputs: StepInputs, state: StorageState) -> Answer | None:
        """Price the broken HV/MV threshold over the per-site answer; None unless certified."""
        b = self.site.broken
        if b is None or b.overloaded is not None:
            return None
        sv = self.site.sites
        priced = sv.clear_threshold(b.data)
        if priced is None or not sv.grid_ok(b.data, priced):
            return None
        self.priced += 1
        return Answer(self.site.inputs.schedule(priced), THRESHOLD, certified=True)


class MendRoute:
    """The per-site answer overloads branches (and breaks nothing else): repair the subtrees.

    The subtrees below them re-solved (`repair.SubtreeRepair`), certified, or pass.
    """

    name = MEND

    def __init__(self, site: SiteRoute, problem: Problem, make_engine: Callable[[Problem], Any]) -> None:
        self.site = site
        self.problem = problem
        self._make_engine = make_engine
        self.repair: SubtreeRepair | None = None  # built when a per-site answer first overloads

    @property
    def mended(self) -> int:
        """How many calls the subtree repair answered so far."""
        return 0 if self.repair is None else self.repair.mended

    def answer(self, inputs: StepInputs, state: StorageState) -> Answer | None:
        """Re-solve the subtrees below the overloaded branches; None unless certified."""
        b = self.site.broken
        if b is None or b.overloaded is None:
            return None
        if self.repair is None:
            self.repair = SubtreeRepair(self.problem, self._make_engine)
        limits = self.site.inputs.battery_limits
        mended = self.repair.mend(inputs, state, b.answer, b.overloaded, limits)
        if mended is None:
            return None  # SubtreeRepair counted the refusal
        if not self.site.sites.grid_ok(b.data, mended):
            self.repair.refused += 1
            return None
        self.repair.mended += 1
        return Answer(self.site.inputs.schedule(mended), MEND, certified=True)


class WholeLpRoute:
    """HiGHS re-solves the whole LP warm.

    Or, as `LazyGridRoute`, the LP without the grid rows it does not need. Always answers;
    certified unless it held another COP than the step's.
    """

    name = LP

    def __init__(self, session: Callable[[], LpSession]) -> None:
        self._session = session  # built on first need: a period answered site by site never needs it

    def answer(self, inputs: StepInputs, state: StorageState) -> Answer | None:
        """Solve the whole LP warm in HiGHS; certified unless the COP held differs from the step's."""
        s = self._session()
        schedule = s.solve(inputs, state)
        return Answer(schedule, self.name, certified=s.cop_exact)


class LazyGridRoute(WholeLpRoute):
    """The whole LP by row generation (`lazy.py`).

    Optimal for the whole LP once no row left out is broken.
    """

    name = LAZY
