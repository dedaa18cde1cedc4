"""The dispatch LP of `pyomo_model.py`, assembled directly as sparse arrays for HiGHS.

Why a second builder: `pyomo_model.py` states the LP in pyomo, the form users read and
extend, but building a pyomo model and writing it as an LP file costs far more than the
solves it serves, most of all for a multi-period MPC (docs/benchmarks.md). This module
builds the *same* LP (same columns, rows, bounds, costs and coefficients, in the families
of `families.py`) with numpy and hands it to HiGHS with one `passModel`.
`tests/unit/dispatch/test_lp_builder.py` checks, family by family, that both builders give
the same LP, so a change to one that is not made to the other fails the tests.

Every family's index array has shape (T, n) (period first), -1 where an entry does not
exist; `LpIndex` is what `highs.session.LpSession` needs to change bounds and costs and to
read the schedule, whichever builder made the LP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

from cloud_controller.dispatch.model.problem import BIG, FloatArray, IntArray, Problem
from cloud_controller.grid.meshed.planning import DcGrid

INF = highspy.kHighsInf


@dataclass
class LpIndex:
    """HiGHS column (c_*) and row (r_*) positions of each variable/constraint family, (T, n)."""

    c_imp: IntArray
    c_exp: IntArray
    c_curt: IntArray
    c_shed: IntArray
    c_ch: IntArray
    c_dis: IntArray
    c_ebat: IntArray
    c_hp: IntArray
    c_unmet: IntArray
    c_qch: IntArray
    c_qdis: IntArray
    c_ets: IntArray
    c_u: IntArray
    c_root: IntArray  # (T,)
    c_f: IntArray
    c_v: IntArray
    c_sup: IntArray
    c_sdn: IntArray
    c_svu: IntArray
    c_svd: IntArray
    c_sst: IntArray  # (T,)
    c_sstf: IntArray  # (T,)
    r_site: IntArray
    r_heat: IntArray
    r_bat: IntArray
    r_ts: IntArray
    r_bus: IntArray
    r_st: IntArray  # (T,)
    r_stf: IntArray  # (T,)
    hs: IntArray  # heat pumps with a thermal store (positions in 0..n_hp-1)
    n_cols: int = 0
    n_rows: int = 0
    # The rest is known only to the numpy builder (what `crash.py` needs for a start basis).
    r_vdrop: IntArray | None = None  # (T, K)
    r_branch_up: IntArray | None = None  # (T, K), -1 for unlimited branches
    r_branch_dn: IntArray | None = None
    r_v_up: IntArray | None = None  # (T, N)
    r_v_dn: IntArray | None = None
    c_zu: IntArray | None = None  # (T, U)
    r_unit_epi: IntArray | None = None  # (T, U, segments), -1 where a unit has fewer
    c_zroot: IntArray | None = None  # (T,)
    r_root_epi: IntArray | None = None  # (T, segments); with no root cost one equality row


@dataclass
class _Builder:
    """Columns, rows and (row, col, value) triplets, appended family by family."""

    col_lo: list[FloatArray] = field(default_factory=list)
    col_hi: list[FloatArray] = field(default_factory=list)
    cost: list[FloatArray] = field(default_factory=list)
    row_lo: list[FloatArray] = field(default_factory=list)
    row_hi: list[FloatArray] = field(default_factory=list)
    a_row: list[IntArray] = field(default_factory=list)
    a_col: list[IntArray] = field(default_factory=list)
    a_val: list[FloatArray] = field(default_factory=list)
    n_cols: int = 0
    n_rows: int = 0

    def cols(self, shape: tuple[int, ...], lo: object, hi: object, cost: object = 0.0) -> IntArray:
        size = int(np.prod(shape))
        idx = np.arange(self.n_cols, self.n_cols + size, dtype=np.int64).reshape(shape)
        self.n_cols += size
        for dst, v in ((self.col_lo, lo), (self.col_hi, hi), (self.cost, cost)):
            dst.append(np.broadcast_to(np.asarray(v, dtype=float), shape).ravel())
        return idx

    def rows(self, shape: tuple[int, ...], lo: object, hi: object) -> IntArray:
        size = int(np.prod(shape))
        idx = np.arange(self.n_rows, self.n_rows + size, dtype=np.int64).reshape(shape)
        self.n_rows += size
        self.row_lo.append(np.broadcast_to(np.asarray(lo, dtype=float), shape).ravel())
        self.row_hi.append(np.broadcast_to(np.asarray(hi, dtype=float), shape).ravel())
        return idx

    def coef(self, rows: IntArray, cols: IntArray, val: object) -> None:
        """Add val * x[cols] to rows (arrays broadcast together)."""
        r, c, v = np.broadcast_arrays(rows, cols, np.asarray(val, dtype=float))
        self.a_row.append(r.ravel())
        self.a_col.append(c.ravel())
        self.a_val.append(v.ravel())

    def csc(self) -> sp.csc_matrix:
        rows = np.concatenate(self.a_row) if self.a_row else np.zeros(0, np.int64)
        cols = np.concatenate(self.a_col) if self.a_col else np.zeros(0, np.int64)
        vals = np.concatenate(self.a_val) if self.a_val else np.zeros(0)
        a = sp.csc_matrix((vals, (rows, cols)), shape=(self.n_rows, self.n_cols))
        a.sum_duplicates()
        a.eliminate_zeros()
        return a


def _cat(parts: list[FloatArray]) -> FloatArray:
    return np.concatenate(parts) if parts else np.zeros(0)


def build_lp(problem: Problem, h: highspy.Highs) -> LpIndex:
    """Assemble `problem`'s LP and pass it to `h`; return where every family sits."""
    p = problem
    g = p.grid
    w = p.weights
    dt = p.dt_h
    T = p.horizon
    nS, nB, nH, nU = p.n_sites, p.n_bat, p.n_hp, p.n_units
    hs = np.asarray([h_ for h_ in range(nH) if p.ts_e_max_kwh[h_] > 0], dtype=np.int64)
    nHS = len(hs)
    K, N = g.n_branch, g.n_bus
    kl = np.asarray(
        [k for k in range(K) if np.isfinite(g.rating_kw[k]) and p.enforce_branches], dtype=np.int64
    )
    b = _Builder()
    eta_c, eta_d = p.bat_eta_c, p.bat_eta_d

    # -- columns (same order as pyomo_model.py declares them) ------------------------------------
    c_imp = b.cols((T, nS), 0.0, INF, w.c_import * dt)
    c_exp = b.cols((T, nS), 0.0, INF, -w.c_export * dt)
    pv = p.pv_sites
    shed = np.arange(nS if p.has_shed else 0, dtype=np.int64)
    c_curt = b.cols((T, len(pv)), 0.0, 0.0, w.c_curtail * dt)
    c_shed = b.cols((T, len(shed)), 0.0, INF, w.pen_shed * dt)
    c_ch = b.cols((T, nB), 0.0, p.bat_p_max_kw[None, :], -w.bat_w_charge * eta_c * dt)
    c_dis = b.cols((T, nB), 0.0, p.bat_p_max_kw[None, :], (w.bat_w_discharge / eta_d + w.c_throughput) * dt)
    c_ebat = b.cols((T, nB), p.bat_e_min_kwh[None, :], p.bat_e_max_kwh[None, :])
    c_hp = b.cols((T, nH), 0.0, p.hp_p_max_kw[None, :])
    c_unmet = b.cols((T, nH), 0.0, INF, w.pen_heat_unmet * dt)
    c_qch = b.cols((T, nHS), 0.0, INF, -w.ts_w_charge * dt)
    c_qdis = b.cols((T, nHS), 0.0, INF, (w.ts_w_discharge + w.c_throughput) * dt)
    c_ets = b.cols((T, nHS), 0.0, p.ts_e_max_kwh[hs][None, :])
    c_u = b.cols((T, nU), p.unit_p_min_kw[None, :], p.unit_p_max_kw[None, :])
    c_zu = b.cols((T, nU), -INF, INF, 1.0)
    root_lo = p.root_p_min_kw if np.isfinite(p.root_p_min_kw) else -INF
    root_hi = p.root_p_max_kw if np.isfinite(p.root_p_max_kw) else INF
    c_root = b.cols((T,), root_lo, root_hi)
    c_zroot = b.cols((T,), -INF, INF, 1.0)
    c_f = b.cols((T, K), -INF, INF)
    c_sup = b.cols((T, len(kl)), 0.0, INF, w.pen_branch * dt)
    c_sdn = b.cols((T, len(kl)), 0.0, INF, w.pen_branch * dt)
    v_lo = np.full(N, -INF)
    v_hi = np.full(N, INF)
    v_lo[g.root] = v_hi[g.root] = g.v_root_pu
    drop_rhs = np.zeros(K)
    if isinstance(g, DcGrid):  # angles: every island's reference fixed, phase shifts on the right
        v_lo[g.ref_bus] = v_hi[g.ref_bus] = g.ref_va_rad
        drop_rhs = -g.shift_rad
    c_v = b.cols((T, N), v_lo[None, :], v_hi[None, :])
    c_svu = b.cols((T, N), 0.0, INF, w.pen_voltage_per_pu)
    c_svd = b.cols((T, N), 0.0, INF, w.pen_voltage_per_pu)
    c_sst = b.cols((T,), 0.0, INF, w.pen_station * dt)
    c_sstf = b.cols((T,), 0.0, INF, w.pen_station * dt)

    # -- site balance: p_imp - p_exp - curt + shed - ch + dis - hp = base ------------------
    r_site = b.rows((T, nS), 0.0, 0.0)
    b.coef(r_site, c_imp, 1.0)
    b.coef(r_site, c_exp, -1.0)
    b.coef(r_site[:, pv], c_curt, -1.0)
    b.coef(r_site[:, shed], c_shed, 1.0)
    b.coef(r_site[:, p.bat_site], c_ch, -1.0)
    b.coef(r_site[:, p.bat_site], c_dis, 1.0)
    b.coef(r_site[:, p.hp_site], c_hp, -1.0)

    # -- heat balance: cop * hp + unmet + q_dis - q_ch = heat ------------------------------
    r_heat = b.rows((T, nH), 0.0, 0.0)
    b.coef(r_heat, c_hp, 3.0)
    b.coef(r_heat, c_unmet, 1.0)
    b.coef(r_heat[:, hs], c_qdis, 1.0)
    b.coef(r_heat[:, hs], c_qch, -1.0)

    # -- storage balances: e[t] - keep * e[t-1] - in + out = 0 (e[-1] on the RHS) ----------
    r_bat = b.rows((T, nB), 0.0, 0.0)
    b.coef(r_bat, c_ebat, 1.0)
    b.coef(r_bat[1:], c_ebat[:-1], -1.0)
    b.coef(r_bat, c_ch, -eta_c * dt)
    b.coef(r_bat, c_dis, dt / eta_d)
    r_ts = b.rows((T, nHS), 0.0, 0.0)
    b.coef(r_ts, c_ets, 1.0)
    b.coef(r_ts[1:], c_ets[:-1], -(1.0 - p.ts_loss_per_step))
    b.coef(r_ts, c_qch, -dt)
    b.coef(r_ts, c_qdis, dt)

    # -- bus balance: inflow - outflows - sites - units = fixed load -----------------------
    r_bus = b.rows((T, N), 0.0, 0.0)
    b.coef(r_bus[:, g.root], c_root, 1.0)
    b.coef(r_bus[:, g.child], c_f, 1.0)
    b.coef(r_bus[:, g.parent], c_f, -1.0)
    b.coef(r_bus[:, p.site_bus], c_imp, -1.0)
    b.coef(r_bus[:, p.site_bus], c_exp, 1.0)
    b.coef(r_bus[:, p.unit_bus], c_u, -1.0)

    # -- branch limits, voltage drop and band ---------------------------------------------
    r_bup = b.rows((T, len(kl)), -INF, g.rating_kw[kl][None, :])
    b.coef(r_bup, c_f[:, kl], 1.0)
    b.coef(r_bup, c_sup, -1.0)
    r_bdn = b.rows((T, len(kl)), -INF, g.rating_kw[kl][None, :])
    b.coef(r_bdn, c_f[:, kl], -1.0)
    b.coef(r_bdn, c_sdn, -1.0)
    r_vd = b.rows((T, K), drop_rhs[None, :], drop_rhs[None, :])
    b.coef(r_vd, c_v[:, g.child], 1.0)
    b.coef(r_vd, c_v[:, g.parent], -1.0)
    b.coef(r_vd, c_f, g.r_pu_per_kw[None, :])
    vmax = g.v_max_pu if p.enforce_voltage else np.full(N, BIG)
    vmin = g.v_min_pu if p.enforce_voltage else np.full(N, -BIG)
    r_vup = b.rows((T, N), -INF, vmax[None, :])
    b.coef(r_vup, c_v, 1.0)
    b.coef(r_vup, c_svu, -1.0)
    r_vdn = b.rows((T, N), -INF, -vmin[None, :])
    b.coef(r_vdn, c_v, -1.0)
    b.coef(r_vdn, c_svd, -1.0)

    # -- HV/MV station (limits set per call) -----------------------------------------------
    # (with several feeding points their import is the slack's plus the feeding units': -u)
    feed = p.feed_units
    r_st = b.rows((T,), -INF, BIG)
    b.coef(r_st, c_root, 1.0)
    b.coef(r_st[:, None], c_u[:, feed], -1.0)
    b.coef(r_st, c_sst, -1.0)
    r_stf = b.rows((T,), -INF, BIG)
    b.coef(r_stf, c_root, -1.0)
    b.coef(r_stf[:, None], c_u[:, feed], 1.0)
    b.coef(r_stf, c_sstf, -1.0)

    # -- piecewise-linear unit and root costs (epigraph rows, as pyomo_model.py) -----------------
    nseg = max([len(c.slopes) for c in p.unit_cost] + [1])
    r_uepi = np.full((T, nU, nseg), -1, dtype=np.int64)
    for k in range(nseg):
        units = [u for u in range(nU) if k < len(p.unit_cost[u].slopes)]
        if not units:
            continue
        ua = np.asarray(units, dtype=np.int64)
        off = np.asarray([p.unit_cost[u].offsets[k] for u in units])
        slope = np.asarray([p.unit_cost[u].slopes[k] * float(p.unit_sign[u]) for u in units])
        r = b.rows((T, len(units)), off[None, :], INF)
        r_uepi[:, ua, k] = r
        b.coef(r, c_zu[:, ua], 1.0)
        b.coef(r, c_u[:, ua], -slope[None, :])
    rc = p.root_cost
    if rc is not None:
        r_repi = np.zeros((T, len(rc.slopes)), dtype=np.int64)
        for k in range(len(rc.slopes)):
            r = b.rows((T,), rc.offsets[k], INF)
            r_repi[:, k] = r
            b.coef(r, c_zroot, 1.0)
            b.coef(r, c_root, -rc.slopes[k])
    else:
        r = b.rows((T,), 0.0, 0.0)
        r_repi = r[:, None]
        b.coef(r, c_zroot, 1.0)
    bup = np.full((T, K), -1, dtype=np.int64)
    bdn = np.full((T, K), -1, dtype=np.int64)
    bup[:, kl] = r_bup
    bdn[:, kl] = r_bdn

    curt_all = np.full((T, nS), -1, dtype=np.int64)
    curt_all[:, pv] = c_curt
    shed_all = np.full((T, nS), -1, dtype=np.int64)
    shed_all[:, shed] = c_shed
    sup = np.full((T, K), -1, dtype=np.int64)
    sdn = np.full((T, K), -1, dtype=np.int64)
    sup[:, kl] = c_sup
    sdn[:, kl] = c_sdn
    a = b.csc()
    status = h.passModel(
        b.n_cols,
        b.n_rows,
        a.nnz,
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        0.0,
        _cat(b.cost),
        _cat(b.col_lo),
        _cat(b.col_hi),
        _cat(b.row_lo),
        _cat(b.row_hi),
        a.indptr.astype(np.int32),
        a.indices.astype(np.int32),
        a.data.astype(float),
        np.zeros(b.n_cols, dtype=np.int32),  # all continuous
    )
    if status != highspy.HighsStatus.kOk:
        raise RuntimeError(f"HiGHS passModel returned {status}")
    return LpIndex(
        c_imp=c_imp,
        c_exp=c_exp,
        c_curt=curt_all,
        c_shed=shed_all,
        c_ch=c_ch,
        c_dis=c_dis,
        c_ebat=c_ebat,
        c_hp=c_hp,
        c_unmet=c_unmet,
        c_qch=c_qch,
        c_qdis=c_qdis,
        c_ets=c_ets,
        c_u=c_u,
        c_root=c_root,
        c_f=c_f,
        c_v=c_v,
        c_sup=sup,
        c_sdn=sdn,
        c_svu=c_svu,
        c_svd=c_svd,
        c_sst=c_sst,
        c_sstf=c_sstf,
        r_site=r_site,
        r_heat=r_heat,
        r_bat=r_bat,
        r_ts=r_ts,
        r_bus=r_bus,
        r_st=r_st,
        r_stf=r_stf,
        hs=hs,
        n_cols=b.n_cols,
        n_rows=b.n_rows,
        r_vdrop=r_vd,
        r_branch_up=bup,
        r_branch_dn=bdn,
        r_v_up=r_vup,
        r_v_dn=r_vdn,
        c_zu=c_zu,
        r_unit_epi=r_uepi,
        c_zroot=c_zroot,
        r_root_epi=r_repi,
    )
