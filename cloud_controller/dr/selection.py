"""Multi-building selection (O'Connell & Keane 2021 §4): which sites and sources answer a DR request.

A MILP over sources × steps solved by HiGHS, with the seed's objectives as options:

- `flexibility` — its eq. (17), max Σ_s f_s(t_j): as much of the request as the portfolio gives;
- `financial` — Siebert's eq. (18), max Σ_t,r P(t,r)·W(t)·u_t, with W(t) the seed's weight
  in [0, 2.5] or, as the seed prefers, a real price (€/kWh), then minus what the sites are
  paid (their contracts' price): a site dearer than the request is left out;
- `bid_length` — eqs. (20)-(21), max Σ_t Bid(t) subject to Σ_r Res·E ≥ Bid(t)·P_min;
- `power_peak` — eq. (22), max max_t Σ_r Res·E (the highest step's delivery);
- `min_cost` — meet the request at least cost, including the batteries' charge and
  discharge losses (the gap the seed names in Ottesen's eq. (23)).

Constraints: a source gives flexibility up or down in a step, never both (a binary per
source and step; without it a full battery would "absorb" power by charging and
discharging at once and burning the difference); SOC between its floor and ceiling every
step; the zone inside its comfort band every step (RC model); CO2 ≤ its limit through the
fan's cap (`flexmodels.ventilation`: any share of the safe reduction is safe); contract
limits per site; and, beyond the seed, per-feeder headroom so a selection never moves a
feeder over its limit. Sources are partial where the physics allows (the seed's own
critique of a binary Res); on/off sources deliver all of E(t,r) or nothing.

A request the portfolio cannot meet answers `partial` with the unmet kW of every step —
never a silent fallback; an objective that leaves steps short says so the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import highspy
import numpy as np

from cloud_controller.dispatch.highs.quiet import quiet_highs
from cloud_controller.dr.inputs import IntArray, MilpInputs, inputs_of, source_costs
from cloud_controller.dr.matrix import build_milp
from cloud_controller.dr.problem import (
    Feeder,
    FloatArray,
    Selection,
    SelectionError,
    SelectionRequest,
    SiteLimit,
    Source,
    validate,
)

__all__ = ["SelectionOptions", "select"]

Builder = Literal["matrix", "pyomo"]
Route = Literal["lp", "lp-certified", "milp"]


@dataclass(frozen=True)
class SelectionOptions:
    """How to build and solve: `matrix` (numpy, fast) or `pyomo` (the statement); HiGHS's MIP gap and time limit."""

    builder: Builder = "matrix"
    mip_rel_gap: float = 1e-6
    time_limit_s: float = 60.0
    tolerance_kw: float = 1e-6


def select(
    request: SelectionRequest,
    sources: Sequence[Source],
    *,
    limits: Sequence[SiteLimit] = (),
    feeders: Sequence[Feeder] = (),
    options: SelectionOptions = SelectionOptions(),
) -> Selection:
    """Select sources × steps for `request`; raise `SelectionError` on bad input, never fall back."""
    validate(request, sources, limits, feeders)
    t0 = time.perf_counter()
    x = inputs_of(request, sources, limits, feeders)
    h = quiet_highs()
    h.setOptionValue("mip_rel_gap", options.mip_rel_gap)
    h.setOptionValue("time_limit", options.time_limit_s)
    if options.builder == "pyomo":
        from cloud_controller.dr.pyomo_model import load_pyomo

        up_ix, dn_ix, unmet_ix, z_ix = load_pyomo(x, h)
    else:
        ix = build_milp(x, h)
        up_ix, dn_ix, unmet_ix, z_ix = ix.up, ix.dn, ix.unmet, ix.z
    t1 = time.perf_counter()
    route = _solve(h, up_ix, dn_ix, z_ix, options.tolerance_kw)
    t2 = time.perf_counter()
    status = h.modelStatusToString(h.getModelStatus())
    if status not in ("Optimal", "Time limit reached"):
        raise SelectionError(f"HiGHS: {status} (the unmet columns make every request feasible: a bug)")
    col = np.asarray(h.getSolution().col_value, dtype=np.float64)
    feasible = int(h.getInfo().primal_solution_status) == 2  # kSolutionStatusFeasible
    if col.size == 0 or not feasible:
        # a time-limited simplex holds a point that breaks rows: never answer with it
        raise SelectionError(
            f"HiGHS: {status} after {time.perf_counter() - t1:.1f} s without a feasible selection"
        )
    net = col[up_ix] - col[dn_ix]  # netting: a source gives up or down, never both (see inputs.needs_binary)
    up = np.maximum(net, 0.0)
    dn = np.maximum(-net, 0.0)
    unmet = np.maximum(col[unmet_ix], 0.0)
    unmet[unmet < options.tolerance_kw] = 0.0
    delivered = x.target_abs_kw - unmet
    flex = {(s.site, s.asset): up[i] - dn[i] for i, s in enumerate(sources)}
    info = h.getInfo()
    notes: tuple[str, ...] = () if status == "Optimal" else (f"HiGHS stopped: {status}",)
    return Selection(
        status="partial" if np.any(unmet > 0) else "full",
        objective=request.objective,
        objective_value=_objective_value(x, up, dn, delivered),
        delivered_kw=delivered,
        unmet_kw=unmet,
        flex_kw=flex,
        mip_gap=float(getattr(info, "mip_gap", 0.0)),
        build_s=t1 - t0,
        solve_s=t2 - t1,
        builder=options.builder,
        route=route,
        notes=notes,
    )


def _solve(h: Any, up_ix: IntArray, dn_ix: IntArray, z_ix: IntArray, tol_kw: float) -> Route:
    """Solve the LP relaxation first; keep it when it is certified integral, else solve the MILP.

    Certified: every binary other than the exclusivity z's is integral, and no exclusivity
    cell has both up and dn above the tolerance (then z = [up > 0] is integral and the same
    point: the relaxation's bound is met by an integer solution, so it is optimal). The
    binaries' presolve, probing and heuristics are most of HiGHS's time on a large
    selection whose relaxation is already integral; when it is not, the MILP decides
    (route `milp`), never the relaxation.
    """
    lp = h.getLp()
    n = int(lp.num_col_)
    kinds = (
        np.array([int(v) for v in lp.integrality_], dtype=np.int64) if len(lp.integrality_) else np.zeros(n)
    )
    integer = np.flatnonzero(kinds == int(highspy.HighsVarType.kInteger))
    if integer.size == 0:
        h.run()
        return "lp"
    zeros = np.zeros(integer.size, dtype=np.uint8)
    h.changeColsIntegrality(integer.size, integer.astype(np.int32), zeros)
    h.run()
    if h.getModelStatus() == highspy.HighsModelStatus.kTimeLimit:
        return "lp"  # out of time in the relaxation: `select` refuses the point unless it is feasible
    if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        col = np.asarray(h.getSolution().col_value, dtype=np.float64)
        others = np.setdiff1d(integer, z_ix)
        integral = bool(np.all(np.abs(col[others] - np.round(col[others])) <= 1e-6))
        exclusive = bool(np.all(np.minimum(col[up_ix], col[dn_ix]) <= tol_kw))
        if integral and exclusive:
            return "lp-certified"
    h.changeColsIntegrality(integer.size, integer.astype(np.int32), np.ones(integer.size, dtype=np.uint8))
    h.run()
    return "milp"


def _objective_value(x: MilpInputs, up: FloatArray, dn: FloatArray, delivered: FloatArray) -> float:
    """The objective in its own unit: kWh, € (or weighted kWh), steps, kW, €."""
    dt = x.dt_h
    if x.objective == "flexibility":
        return float(delivered.sum() * dt)
    if x.objective == "bid_length":
        return float(np.sum(delivered >= x.bid_min_kw - 1e-6))
    if x.objective == "power_peak":
        return float(delivered.max(initial=0.0))
    c_up, c_dn = source_costs(x)
    paid = float((c_up * up).sum() + (c_dn * dn).sum())
    if x.objective == "financial":
        return float((x.value * delivered).sum() * dt) - paid
    return paid  # min_cost
