"""Mend a per-site answer that overloads branches: re-solve only the subtrees below them.

Why: a period in which one LV line or one MV/LV transformer binds otherwise goes to HiGHS
with the whole LP, although only the households below that branch have a reason to change.

How: the per-site answer (`sites.py`, optimal without any grid row) overloads a set of
branches. The subtrees below the overloaded branches that have no overloaded branch above
them get one LP (their sites, their branches, and the paths from the slack bus down to
them, where everyone else's load from the per-site answer sits as fixed load, as an area of
`decompose.py`). HiGHS solves that small LP (kept per set of branches and warm from one
period to the next); everyone else keeps the per-site answer.

Exactness (the argument of `decompose.py`): the sites outside the patched subtrees solve
their part of R (the LP without grid rows) with all grid duals zero; each patched subtree's
LP is optimal for its own sites with duals on its own branches (which only its sites and
the fixed loads on its buses load)
and, checked here, round-off duals on its coupling rows (path branches and voltage bands,
which others load too). If the assembled answer then breaks no grid row of the full LP
(the caller checks, with the exact linear model), these duals satisfy the full LP's KKT
conditions, and the answer is optimal for it. Anything else (an HV/MV threshold or a
voltage band broken, a coupling row that binds, a branch still overloaded): None, and
HiGHS answers the whole LP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from cloud_controller.dispatch.areas.areas import (
    Area,
    areas_joined,
    columns,
    coupling_rows,
    fold_matrix,
    per_entry,
    rows_idle,
    sub_problem,
    sub_rating,
)
from cloud_controller.dispatch.model.problem import (
    FloatArray,
    IntArray,
    Problem,
    StepInputs,
    StorageState,
    branch_rating,
)
from cloud_controller.dispatch.routes.sites import SiteAnswer

MAX_SITES = 400  # larger subtrees cost about what the whole LP costs: leave them to HiGHS
MAX_PATCHES = 64  # subtree LPs kept (one per set of overloaded branches seen)


_PER_SITE = (
    "imp_kw",
    "exp_kw",
    "curt_kw",
    "ch_kw",
    "dis_kw",
    "e_bat_kwh",
    "hp_kw",
    "unmet_kw",
    "q_ch_kw",
    "q_dis_kw",
    "e_ts_kwh",
)


@dataclass
class _Patch:
    """One subtree's LP and the maps between it and the full problem."""

    area: Area
    engine: Any  # DispatchEngine (built by the caller's factory)
    bats: IntArray
    hps: IntArray
    fold: sp.csr_matrix
    coupling_rows: IntArray
    coupling_upper: FloatArray  # at the grid's ratings
    limits: tuple[FloatArray, FloatArray, FloatArray] | None = None  # battery limits it holds
    #: the coupling rows' upper bounds at a call's (T, K_sub) ratings (None: a lazy LP's added rows)
    restate: Callable[[FloatArray], FloatArray] | None = None


class SubtreeRepair:
    """Subtree LPs, built on first need; `mend` patches a per-site answer."""

    def __init__(self, problem: Problem, make_engine: Callable[[Problem], Any]) -> None:
        self.problem = problem
        self._make_engine = make_engine
        g = problem.grid
        self._patches: dict[tuple[int, ...], _Patch] = {}
        self._too_big: set[tuple[int, ...]] = set()  # sets of branches whose subtrees hold too many sites
        branch_of = np.full(g.n_bus, -1, dtype=np.int64)
        branch_of[g.child] = np.arange(g.n_branch)
        self._branch_above = branch_of[g.parent]  # per branch: the branch feeding its parent bus
        self._site_bus = problem.site_bus
        self.mended = 0  # periods answered with patched subtrees, certified (counted by the engine)
        self.refused = 0  # periods where mending did not give a certified answer

    def _patch(self, ks: list[int]) -> _Patch | None:
        """The LP of the subtrees below branches `ks`, built on first need and kept."""
        key = tuple(sorted(ks))
        if key in self._patches:
            return self._patches[key]
        if key in self._too_big:
            return None
        p = self.problem
        area = areas_joined(p.grid, p.site_bus, list(key))
        patch: _Patch | None = None
        if not 0 < len(area.sites) <= MAX_SITES:
            self._too_big.add(key)
        elif len(self._patches) < MAX_PATCHES:
            sub, buses, bats, hps = sub_problem(p, area)
            engine = self._make_engine(sub)
            if engine.lazy_grid:  # coupling rows: whichever path and voltage rows get added
                rows, upper = np.zeros(0, dtype=np.int64), np.zeros(0)
            else:
                rows, upper = coupling_rows(p, sub, engine.ix, area)
            fold = fold_matrix(p.grid, area, buses, np.arange(p.grid.n_bus, dtype=np.int64))
            patch = _Patch(area, engine, bats, hps, fold, rows, upper)
            if not engine.lazy_grid:
                patch.restate = lambda r, sub=sub, ix=engine.ix, a=area: coupling_rows(p, sub, ix, a, r)[1]
            self._patches[key] = patch
        return patch

    def _topmost(self, broken: IntArray) -> list[int]:
        """The overloaded branches with no overloaded branch above them."""
        hit = set(broken.tolist())
        out: list[int] = []
        for k in broken.tolist():
            up = int(self._branch_above[k])
            while up >= 0 and up not in hit:
                up = int(self._branch_above[up])
            if up < 0:
                out.append(k)
        return out

    def mend(
        self,
        inputs: StepInputs,
        state: StorageState,
        ans: SiteAnswer,
        broken: IntArray,
        bat_limits: tuple[FloatArray, FloatArray, FloatArray],
    ) -> SiteAnswer | None:
        """`ans` with the subtrees below the topmost overloaded branches re-solved by one LP.

        Certified on its coupling rows; None where that is not possible. The caller still
        has to check the grid rows of the assembled answer.
        """
        pt = self._patch(self._topmost(broken))
        if pt is None:
            self.refused += 1
            return None
        n_bus = self.problem.grid.n_bus
        others = ans.imp_kw - ans.exp_kw
        others[pt.area.sites] = 0.0
        bus_kw = np.bincount(self._site_bus, weights=others, minlength=n_bus)
        if inputs.bus_fixed_kw is not None:
            bus_kw = bus_kw + np.asarray(inputs.bus_fixed_kw, dtype=float).reshape(-1)
        if pt.limits is not bat_limits:
            pt.engine.set_battery_limits(*(np.asarray(a)[pt.bats] for a in bat_limits))
            pt.limits = bat_limits
        rating = sub_rating(branch_rating(self.problem, inputs), pt.area)
        sch = pt.engine.solve(self._inputs(pt, inputs, pt.fold @ bus_kw, rating), self._state(pt, state))
        if not self._coupling_idle(pt, rating):
            self.refused += 1
            return None
        out = replace(ans, **{f: getattr(ans, f).copy() for f in _PER_SITE})
        out.objective = ans.objective + sch.objective - float(ans.site_cost[pt.area.sites].sum())
        self._write(out, pt, sch)
        return out

    def _inputs(
        self, pt: _Patch, x: StepInputs, fixed_kw: FloatArray, rating_kw: FloatArray | None
    ) -> StepInputs:
        p = self.problem
        sites = pt.area.sites
        base = columns(x.base_kw, 1, p.n_sites, sites)
        assert base is not None
        return StepInputs(
            base_kw=base,
            pv_kw=columns(x.pv_kw, 1, p.n_sites, sites),
            heat_kw=columns(x.heat_kw, 1, p.n_hp, pt.hps),
            cop=x.cop,
            bus_fixed_kw=fixed_kw[None, :],
            c_import=per_entry(x.c_import, 1, sites),
            bat_w_discharge=per_entry(x.bat_w_discharge, 1, pt.bats),
            ts_w_discharge=per_entry(x.ts_w_discharge, 1, pt.hps),
            hp_cap_frac=columns(x.hp_cap_frac, 1, p.n_hp, pt.hps),
            station_limit_kw=None,  # checked on the assembled answer by the caller
            station_feed_limit_kw=None,
            branch_rating_kw=rating_kw,
        )

    @staticmethod
    def _state(pt: _Patch, state: StorageState) -> StorageState:
        return StorageState(
            e_bat_kwh=np.asarray(state.e_bat_kwh)[pt.bats], e_ts_kwh=np.asarray(state.e_ts_kwh)[pt.hps]
        )

    @staticmethod
    def _coupling_idle(pt: _Patch, rating_kw: FloatArray | None = None) -> bool:
        sol = pt.engine.last_solution
        if sol is None:
            return True
        if pt.engine.lazy_grid:  # the path's branches come first in the subtree LP (sub_problem)
            return bool(pt.engine.lazy_rows_idle(np.arange(len(pt.area.path_branches))))
        upper = pt.coupling_upper
        if rating_kw is not None and pt.restate is not None:  # the path branches at this call's ratings
            upper = pt.restate(rating_kw)
        return rows_idle(sol, pt.coupling_rows, upper)

    def _write(self, out: SiteAnswer, pt: _Patch, sch: Any) -> None:
        """The subtree's schedule into the per-site arrays of `out`."""
        p = self.problem
        sites = pt.area.sites
        net = sch.p_site_kw[0]
        out.imp_kw[sites] = np.maximum(net, 0.0)
        out.exp_kw[sites] = np.maximum(-net, 0.0)
        out.curt_kw[sites] = sch.curtail_kw[0]
        bat_sites = p.bat_site[pt.bats]
        out.ch_kw[bat_sites] = sch.p_bat_ch_kw[0]
        out.dis_kw[bat_sites] = sch.p_bat_dis_kw[0]
        out.e_bat_kwh[bat_sites] = sch.e_bat_kwh[0]
        hp_sites = p.hp_site[pt.hps]
        out.hp_kw[hp_sites] = sch.p_hp_kw[0]
        q = sch.q_ts_kw[0]
        out.q_ch_kw[hp_sites] = np.maximum(q, 0.0)
        out.q_dis_kw[hp_sites] = np.maximum(-q, 0.0)
        out.e_ts_kwh[hp_sites] = sch.e_ts_kwh[0]
        unmet = np.zeros(len(pt.hps))
        for v in sch.violations:
            if v.kind == "heat_unmet":
                unmet[int(v.element.split(":")[1])] = v.amount
        out.unmet_kw[hp_sites] = unmet
