"""The HiGHS side of lazy grid rows (`routes.lazy`).

Rows are added where an answer breaks them, their bounds moved with every call's fixed
loads, re-solved until none is left broken.
"""

from __future__ import annotations

from typing import Any

import highspy
import numpy as np

from cloud_controller.dispatch.areas.areas import rows_idle
from cloud_controller.dispatch.highs.limit import check_optimal
from cloud_controller.dispatch.model.lp import LpIndex
from cloud_controller.dispatch.model.problem import FloatArray, IntArray, Problem
from cloud_controller.dispatch.model.schedule import DispatchInfeasible, Schedule, Violation
from cloud_controller.dispatch.routes.lazy import GAP_TOL, KIND_NAMES, ROW_SCALE, V_UP, Breach, LazyGrid

INF = highspy.kHighsInf


def run_checked(h: Any) -> None:
    """Re-solve after grid rows were added; once more from scratch if HiGHS gives up from its basis.

    Never silently: still not optimal raises (`DispatchTimeLimit` when out of time).
    """
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kTimeLimit:
        check_optimal(h)  # out of time: a second run from scratch would only be slower
    if status != highspy.HighsModelStatus.kOptimal:
        h.clearSolver()
        h.run()
    check_optimal(h)


class GridRows:
    """The grid rows HiGHS holds of a gridless LP (`LazyGrid` says which and how)."""

    def __init__(self, problem: Problem, h: Any, ix: LpIndex) -> None:
        self.problem = problem
        self.h = h
        self.ix = ix
        self.lazy = LazyGrid(problem, ix)
        self.rounds = 0  # re-solves after adding grid rows, over all calls
        self._fixed_set = False
        self._fixed_kw: FloatArray | None = None  # this call's fixed bus loads

    def apply_fixed(self, fixed_kw: FloatArray | None, rating_kw: FloatArray | None = None) -> None:
        """Set the fixed bus loads and the branch ratings (None: the grid's) of this call.

        The loads' sum goes on the slack bus's balance, and the bounds of every grid row added
        so far move with both.
        """
        lz = self.lazy
        T = self.problem.horizon
        fixed = (
            None
            if fixed_kw is None
            else np.broadcast_to(np.asarray(fixed_kw, float), (T, self.problem.grid.n_bus))
        )
        rating_moved = lz.set_rating(rating_kw)
        was_set = self._fixed_set
        if fixed is not None or was_set:
            total = np.zeros((T, 1)) if fixed is None else fixed.sum(axis=1, keepdims=True)
            i = self.ix.r_bus.ravel()
            v = total.ravel()
            if len(i):
                self.h.changeRowsBounds(len(i), i.astype(np.int32), v, v)
            self._fixed_set = fixed is not None
            lz.set_fixed(fixed)
        if fixed is not None or was_set or rating_moved:
            kind, elem, t, rows, _ = lz.added_arrays()
            if len(rows):
                up = lz.uppers(kind, elem, t)
                self.h.changeRowsBounds(len(rows), rows.astype(np.int32), np.full(len(rows), -INF), up)
        self._fixed_kw = fixed

    def solve(self) -> tuple[Any, FloatArray, FloatArray]:
        """Re-solve, adding the grid rows the answer breaks, until it breaks none.

        None beyond GAP_TOL of the objective in penalty: then it is optimal for the whole LP
        (`lazy.py`). Returns the HiGHS solution and the answer's flows and voltages.
        """
        lz = self.lazy
        g = self.problem.grid
        max_rounds = 4 * self.problem.horizon * (g.n_bus + g.n_branch) + 1
        for _ in range(max_rounds):  # bounded: every round adds at least one row never added before
            sol = self.h.getSolution()
            x = np.asarray(sol.col_value)
            flows, v = lz.flows_and_voltages(lz.bus_loads(x, self._fixed_kw))
            broken = lz.breaches(flows, v)
            if len(broken) == 0 or lz.penalty(broken) <= GAP_TOL * max(1.0, abs(self.h.getObjectiveValue())):
                return sol, flows, v
            self._add(broken)
            self.rounds += 1
            run_checked(self.h)
        raise DispatchInfeasible("lazy grid rows did not converge")  # pragma: no cover (see bound above)

    def _add(self, b: Breach) -> tuple[IntArray, IntArray]:
        """Put grid rows into HiGHS, each with its slack column at the full LP's penalty.

        Returns their row and slack-column positions.
        """
        lz = self.lazy
        n = len(b)
        first_row = int(self.h.getNumRow())
        first_col = int(self.h.getNumCol())
        starts = np.zeros(n, dtype=np.int32)
        idx: list[IntArray] = []
        val: list[FloatArray] = []
        nnz = 0
        for i, (kind, elem, t) in enumerate(
            zip(b.kind.tolist(), b.element.tolist(), b.t.tolist(), strict=True)
        ):
            starts[i] = nnz
            c, v = lz.coefficients(kind, elem, t)
            idx.append(c)
            val.append(v)
            nnz += len(c)
        up = lz.uppers(b.kind, b.element, b.t)
        self.h.addRows(
            n, np.full(n, -INF), up, nnz, starts, np.concatenate(idx).astype(np.int32), np.concatenate(val)
        )
        rows = np.arange(first_row, first_row + n, dtype=np.int64)
        self.h.addCols(
            n,
            lz.penalty_per_unit(b.kind),
            np.zeros(n),
            np.full(n, INF),
            n,
            np.arange(n, dtype=np.int32),
            rows.astype(np.int32),
            np.full(n, -1.0),
        )
        slacks = np.arange(first_col, first_col + n, dtype=np.int64)
        lz.mark_added(b, rows, slacks)
        return rows, slacks

    def add(self, kind: IntArray, element: IntArray, t: IntArray) -> tuple[IntArray, IntArray]:
        """Add these grid rows now (rows already in the LP are skipped).

        Returns their row and slack-column positions.
        """
        new = ~self.lazy.is_added(kind, element, t)
        b = Breach(kind[new], element[new], t[new], np.zeros(int(new.sum())))
        if len(b) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return self._add(b)

    def rows_idle(self, solution: Any, branches: IntArray) -> bool:
        """Whether the added grid rows are each off their bound or have a round-off dual in `solution`.

        Every added voltage row and every added row of `branches` (rows never added have no dual).
        """
        lz = self.lazy
        kind, elem, t, rows, _ = lz.added_arrays()
        pick = (kind >= V_UP) | np.isin(elem, branches)
        if not pick.any():
            return True
        return rows_idle(
            solution, rows[pick], lz.uppers(kind[pick], elem[pick], t[pick]), scale=ROW_SCALE[kind[pick]]
        )

    def report(self, sched: Schedule, x: FloatArray, flows: FloatArray, v: FloatArray) -> Schedule:
        """A schedule read from the gridless LP, reported as the whole LP's would be.

        With the answer's flows and voltages and the added grid rows' slacks.
        """
        sched.branch_flow_kw = flows
        sched.v_pu = v
        kind, elem, t, _, slack = self.lazy.added_arrays()
        g = self.problem.grid
        amount = x[slack] / ROW_SCALE[kind]  # kW, or pu (voltage rows are in 1e-4 pu)
        for i in np.flatnonzero(amount > 1e-6).tolist():
            k = int(kind[i])
            name = g.branch_names[elem[i]] if k < V_UP else str(g.bus_ids[elem[i]])
            sched.violations.append(Violation(KIND_NAMES[k], name, int(t[i]), float(amount[i])))
        return sched
