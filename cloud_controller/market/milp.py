"""The clearing MILP as one sparse matrix for HiGHS (highspy), built from offers, needs and grid rows.

Columns: a_o (activation factor of each usable option, [0, 1]), u_o (a binary per lumpy
option, min_o > 0), short_n (shortfall per need, ≥ 0). Rows: one cover row per need
(Σ cover·kW·a + short ≥ need, cover 1 but in a mesh), two per lumpy option (a − min·u ≥ 0, a − u ≤ 0), one per other
element and ISP (Σ sens·kW·a ≤ headroom). `clearing.py` states the model and its sources;
this module only builds and solves it. pyomo is not used: 1,000 offers × 96 ISPs is
~10^5 coefficients, which its expression build turns into most of the time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from cloud_controller.market.products import ISP_S, FlexOffer, MarketRefusal, OfferOption

if TYPE_CHECKING:
    from cloud_controller.market.clearing import GridRow

__all__ = ["MilpSolution", "solve_milp"]

Need = tuple[str, datetime, float]  # congestion point, ISP start, kW


@dataclass(frozen=True)
class MilpSolution:
    """Activation factor per option, shortfall per (congestion point, ISP), and HiGHS's gap."""

    factors: list[float]
    short_kw: dict[tuple[str, datetime], float]
    mip_gap: float


@dataclass
class _Matrix:
    """Coordinates, row bounds and the next free row of the constraint matrix being built."""

    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(self.lo)

    def row(self, terms: Sequence[tuple[int, float]], lo: float, hi: float) -> None:
        r = self.n_rows
        for c, v in terms:
            self.rows.append(r)
            self.cols.append(c)
            self.vals.append(v)
        self.lo.append(lo)
        self.hi.append(hi)


def _cover_rows(
    mat: _Matrix,
    usable: Sequence[tuple[FlexOffer, OfferOption]],
    needs: Sequence[Need],
    c_s0: int,
    cover_per_kw: Mapping[str, float],
) -> None:
    by_need: dict[tuple[str, datetime], list[tuple[int, float]]] = {(cp, t): [] for cp, t, _ in needs}
    for i, (off, opt) in enumerate(usable):
        per_kw = cover_per_kw.get(off.offer_id, 1.0)
        for t, kw in opt.kw.items():
            terms = by_need.get((off.congestion_point, t))
            if terms is not None and kw * per_kw:
                terms.append((i, kw * per_kw))
    for n, (cp, t, need) in enumerate(needs):
        mat.row([*by_need[(cp, t)], (c_s0 + n, 1.0)], need, np.inf)


def _grid_rows(
    mat: _Matrix, usable: Sequence[tuple[FlexOffer, OfferOption]], grid_rows: Sequence[GridRow]
) -> None:
    for row in grid_rows:
        loaded = [(i, off.sensitivity.get(row.element, 0.0), opt) for i, (off, opt) in enumerate(usable)]
        loaded = [(i, sens, opt) for i, sens, opt in loaded if sens]
        for t, headroom in sorted(row.headroom_kw.items()):
            terms = [(i, sens * opt.kw.get(t, 0.0)) for i, sens, opt in loaded if opt.kw.get(t, 0.0)]
            # a row that every offer at full activation cannot reach is left out (a <= 1): most
            # of an element-by-ISP grid never binds, and HiGHS would carry it anyway
            if terms and sum(v for _, v in terms if v > 0) > headroom:
                mat.row(terms, -np.inf, headroom)


def solve_milp(
    usable: Sequence[tuple[FlexOffer, OfferOption]],
    needs: Sequence[Need],
    value_eur_per_kwh: Mapping[str, float],
    grid_rows: Sequence[GridRow],
    *,
    time_limit_s: float,
    mip_rel_gap: float,
    cover_per_kw: Mapping[str, float] | None = None,
) -> MilpSolution:
    """Build and solve; a time limit with a feasible clearing returns it with its gap, else refuses.

    `cover_per_kw`: kW of relief at its congestion point per kW ordered, per offer id (1
    where absent; less inside a meshed grid, where the offer's sites relieve it by PTDF).
    """
    import highspy
    from scipy.sparse import coo_matrix

    from cloud_controller.highs.quiet import quiet_highs

    n_opt = len(usable)
    lumpy = [i for i, (_, opt) in enumerate(usable) if opt.min_activation_factor > 0.0]
    c_u0, c_s0 = n_opt, n_opt + len(lumpy)
    n_cols = c_s0 + len(needs)
    cost = np.zeros(n_cols)
    cost[:n_opt] = [opt.price_eur_per_kwh * opt.energy_kwh() for _, opt in usable]
    cost[c_s0:] = [value_eur_per_kwh[cp] * ISP_S / 3600.0 for cp, _, _ in needs]
    col_hi = np.ones(n_cols)
    col_hi[c_s0:] = np.inf
    mat = _Matrix()
    _cover_rows(mat, usable, needs, c_s0, cover_per_kw or {})
    for j, i in enumerate(lumpy):
        m_i = usable[i][1].min_activation_factor
        mat.row([(i, 1.0), (c_u0 + j, -m_i)], 0.0, np.inf)
        mat.row([(i, 1.0), (c_u0 + j, -1.0)], -np.inf, 0.0)
    _grid_rows(mat, usable, grid_rows)
    a = coo_matrix((mat.vals, (mat.rows, mat.cols)), shape=(mat.n_rows, n_cols)).tocsc()
    integrality = np.zeros(n_cols, dtype=np.int32)
    integrality[c_u0:c_s0] = 1
    h = quiet_highs()
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    status = h.passModel(
        n_cols,
        mat.n_rows,
        a.nnz,
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        0.0,
        cost,
        np.zeros(n_cols),
        col_hi,
        np.asarray(mat.lo, dtype=float),
        np.asarray(mat.hi, dtype=float),
        a.indptr.astype(np.int32),
        a.indices.astype(np.int32),
        a.data.astype(float),
        integrality,
    )
    if status != highspy.HighsStatus.kOk:
        raise MarketRefusal("clearing", f"HiGHS refused the model: {status}")
    h.run()
    model_status = h.getModelStatus()
    info = h.getInfo()
    timed_out_feasible = (
        model_status == highspy.HighsModelStatus.kTimeLimit and info.primal_solution_status == 2
    )
    if model_status != highspy.HighsModelStatus.kOptimal and not timed_out_feasible:
        raise MarketRefusal("clearing", f"HiGHS ended {h.modelStatusToString(model_status)}, no orders")
    x = np.asarray(h.getSolution().col_value)
    return MilpSolution(
        factors=[round(float(v), 9) for v in x[:n_opt]],
        short_kw={(cp, t): float(x[c_s0 + n]) for n, (cp, t, _) in enumerate(needs)},
        mip_gap=float(info.mip_gap) if lumpy else 0.0,
    )
