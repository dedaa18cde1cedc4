"""The whole selection LP warm-started from the fixed-share blocks' summed answer (crossover, then simplex).

Why: on a request the portfolio meets over a day the fixed shares are not certified (the
blocks' step prices differ), and the whole LP from the "nothing activated" basis spends
about one dual-simplex pivot per SOC or zone row, each dear at this size (1,000 buildings
× 96 steps: ~60,000 pivots). The blocks' sum is a feasible point of the whole LP near its
optimum, so HiGHS's crossover turns it into a basis and the simplex goes on from there
with fewer pivots (the benchmark's day: about half the pivots of the crash start).

Exact: the simplex ends at an optimum of the same whole LP; the relaxation is then kept
only under `selection._solve`'s certificate (no exclusivity cell with both up and dn, every
other binary integral). Anything else — crossover without a valid basis, a simplex that is
not optimal, a relaxation that is not certified — returns None and `select` solves the
whole LP from its crash basis, as before (counted in `Selection.fallbacks`).
"""

from __future__ import annotations

import time
from typing import Any

import highspy
import numpy as np
from scipy.sparse.linalg import spsolve

from cloud_controller.dr.blocks import Solved
from cloud_controller.dr.inputs import MilpInputs, needs_binary
from cloud_controller.dr.matrix import MilpIndex, build_milp
from cloud_controller.dr.problem import FloatArray
from cloud_controller.highs.quiet import quiet_highs

__all__ = ["solve_warm", "warm_point"]


def warm_point(x: MilpInputs, ix: MilpIndex, up_kw: FloatArray, dn_kw: FloatArray) -> FloatArray:
    """Every column of the whole LP at the (netted) source kW `up_kw`, `dn_kw`.

    The exclusivity z is up/U (then up ≤ U·z and, netted, dn = 0 ≤ D·(1 − z)); the SOC,
    zone, partial-sum and unmet columns follow from their defining rows, which with those
    columns form a triangular system (`matrix.crash_basis`).
    """
    if ix.a is None or ix.row_lo is None:
        raise ValueError("the index holds no matrix: build it with build_milp")
    col = np.zeros(ix.n_cols)
    col[ix.up.ravel()] = up_kw.ravel()
    col[ix.dn.ravel()] = dn_kw.ravel()
    if ix.z.size:
        rr, tt = np.nonzero(needs_binary(x))
        cap = x.up_max[rr, tt]
        col[ix.z] = np.where(cap > 0, up_kw[rr, tt] / np.where(cap > 0, cap, 1.0), 0.0)
    chain = ix.a[ix.chain_rows]
    rest = chain @ col
    col[ix.chain_cols] = spsolve(chain[:, ix.chain_cols].tocsc(), ix.row_lo[ix.chain_rows] - rest)
    return col


def solve_warm(
    x: MilpInputs, up_kw: FloatArray, dn_kw: FloatArray, *, time_limit_s: float, tol_kw: float
) -> tuple[Solved | None, str]:
    """The whole LP from the point (`up_kw`, `dn_kw`): crossover, then dual simplex; (answer, "") or (None, why)."""
    t0 = time.perf_counter()
    h = quiet_highs()
    h.setOptionValue("time_limit", time_limit_s)
    ix = build_milp(x, h, keep_matrix=True)
    if ix.integer.size:
        zeros = np.zeros(ix.integer.size, dtype=np.uint8)
        h.changeColsIntegrality(ix.integer.size, ix.integer.astype(np.int32), zeros)
    net = up_kw - dn_kw
    col = warm_point(x, ix, np.maximum(net, 0.0), np.maximum(-net, 0.0))
    t1 = time.perf_counter()
    assert ix.a is not None
    sol = highspy.HighsSolution()
    sol.col_value = list(col)
    sol.row_value = list(ix.a @ col)
    sol.value_valid = True
    sol.dual_valid = False
    h.crossover(sol)
    if int(h.getInfo().basis_validity) != 1:
        return None, "the crossover found no basis"
    basis: Any = h.getBasis()
    h.setOptionValue("presolve", "off")
    h.setOptionValue("simplex_strategy", 1)  # dual
    h.setBasis(basis)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None, f"the warm simplex ended {h.modelStatusToString(h.getModelStatus())}"
    sol = h.getSolution()
    v = np.asarray(sol.col_value, dtype=np.float64)
    route = "lp-warm"
    if ix.integer.size:
        others = np.setdiff1d(ix.integer, ix.z)
        integral = bool(np.all(np.abs(v[others] - np.round(v[others])) <= 1e-6))
        if not (integral and bool(np.all(np.minimum(v[ix.up], v[ix.dn]) <= tol_kw))):
            return None, "the warm relaxation is not integral where its binaries are"
        route = "lp-warm-certified"
    price = np.asarray(sol.row_dual, dtype=np.float64)[ix.step_rows] if sol.dual_valid else None
    solved = Solved(
        up_kw=v[ix.up],
        dn_kw=v[ix.dn],
        unmet_kw=v[ix.unmet],
        route=route,
        status="Optimal",
        step_price=price,
        mip_gap=0.0,
        build_s=t1 - t0,
        solve_s=time.perf_counter() - t1,
    )
    return solved, ""
