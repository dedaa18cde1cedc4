"""A group of areas' engines, wherever they run: in the controller, a worker process or a Dask worker.

Why a class of its own: an area's `DispatchEngine` holds a HiGHS model and its warm basis,
which cannot be pickled, so it has to stay where it was built and be called there every
period. `DecomposedEngine` sends each group only numpy data (`AreaSpec` once, `AreaCall`
every round) and gets numpy data back (`AreaResult`, `AreaStart`); the group answers
everything `DecomposedEngine` used to ask of an area's engine, the certificate's question
about its coupling rows included, next to the engine that holds the duals.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cloud_controller.dispatch.areas.areas import Area, coupling_rows, rows_idle
from cloud_controller.dispatch.engine import DispatchEngine
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
from cloud_controller.dispatch.routes.base import SITE

__all__ = ["AreaCall", "AreaGroup", "AreaLimits", "AreaResult", "AreaSpec", "AreaStart"]


@dataclass(frozen=True)
class AreaSpec:
    """What a group needs to build one area's engine: its index, its area and its problem."""

    index: int
    area: Area
    problem: Problem  # the area's LP problem (`sub_problem`: path + subtree)

    @property
    def size(self) -> int:
        """A proxy of the area's solve cost, to spread areas evenly: its LP's entries per period."""
        p = self.problem
        return p.n_sites + p.n_bat + p.n_hp + p.grid.n_bus


@dataclass(frozen=True)
class AreaCall:
    """One area's part of a round: its inputs and storage state, and its LP's ratings of the call."""

    index: int
    inputs: StepInputs
    state: StorageState
    rating_kw: FloatArray | None  # (T, K_sub) or None: the grid's


@dataclass(frozen=True)
class AreaResult:
    """One area's answer and whether its coupling rows are idle (off their bound or round-off duals)."""

    index: int
    schedule: Schedule
    coupling_idle: bool


@dataclass(frozen=True)
class AreaLimits:
    """One area's battery limits (`DispatchEngine.set_battery_limits`)."""

    index: int
    p_max_kw: FloatArray
    e_min_kwh: FloatArray
    e_max_kwh: FloatArray
    steps: BatterySteps | None


@dataclass(frozen=True)
class AreaStart:
    """One area's optimal basis and its lazily added grid rows: a part of the whole LP's start (join.py)."""

    ix: LpIndex
    col_status: IntArray
    row_status: IntArray
    ts_e_max_kwh: FloatArray  # the area's heat pumps' store sizes (which have a store)
    added: tuple[IntArray, IntArray, IntArray, IntArray, IntArray]  # (kind, element, t, row, slack)


def _start(engine: DispatchEngine) -> AreaStart | None:
    status = engine.basis_status()
    lazy = engine.lazy
    if status is None or lazy is None or engine.ix.r_v_up is None:
        return None
    return AreaStart(engine.ix, status[0], status[1], engine.problem.ts_e_max_kwh, lazy.added_arrays())


class AreaGroup:
    """The engines of some areas; every method takes and returns numpy data only (picklable)."""

    def __init__(self, specs: list[AreaSpec], options: EngineOptions) -> None:
        """Build one engine per area; no mending inside an area (see `DecomposedEngine`)."""
        self._specs = {s.index: s for s in specs}
        self._engines = {s.index: DispatchEngine(s.problem, replace(options, mend=False)) for s in specs}
        self._coupling: dict[int, tuple[IntArray, FloatArray]] = {}
        for s in specs:
            eng = self._engines[s.index]
            if not eng.lazy_grid:  # lazy_grid: the coupling rows are whichever grid rows get added
                self._coupling[s.index] = coupling_rows(s.problem, s.problem, eng.ix, s.area)

    @property
    def indices(self) -> list[int]:
        """The areas this group holds."""
        return list(self._engines)

    def engine(self, index: int) -> DispatchEngine:
        """Area `index`'s engine (only where the group runs in the caller's process)."""
        return self._engines[index]

    def solve(self, calls: list[AreaCall]) -> list[AreaResult]:
        """Solve each call's area, in the order given, and check its coupling rows."""
        return [self.solve_one(c) for c in calls]

    def solve_one(self, call: AreaCall) -> AreaResult:
        """Solve one area and check its coupling rows at the call's ratings."""
        sched = self._engines[call.index].solve(call.inputs, call.state)
        return AreaResult(call.index, sched, self._coupling_idle(call.index, call.rating_kw))

    def _coupling_idle(self, index: int, rating_kw: FloatArray | None) -> bool:
        eng = self._engines[index]
        spec = self._specs[index]
        last = eng.last_answer
        if last is not None and last.route == SITE:
            # answered site by site with no grid row broken: optimal without any of the
            # area's grid rows, so every one of their duals is zero
            return True
        sol = eng.last_solution
        if sol is None:
            return False  # an answer without duals that is not purely site by site
        if eng.lazy_grid:  # path branches are the first of the area's LP (sub_problem's order)
            return eng.lazy_rows_idle(np.arange(len(spec.area.path_branches)))
        rows, upper = self._coupling[index]
        if rating_kw is not None:
            upper = coupling_rows(spec.problem, spec.problem, eng.ix, spec.area, rating_kw)[1]
        return rows_idle(sol, rows, upper)

    def set_battery_limits(self, limits: list[AreaLimits]) -> None:
        """Set each listed area's battery limits."""
        for lim in limits:
            self._engines[lim.index].set_battery_limits(lim.p_max_kw, lim.e_min_kwh, lim.e_max_kwh, lim.steps)

    def shift_basis(self, k: int) -> dict[int, bool]:
        """Shift every area's basis `k` periods on; per area whether the shift took."""
        return {i: eng.shift_basis(k) for i, eng in self._engines.items()}

    def starts(self) -> dict[int, AreaStart | None]:
        """Each area's basis and added rows (None: no basis, e.g. answered site by site)."""
        return {i: _start(eng) for i, eng in self._engines.items()}

    def lazy_rows(self) -> int:
        """How many grid rows the group's LPs have added lazily."""
        return sum(len(eng.lazy.rows.row) for eng in self._engines.values() if eng.lazy is not None)

    def mended(self) -> int:
        """How many answers the group's engines mended (0: mending is off in areas)."""
        return sum(eng.mended for eng in self._engines.values())
