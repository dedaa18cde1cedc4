"""The HiGHS session: the LP handed to HiGHS once; each call changes bounds/costs and re-solves warm.

Why directly and not through pyomo: pyomo's persistent interface with mutable parameters
costs several milliseconds per step in Python-side updates, while changing HiGHS column/row
bounds and costs directly keeps the basis and costs a fraction of that (docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import highspy
import numpy as np

from cloud_controller.dispatch.highs import basis
from cloud_controller.dispatch.highs.crash import BASIC, LOWER, basis_for, set_basis
from cloud_controller.dispatch.highs.grid_rows import GridRows
from cloud_controller.dispatch.highs.limit import DispatchTimeLimit, check_optimal, set_time_limit
from cloud_controller.dispatch.highs.quiet import quiet_highs
from cloud_controller.dispatch.highs.read import ScheduleReader
from cloud_controller.dispatch.highs.threads import process_threads
from cloud_controller.dispatch.model.lp import LpIndex, build_lp
from cloud_controller.dispatch.model.problem import (
    BatterySteps,
    FloatArray,
    IntArray,
    Problem,
    StepInputs,
    StorageState,
    branch_rating,
)
from cloud_controller.dispatch.model.pyomo_model import pyomo_lp
from cloud_controller.dispatch.model.schedule import Schedule
from cloud_controller.dispatch.options import EngineOptions
from cloud_controller.dispatch.routes.lazy import gridless

INF = highspy.kHighsInf
BatteryLimits = tuple[FloatArray, FloatArray, FloatArray]  # per battery: p_max_kw, e_min_kwh, e_max_kwh


def _i32(*parts: IntArray) -> IntArray:
    return np.concatenate([np.asarray(a).ravel() for a in parts]).astype(np.int32)


class LpSession:
    """HiGHS holding one problem's LP (gridless with `lazy_grid`, grid rows in `grid_rows`)."""

    def __init__(self, problem: Problem, options: EngineOptions, battery_limits: BatteryLimits) -> None:
        self.problem = problem
        self.cop_rtol = options.cop_rtol
        presolve_first = options.presolve_first
        self.h: Any = quiet_highs()  # no banner on stdout; output_flag off
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("threads", process_threads(options.threads))
        set_time_limit(self.h, options.time_limit_s)  # every run() bounded (limit.py)
        self.time_limit_hits = 0  # solves that ended at the time limit, over all calls
        # Presolve would discard the previous basis: keep it off so every re-solve is warm
        # (`presolve_first`: only the first solve presolves).
        self._presolve_first = presolve_first
        self.h.setOptionValue("presolve", "on" if presolve_first else "off")
        # `cold_solver="ipm"`: the first solve by interior point + crossover
        self._cold_solver = options.cold_solver
        if options.cold_solver == "ipm":
            self.h.setOptionValue("solver", "ipm")
        # with lazy_grid the LP is the problem without its grid; rows come in `grid_rows`
        lazy_on = options.lazy_for(problem)
        self._lp_problem = lp_problem = gridless(problem) if lazy_on else problem
        ix = pyomo_lp(lp_problem, self.h) if options.builder == "pyomo" else build_lp(lp_problem, self.h)
        self.ix: LpIndex = ix
        self.grid_rows = GridRows(problem, self.h, ix) if lazy_on else None
        # A start basis from the first inputs (crash.py) instead of the all-slack one;
        # needs the numpy builder's full index and is pointless when presolve runs first.
        # Single-period problems only: that is where the cold time is the whole answer
        # (an MPC's first solve is dominated by the planning itself; the planner presolves).
        self._crash = options.crash and ix.r_vdrop is not None and not presolve_first and problem.horizon == 1
        self.crash_used = False
        if self._crash:
            # Devex pricing: with an advanced start basis, HiGHS's default (dual steepest
            # edge) first computes exact weights, one BTRAN per row, which costs more than
            # the start saves; warm re-solves are equal. Switching back later would
            # recompute the weights, so it stays.
            self.h.setOptionValue("simplex_dual_edge_weight_strategy", 1)
        self.last_solution: Any = None  # row duals for callers that certify the result
        self.cop_exact = True  # the last call's LP held the step's own COP (see cop_rtol)
        self.reader = ScheduleReader(problem, lp_problem, ix)
        self._hs = self.reader.hs
        p = problem
        T = p.horizon
        self._cop = np.full(T, np.nan)
        self._bus_fixed_set = False
        # branch ratings of the last call that gave them (None: the grid's, as built)
        self._last_rating: FloatArray | None = None
        self._static_rating = np.broadcast_to(p.grid.rating_kw[None, :], (T, p.grid.n_branch))
        w = p.weights
        # Rows set on every call, in one changeRowsBounds: site and heat balances, storage
        # at t = 0, HV/MV limits. Columns likewise (PV curtailment range, heat-pump cap) and
        # costs (import, discharge) — the last two only when they differ from the last call.
        self._rows_every = _i32(ix.r_site, ix.r_heat, ix.r_bat[:1], ix.r_ts[:1], ix.r_st, ix.r_stf)
        self._curt_at = ix.c_curt.ravel() >= 0  # sites without PV have no curtailment column
        self._cols_every = _i32(ix.c_curt.ravel()[self._curt_at], ix.c_hp)
        self._cost_cols = _i32(ix.c_imp, ix.c_dis, ix.c_qdis)
        self._last_bounds: tuple[FloatArray, FloatArray] | None = None
        self._last_rows: tuple[FloatArray, FloatArray] | None = None
        self._last_cost_key: tuple[bytes | None, ...] | None = None
        self._zeros_curt = np.zeros(int(self._curt_at.sum()))
        self._zeros_hp = np.zeros(ix.c_hp.size)
        self._hp_max = np.broadcast_to(p.hp_p_max_kw[None, :], (T, p.n_hp))
        self._neg_inf_t = np.full(T, -INF)
        self._base_imp_cost = np.full((T, p.n_sites), w.c_import * p.dt_h)
        self._thr = w.c_throughput
        self._base_dis_cost = np.full(
            (T, p.n_bat), (w.bat_w_discharge / p.bat_eta_d + w.c_throughput) * p.dt_h
        )
        self._base_qdis_cost = np.full((T, len(self._hs)), (w.ts_w_discharge + w.c_throughput) * p.dt_h)
        self._bat_limits = battery_limits
        if battery_limits[0] is not problem.bat_p_max_kw:  # limits set before the LP existed
            self.set_battery_limits(battery_limits)

    @property
    def n_cols(self) -> int:
        """Number of columns of the LP index."""
        return self.ix.n_cols

    @property
    def n_rows(self) -> int:
        """Number of rows of the LP index."""
        return self.ix.n_rows

    # -- per-call updates -------------------------------------------------------------
    def _rows_eq(self, idx: IntArray, vals: FloatArray) -> None:
        i = idx.ravel()
        v = np.asarray(vals, dtype=float).ravel()
        if len(i):
            self.h.changeRowsBounds(len(i), i.astype(np.int32), v, v)

    def _cols_bounds(self, idx: IntArray, lo: FloatArray, hi: FloatArray) -> None:
        i = idx.ravel()
        if len(i):
            self.h.changeColsBounds(
                len(i), i.astype(np.int32), np.asarray(lo, float).ravel(), np.asarray(hi, float).ravel()
            )

    def set_battery_limits(self, limits: BatteryLimits, steps: BatterySteps | None = None) -> None:
        """Per battery, for every period until changed again: power range and energy window.

        `steps` tightens them per period: charge at most, discharge at least and at most,
        energy at least (never above the window's top).
        """
        self._bat_limits = limits
        ix = self.ix
        T = self.problem.horizon
        p_max_kw, e_min_kwh, e_max_kwh = limits
        hi = np.broadcast_to(p_max_kw[None, :], ix.c_ch.shape)
        lo_e = np.broadcast_to(e_min_kwh[None, :], (T, len(e_min_kwh)))
        hi_e = np.broadcast_to(e_max_kwh[None, :], (T, len(e_max_kwh)))
        ch_hi, dis_lo, dis_hi = hi, np.zeros(ix.c_dis.shape), hi
        if steps is not None:
            ch_hi = np.minimum(hi, steps.ch_max_kw)
            dis_lo = np.minimum(hi, steps.dis_min_kw)
            dis_hi = np.maximum(dis_lo, np.minimum(hi, steps.dis_max_kw))
            lo_e = np.minimum(np.maximum(lo_e, steps.e_min_kwh), hi_e)
        self._cols_bounds(ix.c_ch, np.zeros(ix.c_ch.shape), ch_hi)
        self._cols_bounds(ix.c_dis, dis_lo, dis_hi)
        self._cols_bounds(ix.c_ebat, lo_e, hi_e)

    def _set_cop(self, cop_in: FloatArray | None) -> None:
        """Heat-pump COP as matrix coefficients, changed only where it moved (see cop_rtol)."""
        p = self.problem
        T = p.horizon
        if T == 1 and not np.isnan(self._cop[0]):  # the per-step loop: plain floats, no arrays
            new = 3.0 if cop_in is None else float(np.asarray(cop_in, float).reshape(-1)[0])
            held = float(self._cop[0])
            if new == held:
                self.cop_exact = True
                return
            if self.cop_rtol > 0 and abs(new - held) <= self.cop_rtol * abs(held):
                self.cop_exact = False
                return
        wanted = np.full(T, 3.0) if cop_in is None else np.asarray(cop_in, float)
        cop = wanted
        if self.cop_rtol > 0 and not np.isnan(self._cop[0]):
            # keep the held coefficient where the COP moved by less than cop_rtol
            cop = np.where(np.abs(wanted - self._cop) > self.cop_rtol * np.abs(self._cop), wanted, self._cop)
            self.cop_exact = bool(np.all(cop == wanted))
        else:
            self.cop_exact = True
        r_heat, c_hp = self.ix.r_heat, self.ix.c_hp
        changed = np.flatnonzero(cop != self._cop)  # all of them on the first call (NaN)
        if len(changed) == 0:
            return
        for t in changed.tolist():
            value = float(cop[t])
            for r, c in zip(r_heat[t].tolist(), c_hp[t].tolist(), strict=True):
                self.h.changeCoeff(r, c, value)
        self._cop = cop.copy()

    def _set_branch_rows(self, rating: FloatArray | None) -> None:
        """The branch rows' bounds at this call's ratings (or back at the grid's), where they moved."""
        if rating is None and self._last_rating is None:
            return
        up, dn = self.ix.r_branch_up, self.ix.r_branch_dn
        if up is None or dn is None:
            raise ValueError("branch_rating_kw needs the numpy LP builder (EngineOptions(builder='numpy'))")
        g = self.problem.grid
        new = np.broadcast_to(g.rating_kw[None, :], up.shape) if rating is None else rating
        have = up >= 0
        moved = have & (new != (self._static_rating if self._last_rating is None else self._last_rating))
        self._last_rating = None if rating is None else np.array(rating, copy=True)
        if not moved.any():
            return
        rows = np.concatenate([up[moved], dn[moved]]).astype(np.int32)
        hi = np.where(np.isfinite(new[moved]), new[moved], INF)
        hi2 = np.concatenate([hi, hi])
        self.h.changeRowsBounds(len(rows), rows, np.full(len(rows), -INF), hi2)

    def apply(self, x: StepInputs, state: StorageState) -> None:
        """Set one call's inputs and storage state in HiGHS: COPs, row bounds, column bounds and costs."""
        p = self.problem
        ix = self.ix
        T = p.horizon
        dt = p.dt_h
        if p.n_hp:
            self._set_cop(x.cop)
        # -- row bounds (one call) --
        base = np.broadcast_to(np.asarray(x.base_kw, float), (T, p.n_sites)).ravel()
        heat = np.zeros(T * p.n_hp) if x.heat_kw is None else np.asarray(x.heat_kw, float).ravel()
        e_bat = np.asarray(state.e_bat_kwh, float).ravel()
        e_ts = (1.0 - p.ts_loss_per_step) * np.asarray(state.e_ts_kwh, float)[self._hs]
        lim = (
            np.full(T, INF)
            if x.station_limit_kw is None
            else np.where(np.isfinite(x.station_limit_kw), x.station_limit_kw, INF)
        )
        flim = (
            np.full(T, INF)
            if x.station_feed_limit_kw is None
            else np.where(np.isfinite(x.station_feed_limit_kw), x.station_feed_limit_kw, INF)
        )
        eq = np.concatenate((base, heat, e_bat, e_ts))
        lo = np.concatenate((eq, self._neg_inf_t, self._neg_inf_t))
        hi = np.concatenate((eq, np.asarray(lim, float).ravel(), np.asarray(flim, float).ravel()))
        # Only the rows whose bounds moved: HiGHS updates its simplex data row by row, and
        # most stores and many heat rows are unchanged from one step to the next.
        if self._last_rows is None:
            self.h.changeRowsBounds(len(self._rows_every), self._rows_every, lo, hi)
        else:
            moved = np.flatnonzero((lo != self._last_rows[0]) | (hi != self._last_rows[1]))
            if len(moved):
                self.h.changeRowsBounds(len(moved), self._rows_every[moved], lo[moved], hi[moved])
        self._last_rows = (lo, hi)
        rating = branch_rating(p, x)
        if self.grid_rows is not None:  # the gridless LP: both move its grid rows' bounds
            self.grid_rows.apply_fixed(x.bus_fixed_kw, rating)
        else:
            self._set_branch_rows(rating)
            if x.bus_fixed_kw is not None:
                self._rows_eq(ix.r_bus, x.bus_fixed_kw)
                self._bus_fixed_set = True
            elif self._bus_fixed_set:
                self._rows_eq(ix.r_bus, np.zeros((T, p.grid.n_bus)))
                self._bus_fixed_set = False
        # -- column bounds (one call, only when changed) --
        pv = (
            self._zeros_curt
            if x.pv_kw is None
            else np.maximum(np.broadcast_to(np.asarray(x.pv_kw, float), (T, p.n_sites)), 0.0).ravel()[
                self._curt_at
            ]
        )
        cap = self._hp_max if x.hp_cap_frac is None else np.asarray(x.hp_cap_frac) * self._hp_max
        col_hi = np.concatenate((pv, np.asarray(cap, float).ravel()))
        if self._last_bounds is None or not np.array_equal(col_hi, self._last_bounds[1]):
            col_lo = np.concatenate((self._zeros_curt, self._zeros_hp))
            self.h.changeColsBounds(len(self._cols_every), self._cols_every, col_lo, col_hi)
            self._last_bounds = (col_lo, col_hi)
        if p.n_units and (x.unit_p_min_kw is not None or x.unit_p_max_kw is not None):
            u_lo = np.broadcast_to(
                p.unit_p_min_kw if x.unit_p_min_kw is None else x.unit_p_min_kw, (T, p.n_units)
            )
            u_hi = np.broadcast_to(
                p.unit_p_max_kw if x.unit_p_max_kw is None else x.unit_p_max_kw, (T, p.n_units)
            )
            self._cols_bounds(ix.c_u, u_lo, u_hi)
        # -- costs (one call, only when changed; the study repeats the same values for hours) --
        key = tuple(
            None if v is None else np.asarray(v, float).tobytes()
            for v in (x.c_import, x.bat_w_discharge, x.ts_w_discharge)
        )
        if key == self._last_cost_key:
            return
        self._last_cost_key = key
        imp = (
            self._base_imp_cost
            if x.c_import is None
            else np.broadcast_to(np.asarray(x.c_import, float).reshape(T, -1) * dt, (T, p.n_sites))
        )
        dis = (
            self._base_dis_cost
            if x.bat_w_discharge is None
            else np.broadcast_to(
                (np.asarray(x.bat_w_discharge, float).reshape(T, -1) / p.bat_eta_d + self._thr) * dt,
                (T, p.n_bat),
            )
        )
        qd = self._base_qdis_cost
        if x.ts_w_discharge is not None and len(self._hs):
            arr = np.broadcast_to(np.asarray(x.ts_w_discharge, float).reshape(T, -1), (T, p.n_hp))
            qd = (arr[:, self._hs] + self._thr) * dt
        cost = np.concatenate((imp.ravel(), dis.ravel(), qd.ravel()))
        self.h.changeColsCost(len(self._cost_cols), self._cost_cols, cost)

    def solve(self, inputs: StepInputs, state: StorageState) -> Schedule:
        """Apply the inputs, re-solve from the previous basis, and read the schedule."""
        self.apply(inputs, state)
        if self._crash:
            self._crash = False
            lp_problem, start_inputs = self.problem, inputs
            if self.grid_rows is not None:  # the gridless LP: every fixed load on the slack bus
                lp_problem = self._lp_problem
                start_inputs = dataclasses.replace(inputs, branch_rating_kw=None)  # it has no branches
                if inputs.bus_fixed_kw is not None:
                    total = np.asarray(inputs.bus_fixed_kw, float).sum(axis=-1, keepdims=True)
                    start_inputs = dataclasses.replace(start_inputs, bus_fixed_kw=total)
            col, row = basis_for(lp_problem, self.ix, start_inputs, state)
            self.crash_used = set_basis(self.h, col, row)
        self.h.run()
        self._warm_from_now()
        try:
            check_optimal(self.h)
            if self.grid_rows is None:
                sol = self.h.getSolution()
                self.last_solution = sol
                return self.reader.read(np.asarray(sol.col_value), float(self.h.getObjectiveValue()))
            sol, flows, v = self.grid_rows.solve()
        except DispatchTimeLimit:
            self.time_limit_hits += 1
            raise
        self.last_solution = sol
        x = np.asarray(sol.col_value)
        sched = self.reader.read(x[: self.ix.n_cols], float(self.h.getObjectiveValue()))
        return self.grid_rows.report(sched, x, flows, v)

    def _warm_from_now(self) -> None:
        """After the first solve (or a given start): no presolve, no interior point."""
        if self._presolve_first:  # presolve would throw the basis away
            self._presolve_first = False
            self.h.setOptionValue("presolve", "off")
        if self._cold_solver != "simplex":  # and so would interior point
            self._cold_solver = "simplex"
            self.h.setOptionValue("solver", "simplex")

    # -- basis --------------------------------------------------------------------------
    def basis_status(self) -> tuple[IntArray, IntArray] | None:
        """HiGHS's current column and row statuses (None before any solve)."""
        return basis.basis_status(self.h)

    def start_from(self, col_status: IntArray, row_status: IntArray) -> bool:
        """Start the next solve from these statuses instead of presolving or crashing.

        As an "alien" basis, completed by HiGHS. Columns and rows beyond the statuses given (grid
        rows added lazily) start nonbasic and basic. False (nothing changed) if refused.
        """
        n_col, n_row = int(self.h.getNumCol()), int(self.h.getNumRow())
        col = np.full(n_col, LOWER, dtype=np.int64)
        row = np.full(n_row, BASIC, dtype=np.int64)
        col[: len(col_status)] = col_status[:n_col]
        row[: len(row_status)] = row_status[:n_row]
        if not basis.set_alien_basis(self.h, col, row):
            return False
        self._crash = False
        self._warm_from_now()
        return True

    def shift_basis(self, k: int) -> bool:
        """Move the basis `k` periods on with the window (`DispatchEngine.shift_basis`)."""
        T = self.problem.horizon
        if not 0 < k < T or self.ix.r_vdrop is None:
            return False
        # every column and row HiGHS holds (with lazy_grid also the grid rows added since the
        # build: they keep their status, the alien basis lets HiGHS complete the rest)
        status = self.basis_status()
        if status is None:
            return False
        return basis.set_alien_basis(self.h, *basis.shifted(self.ix, T, *status, k))
