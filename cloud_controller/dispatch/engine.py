"""Hot loop: the LP is handed to HiGHS once; each call changes bounds/costs and re-solves warm.

The LP is the one `model.py` states in pyomo, built by `lp.py` with numpy (or, with
`builder="pyomo"`, through pyomo itself). Measured on the 2-core machine (319 households):
pyomo's persistent interface with mutable parameters costs ~7.5 ms/step in Python-side
updates, while changing HiGHS column/row bounds and costs directly and keeping the basis
costs 0.6 ms/step in the study (docs/dispatch.md has this module's own figures).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import highspy
import numpy as np

from cloud_controller.dispatch.areas import rows_idle
from cloud_controller.dispatch.crash import BASIC, BASIS_STATUS, LOWER, basis_for, set_basis
from cloud_controller.dispatch.lazy import GAP_TOL, KIND_NAMES, ROW_SCALE, V_UP, Breach, LazyGrid, gridless
from cloud_controller.dispatch.lp import LpIndex, build_lp
from cloud_controller.dispatch.model import pyomo_lp
from cloud_controller.dispatch.problem import FloatArray, IntArray, Problem, StepInputs, StorageState
from cloud_controller.dispatch.repair import SubtreeRepair
from cloud_controller.dispatch.sites import SiteAnswer, SiteSolver, StepData
from protocols.errors import GridflexError

INF = highspy.kHighsInf


class DispatchInfeasible(GridflexError):
    """HiGHS found no optimum although every limit is soft: a modelling bug, never silent."""


@dataclass(frozen=True)
class Violation:
    """A soft limit that had to be relaxed: which, where, when (period) and by how much."""

    kind: (
        str  # station_load | station_feed | branch | voltage_high | voltage_low | heat_unmet | shed | curtail
    )
    element: str
    t: int
    amount: float  # kW, or pu for voltage


@dataclass
class Schedule:
    """Result of one solve over the horizon; arrays are (T, n). Load-positive signs."""

    p_site_kw: FloatArray
    p_bat_kw: FloatArray
    p_bat_ch_kw: FloatArray
    p_bat_dis_kw: FloatArray
    e_bat_kwh: FloatArray
    p_hp_kw: FloatArray
    q_ts_kw: FloatArray  # thermal store net charge (kW thermal), per heat pump
    e_ts_kwh: FloatArray
    curtail_kw: FloatArray
    p_unit_kw: FloatArray
    p_root_kw: FloatArray  # (T,) HV/MV (slack) import
    branch_flow_kw: FloatArray
    v_pu: FloatArray
    objective: float
    violations: list[Violation] = field(default_factory=list)

    def next_state(self) -> StorageState:
        """Storage state after the first period (what a rolling horizon carries forward)."""
        return StorageState(e_bat_kwh=self.e_bat_kwh[0].copy(), e_ts_kwh=self.e_ts_kwh[0].copy())


_THREADS_IN_USE: list[int] = []  # HiGHS's thread count in this process, once an LP is built


def _process_threads(wanted: int) -> int:
    """The thread count to give HiGHS: the first engine's, for every engine of the process.

    Why: HiGHS starts one global scheduler per process with the first instance's thread
    count, and a later instance asking for another count fails to run ("Not Set"; found by
    a review with a 1-thread and a 2-thread engine in one process). The count only changes
    HiGHS's internal parallelism, so later engines take the first count and say so."""
    if not _THREADS_IN_USE:
        _THREADS_IN_USE.append(wanted)
    elif wanted != _THREADS_IN_USE[0]:
        warnings.warn(
            f"HiGHS already runs with {_THREADS_IN_USE[0]} thread(s) in this process; "
            f"this engine uses that instead of {wanted}",
            RuntimeWarning,
            stacklevel=3,
        )
    return _THREADS_IN_USE[0]


def _limit(value: FloatArray | None) -> float:
    """A single period's HV/MV threshold as a float (inf when off or not a number)."""
    if value is None:
        return float("inf")
    v = float(np.asarray(value, float).reshape(-1)[0])
    return v if not np.isnan(v) else float("inf")


def _i32(*parts: IntArray) -> IntArray:
    return np.concatenate([np.asarray(a).ravel() for a in parts]).astype(np.int32)


class DispatchEngine:
    """Build once per scenario, call `solve` every control period (warm-started).

    `builder="numpy"` (default) assembles the LP with `lp.build_lp` and passes it to HiGHS
    in one call; `builder="pyomo"` writes `model.py`'s pyomo model and reads it (the same LP,
    checked by tests; slower to build: 0.85 s instead of milliseconds at 1,000 buildings).
    """

    def __init__(
        self,
        problem: Problem,
        *,
        threads: int = 1,
        cop_rtol: float = 0.0,
        presolve_first: bool = False,
        builder: Literal["numpy", "pyomo"] = "numpy",
        crash: bool = True,
        cold_solver: Literal["simplex", "ipm"] = "simplex",
        by_site: bool = False,
        mend: bool = True,
        lazy_grid: bool | None = None,
    ) -> None:
        """`cop_rtol` > 0 keeps a heat pump's COP coefficient until the new COP differs by more
        than that share: changing a matrix coefficient makes HiGHS refactor the basis
        (measured: 2.7 → 17.6 ms/step on the 319-household region), while ambient
        temperature, and so COP, drifts by well under 1 % per 15 min.

        `by_site=True` (single-period problems, `sites.SiteSolver.why_not`): each call is
        first answered site by site without HiGHS, and only if that answer is certified
        optimal (every site's KKT conditions, no grid limit broken) is it returned; HiGHS
        answers the rest. The per-site answer is optimal for the LP with the step's exact
        COP; with `cop_rtol` > 0 the periods HiGHS answers use the held COP. `mend` (with
        `by_site`): a per-site answer that overloads branches or breaks an HV/MV threshold
        is mended where that can be certified (`_mend`); off for the areas of
        `DecomposedEngine`, whose certificate needs every binding row's dual.

        `lazy_grid=True`: HiGHS holds the LP without its grid rows and gets a branch limit or
        voltage band only where an answer breaks it (`lazy.py`; the answer is optimal for
        the whole LP). Pays where the grid is most of the LP and few of its rows bind: an
        LV network (measured, full LV, one step: 1,000 buildings cold 148 -> 18 ms, warm
        17 -> 7 ms; 10,000 cold 1,591 -> 238 ms; the MPC by area 19.4 -> 3.3 s), not on a
        station-level network of a few buses (equal or slower). `None` (default) decides
        by that: lazily where the grid has more buses than there are sites."""
        self.problem = problem
        self.cop_rtol = cop_rtol
        if builder not in ("numpy", "pyomo"):
            raise ValueError(f"builder must be 'numpy' or 'pyomo', not {builder!r}")
        self._options: dict[str, Any] = {
            "threads": threads,
            "presolve_first": presolve_first,
            "builder": builder,
            "crash": crash,
            "cold_solver": cold_solver,
        }
        self._lazy_on = problem.grid.n_bus > problem.n_sites if lazy_grid is None else lazy_grid
        self.lazy: LazyGrid | None = None  # the grid rows added on demand (lazy_grid=True)
        self.lazy_rounds = 0  # re-solves after adding grid rows, over all calls
        self.sites: SiteSolver | None = None
        if by_site and SiteSolver.why_not(problem) is None:
            self.sites = SiteSolver(problem)
        self._repair: SubtreeRepair | None = None  # built when a per-site answer first overloads
        self.priced = 0  # periods answered site by site with a price on an HV/MV threshold
        self._mend_on = mend
        # how the last call was answered: "site" (site by site, no grid row binds), "mended"
        # (subtrees or a threshold price: some grid row binds), or "lp" (HiGHS, whole LP)
        self.last_kind = "lp"
        self._bat_limits = (problem.bat_p_max_kw, problem.bat_e_min_kwh, problem.bat_e_max_kwh)
        self._hs = np.flatnonzero(problem.ts_e_max_kwh > 0).astype(np.int64)  # HPs with a store
        self.crash_used = False
        self.last_solution: Any = None
        self._h: Any = None
        self._ix: LpIndex | None = None
        if self.sites is not None:
            # HiGHS gets the LP on first need: a period answered site by site never needs it
            self._site_limits()
        else:
            self._build()

    @property
    def h(self) -> Any:
        """The HiGHS instance holding the LP (built on first access)."""
        if self._h is None:
            self._build()
        return self._h

    @property
    def ix(self) -> LpIndex:
        """Where every variable and row family sits in the HiGHS LP (built on first access)."""
        if self._ix is None:
            self._build()
        assert self._ix is not None
        return self._ix

    @property
    def lazy_grid(self) -> bool:
        """HiGHS holds the LP without its grid rows and adds them where broken (`lazy.py`)."""
        return self._lazy_on

    @property
    def mended(self) -> int:
        """Periods answered by re-solving only the subtrees below overloaded branches."""
        return 0 if self._repair is None else self._repair.mended

    @property
    def n_cols(self) -> int:
        return self.ix.n_cols

    @property
    def n_rows(self) -> int:
        return self.ix.n_rows

    def _build(self) -> None:
        """Hand the LP to HiGHS and prepare what every HiGHS solve reuses."""
        problem = self.problem
        opts = self._options
        presolve_first = bool(opts["presolve_first"])
        cold_solver = opts["cold_solver"]
        self._h = highspy.Highs()  # type: ignore[no-untyped-call]
        self._h.setOptionValue("output_flag", False)
        self._h.setOptionValue("threads", _process_threads(int(opts["threads"])))
        # Presolve would discard the previous basis: keep it off so every re-solve is warm.
        # `presolve_first`: the first (cold) solve presolves, the re-solves start from the
        # optimal basis it leaves (measured, 200 sites x 96 steps: first solve 60.5 -> 19.0 s).
        self._presolve_first = presolve_first
        self._h.setOptionValue("presolve", "on" if presolve_first else "off")
        # `cold_solver="ipm"`: the first solve by interior point + crossover (which leaves the
        # basis the re-solves start from). Measured for the live planner, where the fleet
        # cannot meet the limit all day: 100 sites 7.8 -> 2.4 s, 1,000 sites 666 -> 221 s;
        # on an MPC whose limit never binds it is slower (1,000 x 96: 107 s vs 10.6 s).
        self._cold_solver = cold_solver
        if cold_solver == "ipm":
            self._h.setOptionValue("solver", "ipm")
        # with lazy_grid the LP is the problem without its grid; rows come in `_solve_lazy`
        lp_problem = gridless(problem) if self._lazy_on else problem
        ix = pyomo_lp(lp_problem, self._h) if opts["builder"] == "pyomo" else build_lp(lp_problem, self._h)
        self._ix = ix
        if self._lazy_on:
            self.lazy = LazyGrid(problem, ix)
        # A start basis from the first inputs (crash.py) instead of the all-slack one;
        # needs the numpy builder's full index and is pointless when presolve runs first.
        # Single-period problems only: that is where the cold time is the whole answer
        # (an MPC's first solve is dominated by the planning itself; the planner presolves).
        self._crash = (
            bool(opts["crash"]) and ix.r_vdrop is not None and not presolve_first and problem.horizon == 1
        )
        if self._crash:
            # Devex pricing: with an advanced start basis, HiGHS's default (dual steepest
            # edge) first computes exact weights, one BTRAN per row: measured at 1,000
            # buildings, first solve 147 ms (DSE) vs 67 ms (Devex); warm re-solves equal
            # (9.7 ms both). Switching back later would recompute the weights, so it stays.
            self.h.setOptionValue("simplex_dual_edge_weight_strategy", 1)
        p = problem
        T = p.horizon
        g = lp_problem.grid  # the slacks' names: of the LP's own grid rows
        self._cop = np.full(T, np.nan)
        self._bus_fixed_set = False
        self._fixed_kw: FloatArray | None = None  # this call's fixed bus loads (lazy_grid)
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
        # Soft-limit slacks, read in one gather per call to report violations.
        slack: list[tuple[str, IntArray, tuple[str, ...]]] = [
            ("station_load", ix.c_sst[:, None], ("hv/mv",)),
            ("station_feed", ix.c_sstf[:, None], ("hv/mv",)),
            ("branch", ix.c_sup, g.branch_names),
            ("branch", ix.c_sdn, g.branch_names),
            ("voltage_high", ix.c_svu, tuple(str(b) for b in g.bus_ids)),
            ("voltage_low", ix.c_svd, tuple(str(b) for b in g.bus_ids)),
            ("heat_unmet", ix.c_unmet, tuple(f"hp:{k}" for k in range(p.n_hp))),
            ("shed", ix.c_shed, tuple(f"site:{s}" for s in range(p.n_sites))),
        ]
        cols_l: list[IntArray] = []
        kind_l: list[str] = []
        elem_l: list[str] = []
        t_l: list[IntArray] = []
        for kind, idx, names in slack:
            tt, jj = np.nonzero(idx >= 0)
            cols_l.append(idx[tt, jj])
            kind_l.extend([kind] * len(tt))
            elem_l.extend(names[j] for j in jj)
            t_l.append(tt)
        self._slack_cols = np.concatenate(cols_l) if cols_l else np.zeros(0, np.int64)
        self._slack_kind = kind_l
        self._slack_elem = elem_l
        self._slack_t = np.concatenate(t_l) if t_l else np.zeros(0, np.int64)
        if self._bat_limits[0] is not problem.bat_p_max_kw:  # limits set before the LP existed
            self._lp_battery_limits()

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

    def set_battery_limits(self, p_max_kw: FloatArray, e_min_kwh: FloatArray, e_max_kwh: FloatArray) -> None:
        """Per battery, for every period until changed again: power range and energy window."""
        self._bat_limits = (
            np.asarray(p_max_kw, float).copy(),
            np.asarray(e_min_kwh, float).copy(),
            np.asarray(e_max_kwh, float).copy(),
        )
        if self.sites is not None:
            self._site_limits()
        if self._ix is not None:
            self._lp_battery_limits()

    def _lp_battery_limits(self) -> None:
        ix = self.ix
        T = self.problem.horizon
        p_max_kw, e_min_kwh, e_max_kwh = self._bat_limits
        hi = np.broadcast_to(p_max_kw[None, :], ix.c_ch.shape)
        self._cols_bounds(ix.c_ch, np.zeros(ix.c_ch.shape), hi)
        self._cols_bounds(ix.c_dis, np.zeros(ix.c_dis.shape), hi)
        lo_e = np.broadcast_to(e_min_kwh[None, :], (T, len(e_min_kwh)))
        hi_e = np.broadcast_to(e_max_kwh[None, :], (T, len(e_max_kwh)))
        self._cols_bounds(ix.c_ebat, lo_e, hi_e)

    def _set_cop(self, cop_in: FloatArray | None) -> None:
        """Heat-pump COP as matrix coefficients, changed only where it moved (see cop_rtol)."""
        p = self.problem
        T = p.horizon
        if T == 1 and not np.isnan(self._cop[0]):  # the per-step loop: plain floats, no arrays
            new = 3.0 if cop_in is None else float(np.asarray(cop_in, float).reshape(-1)[0])
            held = float(self._cop[0])
            if new == held or (self.cop_rtol > 0 and abs(new - held) <= self.cop_rtol * abs(held)):
                return
        cop = np.full(T, 3.0) if cop_in is None else np.asarray(cop_in, float)
        if self.cop_rtol > 0 and not np.isnan(self._cop[0]):
            # keep the held coefficient where the COP moved by less than cop_rtol
            cop = np.where(np.abs(cop - self._cop) > self.cop_rtol * np.abs(self._cop), cop, self._cop)
        r_heat, c_hp = self.ix.r_heat, self.ix.c_hp
        changed = np.flatnonzero(cop != self._cop)  # all of them on the first call (NaN)
        if len(changed) == 0:
            return
        for t in changed.tolist():
            value = float(cop[t])
            for r, c in zip(r_heat[t].tolist(), c_hp[t].tolist(), strict=True):
                self.h.changeCoeff(r, c, value)
        self._cop = cop.copy()

    def _apply(self, x: StepInputs, state: StorageState) -> None:
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
        if self.lazy is not None:
            self._apply_fixed_lazy(x.bus_fixed_kw)
        elif x.bus_fixed_kw is not None:
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

    def _apply_fixed_lazy(self, fixed_kw: FloatArray | None) -> None:
        """Fixed bus loads with `lazy_grid`: their sum on the slack bus's balance, and the
        bounds of every grid row added so far moved with them."""
        lz = self.lazy
        assert lz is not None
        T = self.problem.horizon
        fixed = (
            None
            if fixed_kw is None
            else np.broadcast_to(np.asarray(fixed_kw, float), (T, self.problem.grid.n_bus))
        )
        if fixed is not None or self._bus_fixed_set:
            total = np.zeros((T, 1)) if fixed is None else fixed.sum(axis=1, keepdims=True)
            self._rows_eq(self.ix.r_bus, total)
            self._bus_fixed_set = fixed is not None
            lz.set_fixed(fixed)
            kind, elem, t, rows, _ = lz.added_arrays()
            if len(rows):
                up = lz.uppers(kind, elem, t)
                self.h.changeRowsBounds(len(rows), rows.astype(np.int32), np.full(len(rows), -INF), up)
        self._fixed_kw = fixed

    def _solve_lazy(self) -> tuple[Any, FloatArray, FloatArray]:
        """Re-solve, adding the grid rows the answer breaks, until it breaks none (beyond
        GAP_TOL of the objective in penalty): then it is optimal for the whole LP (`lazy.py`).
        Returns the HiGHS solution and the answer's flows and voltages."""
        lz = self.lazy
        assert lz is not None
        max_rounds = 4 * self.problem.horizon * (self.problem.grid.n_bus + self.problem.grid.n_branch) + 1
        for _ in range(max_rounds):  # bounded: every round adds at least one row never added before
            sol = self.h.getSolution()
            x = np.asarray(sol.col_value)
            flows, v = lz.flows_and_voltages(lz.bus_loads(x, self._fixed_kw))
            broken = lz.breaches(flows, v)
            if len(broken) == 0 or lz.penalty(broken) <= GAP_TOL * max(1.0, abs(self.h.getObjectiveValue())):
                return sol, flows, v
            self._add_grid_rows(broken)
            self.lazy_rounds += 1
            self._run_checked()
        raise DispatchInfeasible("lazy grid rows did not converge")  # pragma: no cover (see bound above)

    def _add_grid_rows(self, b: Breach) -> tuple[IntArray, IntArray]:
        """Grid rows (each with its slack column at the full LP's penalty) into HiGHS; their
        row and slack-column positions."""
        lz = self.lazy
        assert lz is not None
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

    def add_grid_rows(self, kind: IntArray, element: IntArray, t: IntArray) -> tuple[IntArray, IntArray]:
        """With `lazy_grid`: add these grid rows now (kinds as in `lazy.py`; rows already in
        the LP are skipped) before they are found broken; their row and slack-column
        positions. `DecomposedEngine` passes the rows its areas needed to the whole LP."""
        lz = self.lazy
        assert lz is not None, "add_grid_rows needs lazy_grid=True"
        new = ~lz.is_added(kind, element, t)
        b = Breach(kind[new], element[new], t[new], np.zeros(int(new.sum())))
        if len(b) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return self._add_grid_rows(b)

    def lazy_rows_idle(self, branches: IntArray) -> bool:
        """With `lazy_grid`: every added voltage row and every added row of `branches` is off
        its bound or has a round-off dual in the last solution (what `DecomposedEngine`'s
        certificate asks of an area's coupling rows; rows never added have no dual)."""
        lz = self.lazy
        assert lz is not None and self.last_solution is not None
        kind, elem, t, rows, _ = lz.added_arrays()
        pick = (kind >= V_UP) | np.isin(elem, branches)
        if not pick.any():
            return True
        return rows_idle(
            self.last_solution,
            rows[pick],
            lz.uppers(kind[pick], elem[pick], t[pick]),
            scale=ROW_SCALE[kind[pick]],
        )

    def start_from(self, col_status: IntArray, row_status: IntArray) -> bool:
        """Start the next HiGHS solve from these statuses instead of presolving or crashing.

        They go in as an "alien" basis, which HiGHS completes where they are not square (used
        by `DecomposedEngine` with the areas' joined bases, `joined_basis.py`). Columns and
        rows beyond the statuses given (grid rows added lazily) start nonbasic and basic.
        False (and nothing changed) if HiGHS refuses them."""
        n_col, n_row = int(self.h.getNumCol()), int(self.h.getNumRow())
        col = np.full(n_col, LOWER, dtype=np.int64)
        row = np.full(n_row, BASIC, dtype=np.int64)
        col[: len(col_status)] = col_status[:n_col]
        row[: len(row_status)] = row_status[:n_row]
        if not self._set_alien_basis(col, row):
            return False
        self._crash = False
        if self._presolve_first:  # presolve would throw the basis away
            self._presolve_first = False
            self.h.setOptionValue("presolve", "off")
        if self._cold_solver != "simplex":  # and so would interior point
            self._cold_solver = "simplex"
            self.h.setOptionValue("solver", "simplex")
        return True

    def basis_status(self) -> tuple[IntArray, IntArray] | None:
        """HiGHS's current column and row statuses (None before any HiGHS solve)."""
        if self._h is None:
            return None
        basis = self._h.getBasis()
        if not basis.valid:
            return None
        # `.value` rather than int(): 5x faster over the 600,000 columns of an MPC
        col = np.fromiter((v.value for v in basis.col_status), dtype=np.int64, count=int(self._h.getNumCol()))
        row = np.fromiter((v.value for v in basis.row_status), dtype=np.int64, count=int(self._h.getNumRow()))
        return col, row

    def _run_checked(self) -> None:
        """Re-solve after grid rows were added; once more from scratch if HiGHS gives up
        from the basis it had (never silently: still not optimal raises)."""
        self.h.run()
        status = self.h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            self.h.clearSolver()
            self.h.run()
            status = self.h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise DispatchInfeasible(f"HiGHS status {self.h.modelStatusToString(status)}")

    def shift_basis(self, k: int) -> bool:
        """Before re-solving a window that starts `k` periods later, move the basis with it.

        Why: the last optimal basis of a multi-period plan is indexed by period; the next
        window's period t is the old window's period t + k, so its basis is what HiGHS
        should start from (the new tail repeats the old last period). The count of basic
        variables may change, so the basis goes in as "alien" and HiGHS completes it.
        Returns False (nothing changed) when there is no basis to shift.

        Use it for large moves: the study's MPC re-plans every 6 h of a 24 h window, where it
        halves the iterations (quick-study MPC 62 -> 32 s). For a one-period move the
        unshifted basis is the better start (live planner, 100 sites: 105 ms vs 998 ms per
        plan; 1,000-building MPC: 1.27 s vs 1.4 s): completing an alien basis costs more than
        the few pivots a one-period shift saves.
        """
        T = self.problem.horizon
        if self._ix is None or not 0 < k < T or self.ix.r_vdrop is None:
            return False
        # every column and row HiGHS holds (with lazy_grid also the grid rows added since the
        # build: they keep their status, the alien basis lets HiGHS complete the rest)
        status = self.basis_status()
        if status is None:
            return False
        col, row = status
        new_col, new_row = col.copy(), row.copy()
        for name, value in vars(self.ix).items():
            if not isinstance(value, np.ndarray) or value.ndim == 0 or value.shape[0] != T:
                continue
            if name.startswith("c_"):
                src, dst = col, new_col
            elif name.startswith("r_"):
                src, dst = row, new_row
            else:
                continue
            idx = value.reshape(T, -1)
            ok = idx[0] >= 0  # the same entries exist in every period
            later = idx[k:][:, ok]
            dst[idx[: T - k][:, ok]] = src[later]
            dst[idx[T - k :][:, ok]] = src[idx[T - 1][ok]][None, ...]
        return self._set_alien_basis(new_col, new_row)

    def _set_alien_basis(self, col: IntArray, row: IntArray) -> bool:
        """Statuses to HiGHS as an "alien" basis (it completes them where they are not one)."""
        basis = highspy.HighsBasis()
        basis.col_status = [BASIS_STATUS[v] for v in col.tolist()]
        basis.row_status = [BASIS_STATUS[v] for v in row.tolist()]
        basis.alien = True
        basis.valid = True
        return bool(self.h.setBasis(basis) == highspy.HighsStatus.kOk)

    def solve(self, inputs: StepInputs, state: StorageState) -> Schedule:
        """Apply the inputs, re-solve from the previous basis, and read the schedule."""
        if self.sites is not None:
            data = self._step_data(inputs, state)
            ans = self.sites.solve(data)
            self.last_kind = "site"
            if ans is None and self.sites.unchecked is not None and self._mend_on:
                ans = self._mend(inputs, state, data, self.sites.unchecked)
                self.last_kind = "mended"
            if ans is not None:
                self.last_solution = None
                return self._from_sites(ans)
        self.last_kind = "lp"
        self._apply(inputs, state)
        if self._crash:
            self._crash = False
            lp_problem, start_inputs = self.problem, inputs
            if self.lazy is not None:  # the gridless LP: every fixed load on the slack bus
                lp_problem = gridless(self.problem)
                if inputs.bus_fixed_kw is not None:
                    total = np.asarray(inputs.bus_fixed_kw, float).sum(axis=-1, keepdims=True)
                    start_inputs = dataclasses.replace(inputs, bus_fixed_kw=total)
            col, row = basis_for(lp_problem, self.ix, start_inputs, state)
            self.crash_used = set_basis(self.h, col, row)
        self.h.run()
        if self._presolve_first:
            self._presolve_first = False
            self.h.setOptionValue("presolve", "off")
        if self._cold_solver != "simplex":
            self._cold_solver = "simplex"
            self.h.setOptionValue("solver", "simplex")
        status = self.h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise DispatchInfeasible(f"HiGHS status {self.h.modelStatusToString(status)}")
        if self.lazy is not None:
            sol, flows, v = self._solve_lazy()
            self.last_solution = sol
            return self._read_lazy(np.asarray(sol.col_value), float(self.h.getObjectiveValue()), flows, v)
        sol = self.h.getSolution()
        self.last_solution = sol  # row duals for callers that certify the result (decompose.py)
        x = np.asarray(sol.col_value)
        return self._read(x, float(self.h.getObjectiveValue()))

    def _mend(
        self, inputs: StepInputs, state: StorageState, data: StepData, ans: SiteAnswer
    ) -> SiteAnswer | None:
        """A per-site answer that broke a grid row, mended if that can be certified: the
        subtrees below overloaded branches re-solved (`repair.py`), or a binding HV/MV load
        threshold priced into every site's exchange (`SiteSolver.clear_threshold`).
        None otherwise (HiGHS answers)."""
        sv = self.sites
        assert sv is not None
        sv.unchecked = None
        over = sv.overloaded(data, ans)
        if over is None:
            priced = sv.clear_threshold(data)
            if priced is None or not sv.grid_ok(data, priced):
                return None
            self.priced += 1
            return priced
        if self._repair is None:
            # the subtree LPs: numpy-built, with the step's exact COP (as the per-site answer
            # around them has); `lazy_grid` decides by their grid (measured, 1,000 buildings:
            # a mended step on the full LV network 2.0-2.4 ms lazily vs 3.1-3.4 ms; on the
            # station-level network, a few buses, lazily is slower: 1.8-2.1 vs 1.6-1.8 ms)
            options = dict(self._options) | {"builder": "numpy"}
            self._repair = SubtreeRepair(self.problem, lambda sub: DispatchEngine(sub, **options))
        mended = self._repair.mend(inputs, state, ans, over, self._bat_limits)
        if mended is None:
            return None  # SubtreeRepair counted the refusal
        if not sv.grid_ok(data, mended):
            self._repair.refused += 1
            return None
        self._repair.mended += 1
        return mended

    def _site_limits(self) -> None:
        """Per-site arrays of what stays until changed: battery limits, default costs and caps."""
        p = self.problem
        w = p.weights
        S = p.n_sites
        pm, emin, emax = (np.zeros(S) for _ in range(3))
        pm[p.bat_site], emin[p.bat_site], emax[p.bat_site] = self._bat_limits
        self._site_bat = (pm, emin, emax)
        self._site_hp_cap = np.zeros(S)
        self._site_hp_cap[p.hp_site] = p.hp_p_max_kw
        self._site_defaults = (
            np.full(S, w.c_import),
            np.full(S, w.bat_w_discharge),
            np.full(S, w.ts_w_discharge),
        )
        self._site_pv = np.zeros(S)
        self._site_pv[p.pv_sites] = 1.0
        self._site_ts = p.hp_site[self._hs]
        self._ts_keep = 1.0 - p.ts_loss_per_step

    def _step_data(self, x: StepInputs, state: StorageState) -> StepData:
        """The period's inputs per site, for `sites.SiteSolver` (shapes as `_apply` reads them)."""
        p = self.problem
        S = p.n_sites
        base = np.asarray(x.base_kw, float).reshape(-1)
        if base.shape != (S,):
            raise ValueError(f"base_kw has {base.size} values, the problem has {S} sites")
        pv = (
            np.zeros(S)
            if x.pv_kw is None
            else np.maximum(np.asarray(x.pv_kw, float).reshape(-1), 0.0) * self._site_pv
        )
        c_imp, bat_wd, ts_wd = self._site_defaults
        if x.c_import is not None:
            c_imp = np.broadcast_to(np.asarray(x.c_import, float).reshape(-1), (S,))
        heat = np.zeros(S)
        hp_cap = self._site_hp_cap
        if p.n_hp:
            if x.heat_kw is not None:
                heat[p.hp_site] = np.asarray(x.heat_kw, float).reshape(-1)
            if x.hp_cap_frac is not None:
                hp_cap = np.zeros(S)
                hp_cap[p.hp_site] = np.asarray(x.hp_cap_frac, float).reshape(-1) * p.hp_p_max_kw
            if x.ts_w_discharge is not None:
                ts_wd = ts_wd.copy()
                ts_wd[p.hp_site] = np.asarray(x.ts_w_discharge, float).reshape(-1)
        e_bat0 = np.zeros(S)
        if p.n_bat:
            e_bat0[p.bat_site] = state.e_bat_kwh
            if x.bat_w_discharge is not None:
                bat_wd = bat_wd.copy()
                bat_wd[p.bat_site] = np.asarray(x.bat_w_discharge, float).reshape(-1)
        e_ts0 = np.zeros(S)
        if len(self._hs):
            e_ts0[self._site_ts] = self._ts_keep * np.asarray(state.e_ts_kwh, float)[self._hs]
        pm, emin, emax = self._site_bat
        return StepData(
            base_kw=base,
            pv_max_kw=pv,
            heat_kw=heat,
            hp_cap_kw=hp_cap,
            cop=3.0 if x.cop is None else float(np.asarray(x.cop, float).reshape(-1)[0]),
            c_import=c_imp,
            bat_w_discharge=bat_wd,
            ts_w_discharge=ts_wd,
            e_bat0_kwh=e_bat0,
            e_ts0_kwh=e_ts0,
            bat_p_max_kw=pm,
            bat_e_min_kwh=emin,
            bat_e_max_kwh=emax,
            bus_fixed_kw=None if x.bus_fixed_kw is None else np.asarray(x.bus_fixed_kw, float).reshape(-1),
            station_limit_kw=_limit(x.station_limit_kw),
            station_feed_limit_kw=_limit(x.station_feed_limit_kw),
        )

    def _from_sites(self, a: SiteAnswer) -> Schedule:
        """A certified per-site answer in the shape `_read` gives."""
        p = self.problem
        bs, hs_ = p.bat_site, p.hp_site
        q_ts = np.zeros((1, p.n_hp))
        e_ts = np.zeros((1, p.n_hp))
        if len(self._hs):
            at = hs_[self._hs]
            q_ts[0, self._hs] = a.q_ch_kw[at] - a.q_dis_kw[at]
            e_ts[0, self._hs] = a.e_ts_kwh[at]
        ch = a.ch_kw[bs][None, :]
        dis = a.dis_kw[bs][None, :]
        return Schedule(
            p_site_kw=(a.imp_kw - a.exp_kw)[None, :],
            p_bat_kw=ch - dis,
            p_bat_ch_kw=ch,
            p_bat_dis_kw=dis,
            e_bat_kwh=a.e_bat_kwh[bs][None, :],
            p_hp_kw=a.hp_kw[hs_][None, :],
            q_ts_kw=q_ts,
            e_ts_kwh=e_ts,
            curtail_kw=a.curt_kw[None, :],
            p_unit_kw=np.zeros((1, 0)),
            p_root_kw=np.array([a.root_kw]),
            branch_flow_kw=a.flows_kw[None, :],
            v_pu=a.v_pu[None, :],
            objective=a.objective,
            violations=[]
            if a.unmet_kw.max(initial=0.0) <= 1e-6
            else [
                Violation("heat_unmet", f"hp:{k}", 0, float(u))
                for k, u in enumerate(a.unmet_kw[hs_].tolist())
                if u > 1e-6
            ],
        )

    def _read_lazy(self, x: FloatArray, objective: float, flows: FloatArray, v: FloatArray) -> Schedule:
        """`_read` for the gridless LP: flows and voltages from the answer, and the grid
        rows' slacks reported as the whole LP's would be."""
        lz = self.lazy
        assert lz is not None
        sched = self._read(x[: self.ix.n_cols], objective)
        sched.branch_flow_kw = flows
        sched.v_pu = v
        kind, elem, t, _, slack = lz.added_arrays()
        g = self.problem.grid
        amount = x[slack] / ROW_SCALE[kind]  # kW, or pu (voltage rows are in 1e-4 pu)
        for i in np.flatnonzero(amount > 1e-6).tolist():
            k = int(kind[i])
            name = g.branch_names[elem[i]] if k < V_UP else str(g.bus_ids[elem[i]])
            sched.violations.append(Violation(KIND_NAMES[k], name, int(t[i]), float(amount[i])))
        return sched

    def _read(self, x: FloatArray, objective: float) -> Schedule:
        p = self.problem
        ix = self.ix
        T = p.horizon
        xe = np.append(x, 0.0)  # index -1 (an entry that does not exist) reads 0

        q_ts = np.zeros((T, p.n_hp))
        e_ts = np.zeros((T, p.n_hp))
        if len(self._hs):
            q_ts[:, self._hs] = xe[ix.c_qch] - xe[ix.c_qdis]
            e_ts[:, self._hs] = xe[ix.c_ets]
        slack = xe[self._slack_cols]
        viol = [
            Violation(self._slack_kind[i], self._slack_elem[i], int(self._slack_t[i]), float(slack[i]))
            for i in np.flatnonzero(slack > 1e-6)
        ]
        ch = xe[ix.c_ch]
        dis = xe[ix.c_dis]
        return Schedule(
            p_site_kw=xe[ix.c_imp] - xe[ix.c_exp],
            p_bat_kw=ch - dis,
            p_bat_ch_kw=ch,
            p_bat_dis_kw=dis,
            e_bat_kwh=xe[ix.c_ebat],
            p_hp_kw=xe[ix.c_hp],
            q_ts_kw=q_ts,
            e_ts_kwh=e_ts,
            curtail_kw=xe[ix.c_curt],
            p_unit_kw=xe[ix.c_u],
            p_root_kw=xe[ix.c_root],
            branch_flow_kw=xe[ix.c_f],
            v_pu=xe[ix.c_v],
            objective=objective,
            violations=viol,
        )
