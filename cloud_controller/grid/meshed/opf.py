"""The DC optimal power flow of a `DcNetwork` in HiGHS: the B-theta formulation, linear or quadratic costs.

Formulation (MATPOWER manual §6.1, "DC OPF", as pandapower's `rundcopp` states it):
variables the bus angles ``va`` (rad), the unit injections ``p`` (MW), the branch flows
``f`` (MW) and, per piecewise-linear cost, one epigraph variable ``y`` (€);

    min   Σ c2 p² + c1 p + c0 + Σ y
    s.t.  Σ_{k from n} f_k - Σ_{k to n} f_k - Σ_{g at n} p_g = -fixed_load_n    (per bus)
          f_k = base_mva · b_k · (va_f - va_t - shift_k)                         (per branch)
          y_g >= slope_j · p_g + offset_j                                       (per PWL segment)
          |f_k| <= rating_k,  p_min <= p <= p_max,  va_ref = its ext_grid's va_degree.

Why angles and explicit flows instead of a PTDF: the rows stay as sparse as the network
(two non-zeros per branch end), every island and every reference bus is just a fixed
angle, and the flows and the binding limits are read off the columns. Quadratic costs go
to HiGHS's QP solver through `passHessian` (exact); `DcOpfOptions(costs="pwl")` replaces
them by chords with a stated objective error instead (`costs.approximate_quadratic`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import highspy
import numpy as np
import scipy.sparse as sp

from cloud_controller.grid.meshed.costs import approximate_quadratic
from cloud_controller.grid.meshed.network import DcNetwork, FloatArray, IntArray, PwlSegments
from protocols.errors import GridflexError

BINDING_REL_TOL = 1e-6  # a flow within this fraction of its rating is reported as binding
QP_REGULARIZATION = 0.0


class DcOpfInfeasible(GridflexError):
    """HiGHS found no optimum: the limits cannot all hold (rundcopp fails on the same net)."""


@dataclass(frozen=True)
class DcOpfOptions:
    """How `solve_dc_opf` answers.

    `costs`: "exact" solves quadratic costs as a QP; "pwl" replaces them by chord segments
    whose summed error stays within `pwl_max_error_eur`. `engine`: "auto" lets
    `choose_engine` pick; "meshed" or "radial" forces one.
    """

    costs: Literal["exact", "pwl"] = "exact"
    pwl_max_error_eur: float = 0.01
    engine: Literal["auto", "meshed", "radial"] = "auto"
    threads: int = 1


@dataclass(frozen=True)
class DcOpfResult:
    """The optimum: objective, each unit's injection, branch flows, binding branches, bus angles."""

    objective_eur: float  # the true (polynomial or pwl) cost of the dispatch, constants included
    objective_error_bound_eur: float  # the exact optimum lies in [objective - bound, objective]
    engine: str  # "meshed" or "radial": which engine answered
    reason: str  # why that engine
    unit_names: tuple[str, ...]
    p_mw: FloatArray  # injection per unit (a controllable load's is minus its consumption)
    branch_names: tuple[str, ...]
    flow_mw: FloatArray  # from-side flow (hv side of a transformer)
    rating_mw: FloatArray
    binding: tuple[str, ...]  # branches whose flow sits at its rating
    bus_ids: IntArray
    va_degree: FloatArray
    lmp_eur_per_mw: FloatArray  # the balance rows' duals: marginal cost of 1 MW more load at each bus
    pwl_segments: tuple[int, ...]  # per unit, the chords its quadratic cost was replaced by (0: none)

    def p_of(self, name: str) -> float:
        """Injection of the unit "table:index" (e.g. "gen:2") in MW."""
        return float(self.p_mw[self.unit_names.index(name)])


def _incidence(net: DcNetwork) -> sp.csr_matrix:
    k = np.arange(net.n_branch)
    data = np.concatenate([np.ones(net.n_branch), -np.ones(net.n_branch)])
    return sp.csr_matrix(
        (data, (np.concatenate([net.branch_from, net.branch_to]), np.concatenate([k, k]))),
        shape=(net.n_bus, net.n_branch),
    )


def _binding(net: DcNetwork, flow: FloatArray) -> tuple[str, ...]:
    rate = net.branch_rating_mw
    hit = np.isfinite(rate) & (np.abs(flow) >= rate * (1 - BINDING_REL_TOL) - 1e-9)
    return tuple(net.branch_names[k] for k in np.flatnonzero(hit))


def implied_range(net: DcNetwork) -> tuple[FloatArray, FloatArray]:
    """Unit limits closed by each island's balance: a slack can only supply what the rest leaves.

    ``p_g = load - Σ_{other units} p``, so ``p_g`` lies in ``[load - Σ p_max, load - Σ p_min]``
    of the others of its island; used to give an unbounded ext_grid a finite PWL range.
    """
    lo, hi = net.unit_p_min_mw.copy(), net.unit_p_max_mw.copy()
    isl = net.island[net.unit_bus]
    for k in range(net.n_island):
        load = float(net.fixed_load_mw[net.island == k].sum())
        members = np.flatnonzero(isl == k)
        for g in members:
            others = members[members != g]
            lo[g] = max(lo[g], load - float(net.unit_p_max_mw[others].sum()))
            hi[g] = min(hi[g], load - float(net.unit_p_min_mw[others].sum()))
    return lo, hi


@dataclass(frozen=True)
class _Costs:
    c1: FloatArray
    c2: FloatArray
    pwl: tuple[PwlSegments | None, ...]
    n_segments: tuple[int, ...]
    error_bound_eur: float


def _costs(net: DcNetwork, opts: DcOpfOptions) -> _Costs:
    """The costs the model holds: as given, or with every quadratic replaced by chords."""
    c1, c2 = net.cost_c1_eur_per_mw.copy(), net.cost_c2_eur_per_mw2.copy()
    pwl = list(net.cost_pwl)
    if opts.costs != "pwl" or not np.any(c2 != 0):
        return _Costs(c1, c2, tuple(pwl), (0,) * net.n_unit, 0.0)
    lo, hi = implied_range(net)
    approx = approximate_quadratic(c1, c2, lo, hi, opts.pwl_max_error_eur)
    for g, seg in enumerate(approx.segments):
        if seg is not None:
            pwl[g], c1[g], c2[g] = seg, 0.0, 0.0
    return _Costs(c1, c2, tuple(pwl), approx.n_segments, approx.error_bound_eur)


def _pwl_rows(seg: PwlSegments, p_col: int, y_col: int, n_col: int) -> sp.csr_matrix:
    """``y - slope_j p >= offset_j`` for every segment j (the epigraph of a convex PWL cost)."""
    m = len(seg.slope_eur_per_mw)
    data = np.concatenate([-seg.slope_eur_per_mw, np.ones(m)])
    rows = np.concatenate([np.arange(m), np.arange(m)])
    cols = np.concatenate([np.full(m, p_col), np.full(m, y_col)])
    return sp.csr_matrix((data, (rows, cols)), shape=(m, n_col))


def _pass_model(h: Any, net: DcNetwork, costs: _Costs) -> list[int]:
    """Columns va | p | f | y and rows balance | flow | PWL into HiGHS; returns the PWL units."""
    N, G, K = net.n_bus, net.n_unit, net.n_branch
    has_pwl = [g for g in range(G) if costs.pwl[g] is not None]
    n_y = len(has_pwl)
    n_col = N + G + K + n_y
    va_lo, va_hi = np.full(N, -np.inf), np.full(N, np.inf)
    va_lo[net.ref_bus] = va_hi[net.ref_bus] = net.ref_va_rad
    rate = net.branch_rating_mw
    col_lo = np.concatenate([va_lo, net.unit_p_min_mw, -rate, np.full(n_y, -np.inf)])
    col_hi = np.concatenate([va_hi, net.unit_p_max_mw, rate, np.full(n_y, np.inf)])
    cost = np.concatenate([np.zeros(N), costs.c1, np.zeros(K), np.ones(n_y)])
    inc = _incidence(net)
    unit_at = sp.csr_matrix((np.ones(G), (net.unit_bus, np.arange(G))), shape=(N, G))
    sb = net.base_mva * net.branch_b_pu
    blocks = [
        sp.hstack([sp.csr_matrix((N, N)), -unit_at, inc, sp.csr_matrix((N, n_y))]),
        sp.hstack([-sp.diags(sb) @ inc.T, sp.csr_matrix((K, G)), sp.identity(K), sp.csr_matrix((K, n_y))]),
    ]
    row_lo = [-net.fixed_load_mw, -sb * net.branch_shift_rad]
    row_hi = [-net.fixed_load_mw, -sb * net.branch_shift_rad]
    for j, g in enumerate(has_pwl):
        seg = costs.pwl[g]
        assert seg is not None
        blocks.append(_pwl_rows(seg, N + g, N + G + K + j, n_col))
        row_lo.append(seg.offset_eur)
        row_hi.append(np.full(len(seg.offset_eur), np.inf))
    a = sp.vstack(blocks).tocsc()
    inf = highspy.kHighsInf
    status = h.passModel(
        n_col,
        a.shape[0],
        a.nnz,
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        0.0,
        cost,
        np.clip(col_lo, -inf, inf),
        np.clip(col_hi, -inf, inf),
        np.clip(np.concatenate(row_lo), -inf, inf),
        np.clip(np.concatenate(row_hi), -inf, inf),
        a.indptr.astype(np.int32),
        a.indices.astype(np.int32),
        a.data.astype(float),
        np.zeros(n_col, dtype=np.int32),
    )
    if status != highspy.HighsStatus.kOk:
        raise RuntimeError(f"HiGHS passModel returned {status}")
    quad = np.flatnonzero(costs.c2 != 0)
    if len(quad):
        if np.any(costs.c2[quad] < 0):
            raise DcOpfInfeasible("a negative quadratic cost makes the problem non-convex")
        # HiGHS minimises c'x + ½ x'Qx: Q's diagonal holds 2 c2 (the lower triangle is enough)
        cols = N + quad
        start = np.zeros(n_col + 1, dtype=np.int32)
        start[cols + 1] = 1
        h.passHessian(
            n_col,
            len(quad),
            int(highspy.HessianFormat.kTriangular),
            np.cumsum(start).astype(np.int32),
            cols.astype(np.int32),
            2.0 * costs.c2[quad],
        )
    return has_pwl


def solve_network(net: DcNetwork, options: DcOpfOptions | None = None, *, reason: str = "") -> DcOpfResult:
    """Build the B-theta DC-OPF of `net` in HiGHS, solve it, read the optimum back."""
    from cloud_controller.dispatch.highs.quiet import quiet_highs  # no banner on stdout
    from cloud_controller.dispatch.highs.threads import process_threads  # one thread count per process

    opts = options or DcOpfOptions()
    N, G, K = net.n_bus, net.n_unit, net.n_branch
    costs = _costs(net, opts)
    h: Any = quiet_highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", process_threads(opts.threads))
    # the QP solver adds qp_regularization_value · x² on every column by default (1e-7): on MW-sized
    # flows that moves the optimum by ~1e-3 MW (measured on case118), so it is switched off
    h.setOptionValue("qp_regularization_value", QP_REGULARIZATION)
    has_pwl = _pass_model(h, net, costs)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise DcOpfInfeasible(f"HiGHS: {h.modelStatusToString(h.getModelStatus())}")
    sol = h.getSolution()
    x = np.asarray(sol.col_value)
    p, f = x[N : N + G], x[N + G : N + G + K]
    true_cost = float(np.sum(net.cost_c0_eur + net.cost_c1_eur_per_mw * p + net.cost_c2_eur_per_mw2 * p**2))
    if opts.costs == "exact":
        true_cost += float(np.sum(x[N + G + K : N + G + K + len(has_pwl)]))
    else:
        true_cost += _pwl_given(net, p)
    return DcOpfResult(
        objective_eur=true_cost,
        objective_error_bound_eur=costs.error_bound_eur,
        engine="meshed",
        reason=reason,
        unit_names=net.unit_names,
        p_mw=p.copy(),
        branch_names=net.branch_names,
        flow_mw=f.copy(),
        rating_mw=net.branch_rating_mw.copy(),
        binding=_binding(net, f),
        bus_ids=net.bus_ids.copy(),
        va_degree=np.rad2deg(x[:N]),
        lmp_eur_per_mw=-np.asarray(sol.row_dual)[:N],
        pwl_segments=costs.n_segments,
    )


def _pwl_given(net: DcNetwork, p: FloatArray) -> float:
    """The user's own piecewise-linear costs at `p` (approximated quadratics are costed exactly above)."""
    total = 0.0
    for g, seg in enumerate(net.cost_pwl):
        if seg is not None:
            total += float(np.max(seg.slope_eur_per_mw * p[g] + seg.offset_eur))
    return total
