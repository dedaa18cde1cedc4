"""The dispatch engine: build once per scenario, call every control period, routes in a stated order.

A call goes down the route chain (`routes.chain`) until one answers: site by site (no grid
row binds), a priced HV/MV threshold, mended subtrees (those three with `by_site`), then
HiGHS warm on the LP (`highs.session`; with `lazy_grid` the LP without the grid rows it
does not need). Each answer says which route gave it and whether it is certified optimal
for the whole LP of that call.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cloud_controller.dispatch.highs.session import BatteryLimits, LpSession
from cloud_controller.dispatch.model.lp import LpIndex
from cloud_controller.dispatch.model.problem import (
    BatterySteps,
    FloatArray,
    IntArray,
    Problem,
    StepInputs,
    StorageState,
)
from cloud_controller.dispatch.model.schedule import Schedule
from cloud_controller.dispatch.options import EngineOptions
from cloud_controller.dispatch.routes.base import HIGHS_ROUTES, Answer, Route
from cloud_controller.dispatch.routes.chain import (
    LazyGridRoute,
    MendRoute,
    SiteRoute,
    ThresholdRoute,
    WholeLpRoute,
)
from cloud_controller.dispatch.routes.lazy import LazyGrid
from cloud_controller.dispatch.routes.repair import SubtreeRepair
from cloud_controller.dispatch.routes.site_inputs import SiteInputs
from cloud_controller.dispatch.routes.sites import SiteSolver


class DispatchEngine:
    """One problem's routes; `answer` (or `solve`, its schedule) every control period, warm."""

    def __init__(self, problem: Problem, options: EngineOptions | None = None) -> None:
        self.problem = problem
        self.options = options = options or EngineOptions()
        self._lazy_on = options.lazy_for(problem)
        self._bat_limits: BatteryLimits = (problem.bat_p_max_kw, problem.bat_e_min_kwh, problem.bat_e_max_kwh)
        self._bat_steps: BatterySteps | None = None
        self._session: LpSession | None = None
        self.last_answer: Answer | None = None
        self.sites: SiteSolver | None = None
        self._site_inputs: SiteInputs | None = None
        self._threshold: ThresholdRoute | None = None
        self._mend: MendRoute | None = None
        routes: list[Route] = []
        if options.by_site and SiteSolver.why_not(problem) is None:
            self.sites = SiteSolver(problem)
            self._site_inputs = SiteInputs(problem, self._bat_limits)
            site = SiteRoute(self.sites, self._site_inputs, keep_broken=options.mend)
            routes.append(site)
            if options.mend:
                # the subtree LPs: HiGHS only, numpy-built, with the step's exact COP (as the
                # per-site answer around them has); `lazy_grid` decides by their grid
                sub_options = dataclasses.replace(
                    options, builder="numpy", cop_rtol=0.0, by_site=False, lazy_grid=None
                )
                self._threshold = ThresholdRoute(site)
                self._mend = MendRoute(site, problem, lambda sub: DispatchEngine(sub, sub_options))
                routes += [self._threshold, self._mend]
        routes.append(LazyGridRoute(self._lp) if self._lazy_on else WholeLpRoute(self._lp))
        self.routes: tuple[Route, ...] = tuple(routes)
        if self.sites is None:
            self._lp()  # HiGHS gets the LP now; with by_site on first need

    def _lp(self) -> LpSession:
        if self._session is None:
            self._session = LpSession(self.problem, self.options, self._bat_limits)
            if self._bat_steps is not None:
                self._session.set_battery_limits(self._bat_limits, self._bat_steps)
        return self._session

    # -- answering ------------------------------------------------------------------------
    def answer(self, inputs: StepInputs, state: StorageState) -> Answer:
        """The first route's answer that does not pass (the last route always answers)."""
        for route in self.routes:
            got = route.answer(inputs, state)
            if got is not None:
                self.last_answer = got
                return got
        raise AssertionError("the last route always answers")  # pragma: no cover

    def solve(self, inputs: StepInputs, state: StorageState) -> Schedule:
        """`answer(...).schedule`."""
        return self.answer(inputs, state).schedule

    # -- control --------------------------------------------------------------------------
    def set_battery_limits(
        self,
        p_max_kw: FloatArray,
        e_min_kwh: FloatArray,
        e_max_kwh: FloatArray,
        steps: BatterySteps | None = None,
    ) -> None:
        """Per battery, for every period until changed again: power range and energy window.

        `steps` tightens them per period (the LP routes only: the per-site route answers
        single periods from per-battery limits, so an engine with it refuses them).
        """
        if steps is not None and self.sites is not None:
            raise ValueError("per-period battery bounds need the LP routes (by_site=False)")
        p_max, e_min, e_max = (np.asarray(a, float).copy() for a in (p_max_kw, e_min_kwh, e_max_kwh))
        self._bat_limits = (p_max, e_min, e_max)
        self._bat_steps = steps
        if self._site_inputs is not None:
            self._site_inputs.set_battery_limits(self._bat_limits)
        if self._session is not None:
            self._session.set_battery_limits(self._bat_limits, steps)

    def shift_basis(self, k: int) -> bool:
        """Before re-solving a window that starts `k` periods later, move the basis with it.

        Why: the last optimal basis of a multi-period plan is indexed by period; the next
        window's period t is the old window's period t + k, so its basis is what HiGHS
        should start from (the new tail repeats the old last period). The count of basic
        variables may change, so the basis goes in as "alien" and HiGHS completes it.
        Returns False (nothing changed) when there is no basis to shift.

        Use it for large moves (the study's MPC re-plans every 6 h of a 24 h window, where it
        about halves the iterations). For a one-period move the unshifted basis is the better
        start: completing an alien basis costs more than the few pivots a one-period shift
        saves (docs/benchmarks.md).
        """
        return self._session is not None and self._session.shift_basis(k)

    def start_from(self, col_status: IntArray, row_status: IntArray) -> bool:
        """Start the next HiGHS solve from these statuses instead of presolving or crashing.

        Used by `DecomposedEngine` with the areas' joined bases (`joined_basis.py`).
        """
        return self._lp().start_from(col_status, row_status)

    def basis_status(self) -> tuple[IntArray, IntArray] | None:
        """HiGHS's current column and row statuses (None before any HiGHS solve)."""
        return None if self._session is None else self._session.basis_status()

    def add_grid_rows(self, kind: IntArray, element: IntArray, t: IntArray) -> tuple[IntArray, IntArray]:
        """With `lazy_grid`: add these grid rows now, before they are found broken.

        Kinds as in `lazy.py`. Returns their row and slack-column positions (`DecomposedEngine`
        passes the rows its areas needed to the whole LP).
        """
        rows = self._lp().grid_rows
        assert rows is not None, "add_grid_rows needs lazy_grid=True"
        return rows.add(kind, element, t)

    def lazy_rows_idle(self, branches: IntArray) -> bool:
        """With `lazy_grid`: whether the added grid rows are each off their bound or have a round-off dual.

        Every added voltage row and every added row of `branches`, in the last solution (what
        `DecomposedEngine`'s certificate asks of an area's coupling rows).
        """
        rows = self._lp().grid_rows
        assert rows is not None and self.last_solution is not None
        return rows.rows_idle(self.last_solution, branches)

    # -- what it holds and counted --------------------------------------------------------
    @property
    def lp_built(self) -> bool:
        """HiGHS holds the LP (with `by_site` only once a period needed it)."""
        return self._session is not None

    @property
    def h(self) -> Any:
        """The HiGHS instance holding the LP (built on first access)."""
        return self._lp().h

    @property
    def ix(self) -> LpIndex:
        """Where every variable and row family sits in the HiGHS LP (built on first access)."""
        return self._lp().ix

    @property
    def n_cols(self) -> int:
        """Number of columns of the LP index."""
        return self.ix.n_cols

    @property
    def n_rows(self) -> int:
        """Number of rows of the LP index."""
        return self.ix.n_rows

    @property
    def lazy_grid(self) -> bool:
        """HiGHS holds the LP without its grid rows and adds them where broken (`lazy.py`)."""
        return self._lazy_on

    @property
    def lazy(self) -> LazyGrid | None:
        """The grid rows added on demand (lazy_grid; None before HiGHS holds the LP)."""
        rows = None if self._session is None else self._session.grid_rows
        return None if rows is None else rows.lazy

    @property
    def lazy_rounds(self) -> int:
        """Re-solves after adding grid rows, over all calls."""
        rows = None if self._session is None else self._session.grid_rows
        return 0 if rows is None else rows.rounds

    @property
    def last_solution(self) -> Any:
        """HiGHS's solution (row duals) of the last call, if HiGHS answered it."""
        a = self.last_answer
        if a is None or a.route not in HIGHS_ROUTES or self._session is None:
            return None
        return self._session.last_solution

    @property
    def time_limit_hits(self) -> int:
        """HiGHS solves that ended at `EngineOptions.time_limit_s` (each raised `DispatchTimeLimit`)."""
        return 0 if self._session is None else self._session.time_limit_hits

    @property
    def crash_used(self) -> bool:
        """The first HiGHS solve started from the crash basis (`highs.crash`)."""
        return self._session is not None and self._session.crash_used

    @property
    def priced(self) -> int:
        """Periods answered site by site with a price on an HV/MV threshold."""
        return 0 if self._threshold is None else self._threshold.priced

    @property
    def mended(self) -> int:
        """Periods answered by re-solving only the subtrees below overloaded branches."""
        return 0 if self._mend is None else self._mend.mended

    @property
    def repair(self) -> SubtreeRepair | None:
        """The subtree LPs of the mend route (None until a per-site answer first overloads)."""
        return None if self._mend is None else self._mend.repair
