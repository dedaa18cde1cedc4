"""The selection MILP built with numpy and handed to HiGHS in one `passModel` (the fast builder).

The same MILP as `pyomo_model.build_model`, column for column and row for row in meaning
(`tests/unit/dr/test_selection.py` solves both on every hand case and compares): pyomo is
the statement to read and extend, this is what the 1,000-building benchmark times (the
field notes: pyomo's model build is ~10× slower than numpy's for an LP of this size).
Families, per source r and step t:

    up[r,t] ∈ [0, U], dn[r,t] ∈ [0, D]                     activated kW each way
    z[r,t] ∈ {0,1}: up ≤ U·z, dn ≤ D·(1 − z)               never both (where netting cannot do it, `needs_binary`)
    yu, yd ∈ {0,1}: up = U·yu, dn = D·yd, yu + yd ≤ 1       on/off sources (the seed's Res)
    e[b,t] = e[b,t−1] + η_e·Δt·up − Δt/η_c·dn ∈ [E_min, E_max]        batteries
    ΔT[h,t] = a·ΔT[h,t−1] + (1 − a)·R·COP_t·(up − dn),  T_base + ΔT ∈ band   heat pumps
    s_t·Σ_r (up − dn) + unmet_t = |target_t|,  unmet_t ∈ [0, |target_t|]    each step
    Σ_{r ∈ site} (up + dn) ≤ P_max,site                      contracts
    −headroom_reduce ≤ Σ_{r ∈ feeder} (up − dn) ≤ headroom_increase     feeders

and the objective's own columns (`_objective_columns`); what both builders share is in `inputs.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from cloud_controller.dr.inputs import IntArray, MilpInputs, needs_binary, source_costs, unmet_cost
from cloud_controller.dr.problem import FloatArray

__all__ = ["MilpIndex", "build_milp", "crash_basis"]

INF = highspy.kHighsInf


@dataclass(frozen=True)
class MilpIndex:
    """Where the answer's columns sit in HiGHS."""

    up: IntArray  # (R, T)
    dn: IntArray  # (R, T)
    unmet: IntArray  # (T,)
    z: IntArray  # the exclusivity binaries' columns (cells: `needs_binary`)
    step_rows: IntArray  # (T,) the request's rows: their duals are the step prices
    chain_cols: IntArray  # SOC, zone, partial-sum and unmet columns, each paired with ...
    chain_rows: IntArray  # ... the equality row that defines it (`crash_basis`)
    integer: IntArray  # every binary's column
    n_cols: int
    n_rows: int
    n_integer: int
    a: sparse.csc_matrix | None = None  # the constraint matrix, kept on request (`warm.warm_point`)
    row_lo: FloatArray | None = None  # the rows' lower bounds (an equality's right-hand side)


class _Builder:
    """Columns and rows as numpy blocks; coefficients as COO triplets."""

    def __init__(self) -> None:
        self.n_cols = 0
        self.n_rows = 0
        self.col_lo: list[FloatArray] = []
        self.col_hi: list[FloatArray] = []
        self.cost: list[FloatArray] = []
        self.integer: list[NDArray[np.int32]] = []
        self.row_lo: list[FloatArray] = []
        self.row_hi: list[FloatArray] = []
        self.r: list[IntArray] = []
        self.c: list[IntArray] = []
        self.v: list[FloatArray] = []
        self.chain_c: list[IntArray] = []
        self.chain_r: list[IntArray] = []

    def chain(self, cols: IntArray, rows: IntArray) -> None:
        """Pair each column with the equality row that defines it (a triangular basis, `crash_basis`)."""
        self.chain_c.append(cols.ravel())
        self.chain_r.append(rows.ravel())

    def cols(
        self, shape: tuple[int, ...], lo: Any, hi: Any, cost: Any = 0.0, *, integer: bool = False
    ) -> IntArray:
        n = int(np.prod(shape))
        ix = np.arange(self.n_cols, self.n_cols + n, dtype=np.int64).reshape(shape)
        self.n_cols += n
        self.col_lo.append(np.broadcast_to(np.asarray(lo, dtype=np.float64), shape).ravel().copy())
        self.col_hi.append(np.broadcast_to(np.asarray(hi, dtype=np.float64), shape).ravel().copy())
        self.cost.append(np.broadcast_to(np.asarray(cost, dtype=np.float64), shape).ravel().copy())
        self.integer.append(np.full(n, 1 if integer else 0, dtype=np.int32))
        return ix

    def rows(self, shape: tuple[int, ...], lo: Any, hi: Any) -> IntArray:
        n = int(np.prod(shape))
        ix = np.arange(self.n_rows, self.n_rows + n, dtype=np.int64).reshape(shape)
        self.n_rows += n
        self.row_lo.append(np.broadcast_to(np.asarray(lo, dtype=np.float64), shape).ravel().copy())
        self.row_hi.append(np.broadcast_to(np.asarray(hi, dtype=np.float64), shape).ravel().copy())
        return ix

    def coef(self, rows: IntArray, cols: IntArray, value: Any) -> None:
        r, c, v = np.broadcast_arrays(rows, cols, np.asarray(value, dtype=np.float64))
        self.r.append(r.ravel().astype(np.int64))
        self.c.append(c.ravel().astype(np.int64))
        self.v.append(v.ravel().astype(np.float64))

    def pass_to(self, h: Any) -> sparse.csc_matrix:
        def cat(parts: list[Any], dtype: Any) -> Any:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        a = sparse.coo_matrix(
            (cat(self.v, np.float64), (cat(self.r, np.int64), cat(self.c, np.int64))),
            shape=(self.n_rows, self.n_cols),
        ).tocsc()
        a.sum_duplicates()
        status = h.passModel(
            self.n_cols,
            self.n_rows,
            a.nnz,
            int(highspy.MatrixFormat.kColwise),
            int(highspy.ObjSense.kMinimize),
            0.0,
            cat(self.cost, np.float64),
            cat(self.col_lo, np.float64),
            cat(self.col_hi, np.float64),
            cat(self.row_lo, np.float64),
            cat(self.row_hi, np.float64),
            a.indptr.astype(np.int32),
            a.indices.astype(np.int32),
            a.data.astype(np.float64),
            cat(self.integer, np.int32),
        )
        if status != highspy.HighsStatus.kOk:
            raise RuntimeError(f"HiGHS passModel returned {status}")
        return a


def build_milp(x: MilpInputs, h: Any, *, keep_matrix: bool = False) -> MilpIndex:
    """Build the MILP of `x` into the HiGHS instance `h`; `keep_matrix` keeps its matrix and row bounds in the index."""
    b = _Builder()
    n_r, n_t = x.up_max.shape
    c_up, c_dn = source_costs(x)
    up = b.cols((n_r, n_t), 0.0, x.up_max, c_up)
    dn = b.cols((n_r, n_t), 0.0, x.dn_max, c_dn)
    unmet = b.cols((n_t,), 0.0, x.target_abs_kw, unmet_cost(x))
    z = _exclusivity(b, x, up, dn)
    _batteries(b, x, up, dn)
    _zones(b, x, up, dn)
    # each step: s_t · Σ (up − dn) + unmet = |target|
    step_rows = _step_rows(b, x, up, dn, unmet)
    _sites_and_feeders(b, x, up, dn)
    _objective_columns(b, x, unmet)
    a = b.pass_to(h)
    return MilpIndex(
        up=up,
        dn=dn,
        unmet=unmet,
        z=z,
        step_rows=step_rows,
        chain_cols=np.concatenate(b.chain_c),
        chain_rows=np.concatenate(b.chain_r),
        integer=np.flatnonzero(np.concatenate(b.integer)).astype(np.int64),
        n_cols=b.n_cols,
        n_rows=b.n_rows,
        n_integer=int(sum(int(i.sum()) for i in b.integer)),
        a=a if keep_matrix else None,
        row_lo=np.concatenate(b.row_lo) if keep_matrix else None,
    )


GROUP = 32  # sources per partial sum: keeps every row short (see `_step_rows`)


def _step_rows(b: _Builder, x: MilpInputs, up: IntArray, dn: IntArray, unmet: IntArray) -> IntArray:
    """s_t · Σ_r (up − dn) + unmet_t = |target_t|, summed through a tree of partial sums.

    One row over every source would hold thousands of entries; HiGHS's presolve and simplex
    slow down sharply on such dense rows (1,000 buildings: ~30 s instead of ~1 s). Partial
    sums of `GROUP` sources, then of `GROUP` partial sums, and so on, state the same
    equation with rows of at most `GROUP` + 1 entries.
    """
    n_r, n_t = up.shape
    # level 0: the sources' own terms, as (column, coefficient) lists per group
    terms: list[tuple[IntArray, FloatArray]] = [
        (up, np.broadcast_to(x.sign[None, :], (n_r, n_t))),
        (dn, np.broadcast_to(-x.sign[None, :], (n_r, n_t))),
    ]
    members = n_r
    level_cols: list[tuple[IntArray, FloatArray]] = terms
    while members > GROUP:
        n_groups = -(-members // GROUP)
        g = b.cols((n_groups, n_t), -INF, INF)
        r = b.rows((n_groups, n_t), 0.0, 0.0)  # g = Σ members of the group
        b.coef(r, g, -1.0)
        b.chain(g, r)
        for cols, coef in level_cols:
            grp = np.arange(cols.shape[0]) // GROUP
            b.coef(r[grp], cols, coef)
        level_cols = [(g, np.ones((n_groups, n_t)))]
        members = n_groups
    r_step = b.rows((n_t,), x.target_abs_kw, x.target_abs_kw)
    for cols, coef in level_cols:
        b.coef(np.broadcast_to(r_step[None, :], cols.shape), cols, coef)
    b.coef(r_step, unmet, 1.0)
    b.chain(unmet, r_step)
    return r_step


def _exclusivity(b: _Builder, x: MilpInputs, up: IntArray, dn: IntArray) -> IntArray:
    both = needs_binary(x)
    rr, tt = np.nonzero(both)
    z = np.zeros(0, dtype=np.int64)
    if rr.size:
        z = b.cols((rr.size,), 0.0, 1.0, integer=True)
        r1 = b.rows((rr.size,), -INF, 0.0)  # up − U z ≤ 0
        b.coef(r1, up[rr, tt], 1.0)
        b.coef(r1, z, -x.up_max[rr, tt])
        r2 = b.rows((rr.size,), -INF, x.dn_max[rr, tt])  # dn + D z ≤ D
        b.coef(r2, dn[rr, tt], 1.0)
        b.coef(r2, z, x.dn_max[rr, tt])
    onoff = np.nonzero(~x.partial)[0]
    if onoff.size:
        n_t = x.n_steps
        yu = b.cols((onoff.size, n_t), 0.0, 1.0, integer=True)
        yd = b.cols((onoff.size, n_t), 0.0, 1.0, integer=True)
        ru = b.rows((onoff.size, n_t), 0.0, 0.0)  # up = U yu
        b.coef(ru, up[onoff], 1.0)
        b.coef(ru, yu, -x.up_max[onoff])
        rd = b.rows((onoff.size, n_t), 0.0, 0.0)  # dn = D yd
        b.coef(rd, dn[onoff], 1.0)
        b.coef(rd, yd, -x.dn_max[onoff])
        ry = b.rows((onoff.size, n_t), -INF, 1.0)
        b.coef(ry, yu, 1.0)
        b.coef(ry, yd, 1.0)
    return z


def _batteries(b: _Builder, x: MilpInputs, up: IntArray, dn: IntArray) -> None:
    nb = x.bat_rows.size
    if not nb:
        return
    n_t = x.n_steps
    dt = x.dt_h
    e = b.cols((nb, n_t), x.bat_e_min[:, None], x.bat_e_max[:, None])
    rhs = np.zeros((nb, n_t))
    rhs[:, 0] = x.bat_e0
    r = b.rows((nb, n_t), rhs, rhs)  # e_t − e_{t−1} − η_e Δt up + Δt/η_c dn = (E0 at t = 0)
    b.coef(r, e, 1.0)
    b.chain(e, r)
    if n_t > 1:
        b.coef(r[:, 1:], e[:, :-1], -1.0)
    b.coef(r, up[x.bat_rows], -(x.bat_eta_c * dt)[:, None])
    b.coef(r, dn[x.bat_rows], (dt / x.bat_eta_d)[:, None])


def _zones(b: _Builder, x: MilpInputs, up: IntArray, dn: IntArray) -> None:
    nh = x.hp_rows.size
    if not nh:
        return
    n_t = x.n_steps
    d_t = b.cols((nh, n_t), x.hp_lo, x.hp_hi)
    r = b.rows((nh, n_t), 0.0, 0.0)  # ΔT_t − a ΔT_{t−1} − gain_t (up − dn) = 0
    b.coef(r, d_t, 1.0)
    b.chain(d_t, r)
    if n_t > 1:
        b.coef(r[:, 1:], d_t[:, :-1], -x.hp_decay[:, None])
    b.coef(r, up[x.hp_rows], -x.hp_gain)
    b.coef(r, dn[x.hp_rows], x.hp_gain)


def _sites_and_feeders(b: _Builder, x: MilpInputs, up: IntArray, dn: IntArray) -> None:
    n_t = x.n_steps
    for k, site in enumerate(x.limit_site):
        members = np.nonzero(x.site_of == site)[0]
        r = b.rows((n_t,), -INF, x.limit_kw[k])
        b.coef(np.broadcast_to(r, (members.size, n_t)), up[members], 1.0)
        b.coef(np.broadcast_to(r, (members.size, n_t)), dn[members], 1.0)
    for k, sites in enumerate(x.feeder_sites):
        members = np.nonzero(np.isin(x.site_of, sites))[0]
        r = b.rows((n_t,), -x.feeder_red[k], x.feeder_inc[k])
        b.coef(np.broadcast_to(r, (members.size, n_t)), up[members], 1.0)
        b.coef(np.broadcast_to(r, (members.size, n_t)), dn[members], -1.0)


def _objective_columns(b: _Builder, x: MilpInputs, unmet: IntArray) -> None:
    n_t = x.n_steps
    if x.objective == "bid_length":
        # Bid_t ∈ {0,1}: Σ delivered ≥ Bid_t · P_min ⇔ unmet_t + P_min · Bid_t ≤ |target_t|
        bid = b.cols((n_t,), 0.0, 1.0, -1.0, integer=True)
        r = b.rows((n_t,), -INF, x.target_abs_kw)
        b.coef(r, unmet, 1.0)
        b.coef(r, bid, x.bid_min_kw)
    elif x.objective == "power_peak":
        # peak ≤ delivered_t + M (1 − w_t), Σ w_t = 1, w binary: the peak is one step's delivery
        big_m = float(x.target_abs_kw.max(initial=0.0))
        peak = b.cols((1,), 0.0, big_m, -1.0)
        w = b.cols((n_t,), 0.0, 1.0, integer=True)
        r_one = b.rows((1,), 1.0, 1.0)
        b.coef(r_one, w, 1.0)
        r = b.rows((n_t,), -INF, big_m + x.target_abs_kw)
        b.coef(r, peak[0], 1.0)
        b.coef(r, unmet, 1.0)
        b.coef(r, w, big_m)


def crash_basis(ix: MilpIndex) -> Any:
    """A starting basis: every SOC, zone, partial-sum and unmet column basic in its own row.

    Those columns with their defining rows form a triangular, hence nonsingular, basis
    matrix; every other column sits at its lower bound (0) and every other row's slack is
    basic. It is the "nothing activated" point (SOC at its start, the zone on its baseline,
    all of the request unmet), primal feasible for a selection without objective columns.
    The dual simplex from here skips the pivots that a slack basis spends putting the
    chains' columns into the basis (200 buildings × 96 steps: 30,669 iterations instead of
    70,832, measured with the benchmark's portfolio).
    """
    col = np.full(ix.n_cols, highspy.HighsBasisStatus.kLower)
    row = np.full(ix.n_rows, highspy.HighsBasisStatus.kBasic)
    col[ix.chain_cols] = highspy.HighsBasisStatus.kBasic
    row[ix.chain_rows] = highspy.HighsBasisStatus.kLower
    basis = highspy.HighsBasis()
    basis.col_status = list(col)
    basis.row_status = list(row)
    basis.valid = True
    return basis
