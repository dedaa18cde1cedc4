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
from dataclasses import dataclass, replace
from typing import Any, Literal

import highspy
import numpy as np

from cloud_controller.dispatch.highs.quiet import quiet_highs
from cloud_controller.dr.blocks import SEPARABLE, Solved, solve_by_blocks
from cloud_controller.dr.inputs import IntArray, MilpInputs, inputs_of, source_costs
from cloud_controller.dr.matrix import build_milp, crash_basis
from cloud_controller.dr.prices import solve_by_prices
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
from cloud_controller.dr.warm import solve_warm

__all__ = ["SelectionOptions", "select"]

Builder = Literal["matrix", "pyomo"]
Route = Literal["lp", "lp-certified", "milp"]
Decompose = Literal["auto", "never", "always", "shares", "prices"]


@dataclass(frozen=True)
class SelectionOptions:
    """How to build and solve: `matrix` (numpy, fast) or `pyomo` (the statement); HiGHS's MIP gap and time limit.

    `decompose` (only for a separable objective without feeder rows, matrix builder):
    `auto` answers a selection of at least `decompose_min_cells` source-steps (the 96-step
    day over 1,000 buildings) by blocks with fixed shares (`blocks.py`), one of at least
    `prices_min_cells` source-steps (None: never, the default — the whole LP from its
    crash basis was faster at the 8-step event, docs/dr.md §3) by blocks coordinated by
    step prices (`prices.py`, at most `price_rounds` rounds), any other by the whole LP;
    `shares` (or `always`) and `prices` force one method on any size, `never` none. An
    uncertified answer is never kept: the whole LP answers then, counted in
    `Selection.fallbacks` and said in its notes. `whole_crash` starts the whole LP of a
    separable objective from `matrix.crash_basis` (dual simplex, no presolve), as the
    blocks are; False is the path before (presolve, HiGHS's own start). `warm_start`
    solves every fixed-share block (no fail-fast) and, when their sum is not certified,
    starts the whole LP from it (`warm.py`: crossover, then the dual simplex), the route
    of a met day; False keeps the fail-fast shares and the crash-started whole LP.
    """

    builder: Builder = "matrix"
    mip_rel_gap: float = 1e-6
    time_limit_s: float = 60.0
    tolerance_kw: float = 1e-6
    decompose: Decompose = "auto"
    block_sources: int = 100
    decompose_min_cells: int = 100_000
    prices_min_cells: int | None = None
    price_rounds: int = 40
    whole_crash: bool = True
    warm_start: bool = True


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
    notes: list[str] = []
    method = _decomposition(x, options)
    solved, fallbacks = _decomposed(x, options, method, notes) if method else (None, 0)
    if solved is None:
        # the "nothing activated" basis is feasible unless objective columns couple the steps
        crash = options.whole_crash and options.builder == "matrix" and x.objective in SEPARABLE
        solved = _solve_inputs(x, options, crash=crash)
    t1 = time.perf_counter()
    if solved.status != "Optimal":
        notes.append(f"HiGHS stopped: {solved.status}")
    net = (
        solved.up_kw - solved.dn_kw
    )  # netting: a source gives up or down, never both (see inputs.needs_binary)
    up = np.maximum(net, 0.0)
    dn = np.maximum(-net, 0.0)
    unmet = np.maximum(solved.unmet_kw, 0.0)
    unmet[unmet < options.tolerance_kw] = 0.0
    delivered = x.target_abs_kw - unmet
    flex = {(s.site, s.asset): up[i] - dn[i] for i, s in enumerate(sources)}
    return Selection(
        status="partial" if np.any(unmet > 0) else "full",
        objective=request.objective,
        objective_value=_objective_value(x, up, dn, delivered),
        delivered_kw=delivered,
        unmet_kw=unmet,
        flex_kw=flex,
        mip_gap=solved.mip_gap,
        build_s=solved.build_s,
        solve_s=(t1 - t0) - solved.build_s,  # every solve, the blocks' and the whole LP's, and the assembly
        builder=options.builder,
        route=solved.route,
        notes=tuple(notes),
        fallbacks=fallbacks,
    )


def _decomposed(
    x: MilpInputs, options: SelectionOptions, method: str, notes: list[str]
) -> tuple[Solved | None, int]:
    """The blocks' certified answer by `method` (`shares` or `prices`), or None; the uncertified tries; a note either way.

    Uncertified fixed shares with `warm_start` hand their sum to the whole LP (`warm.py`),
    whose answer is exact; the shares still count as one fallback, a failed warm start as
    a second (then the whole LP from its crash basis answers).
    """
    if method == "shares":
        blocks = solve_by_blocks(
            x,
            options.block_sources,
            lambda sub: _solve_inputs(sub, options, crash=True),
            fail_fast=not options.warm_start,
        )
        if blocks.solved is not None:
            notes.append(f"{blocks.n_blocks} blocks, step prices equal to {blocks.price_spread:.1g}")
            return blocks.solved, 0
        if not (options.warm_start and blocks.point is not None):
            notes.append(f"blocks not certified ({blocks.reason}): the whole LP answers")
            return None, 1
        warm, why = solve_warm(
            x,
            blocks.point.up_kw,
            blocks.point.dn_kw,
            time_limit_s=options.time_limit_s,
            tol_kw=options.tolerance_kw,
        )
        if warm is None:
            notes.append(f"blocks not certified ({blocks.reason}), {why}: the whole LP answers")
            return None, 2
        notes.append(
            f"blocks not certified ({blocks.reason}): the whole LP answers, warm-started from their sum"
        )
        return replace(warm, build_s=warm.build_s + blocks.point.build_s), 1  # every build, the blocks' too
    priced = solve_by_prices(
        x, options.block_sources, max_rounds=options.price_rounds, tolerance_kw=options.tolerance_kw
    )
    if priced.solved is None:
        notes.append(f"prices not certified ({priced.reason}): the whole LP answers")
        return None, 1
    notes.append(
        f"{priced.n_blocks} blocks priced in {priced.rounds} rounds, Lagrangian gap {priced.gap:.1g}"
    )
    return priced.solved, 0


def _decomposition(x: MilpInputs, options: SelectionOptions) -> Literal["", "shares", "prices"]:
    """Which decomposition to try first (`SelectionOptions`), or "" for the whole LP alone."""
    if options.decompose == "never" or options.builder != "matrix":
        return ""
    if x.feeder_sites or x.objective not in SEPARABLE:
        return ""
    if options.decompose in ("always", "shares"):
        return "shares"
    if options.decompose == "prices":
        return "prices"
    if x.up_max.size >= options.decompose_min_cells:
        return "shares"
    if options.prices_min_cells is not None and x.up_max.size >= options.prices_min_cells:
        return "prices"
    return ""


def _solve_inputs(x: MilpInputs, options: SelectionOptions, *, crash: bool = False) -> Solved:
    """Build `x` into a fresh HiGHS, solve it (`_solve`), return the raw columns and, for an LP optimum, the step prices."""
    t0 = time.perf_counter()
    h = quiet_highs()
    h.setOptionValue("mip_rel_gap", options.mip_rel_gap)
    h.setOptionValue("time_limit", options.time_limit_s)
    step_rows: IntArray | None = None
    integer: IntArray | None = None
    basis: Any = None
    if options.builder == "pyomo":
        from cloud_controller.dr.pyomo_model import load_pyomo

        up_ix, dn_ix, unmet_ix, z_ix = load_pyomo(x, h)
    else:
        ix = build_milp(x, h)
        up_ix, dn_ix, unmet_ix, z_ix, step_rows, integer = (
            ix.up,
            ix.dn,
            ix.unmet,
            ix.z,
            ix.step_rows,
            ix.integer,
        )
        basis = crash_basis(ix) if crash else None
    t1 = time.perf_counter()
    route = _solve(h, up_ix, dn_ix, z_ix, options.tolerance_kw, integer, basis)
    status = h.modelStatusToString(h.getModelStatus())
    if status not in ("Optimal", "Time limit reached"):
        raise SelectionError(f"HiGHS: {status} (the unmet columns make every request feasible: a bug)")
    sol = h.getSolution()
    col = np.asarray(sol.col_value, dtype=np.float64)
    feasible = int(h.getInfo().primal_solution_status) == 2  # kSolutionStatusFeasible
    if col.size == 0 or not feasible:
        # a time-limited simplex holds a point that breaks rows: never answer with it
        raise SelectionError(
            f"HiGHS: {status} after {time.perf_counter() - t1:.1f} s without a feasible selection"
        )
    price = None
    if step_rows is not None and route != "milp" and status == "Optimal" and sol.dual_valid:
        price = np.asarray(sol.row_dual, dtype=np.float64)[step_rows]
    return Solved(
        up_kw=col[up_ix],
        dn_kw=col[dn_ix],
        unmet_kw=col[unmet_ix],
        route=route,
        status=status,
        step_price=price,
        mip_gap=float(getattr(h.getInfo(), "mip_gap", 0.0)),
        build_s=t1 - t0,
        solve_s=time.perf_counter() - t1,
    )


def _solve(
    h: Any,
    up_ix: IntArray,
    dn_ix: IntArray,
    z_ix: IntArray,
    tol_kw: float,
    integer: IntArray | None = None,
    basis: Any = None,
) -> Route:
    """Solve the LP relaxation first; keep it when it is certified integral, else solve the MILP.

    Certified: every binary other than the exclusivity z's is integral, and no exclusivity
    cell has both up and dn above the tolerance (then z = [up > 0] is integral and the same
    point: the relaxation's bound is met by an integer solution, so it is optimal). The
    binaries' presolve, probing and heuristics are most of HiGHS's time on a large
    selection whose relaxation is already integral; when it is not, the MILP decides
    (route `milp`), never the relaxation. `basis` (`matrix.crash_basis`) starts the
    relaxation's dual simplex, without presolve, from the "nothing activated" point.
    `integer` (the binaries' columns) spares copying the LP out of HiGHS to find them.
    """
    if integer is None:
        lp = h.getLp()
        n = int(lp.num_col_)
        kinds = (
            np.array([int(v) for v in lp.integrality_], dtype=np.int64)
            if len(lp.integrality_)
            else np.zeros(n)
        )
        integer = np.flatnonzero(kinds == int(highspy.HighsVarType.kInteger))
    if integer.size:
        zeros = np.zeros(integer.size, dtype=np.uint8)
        h.changeColsIntegrality(integer.size, integer.astype(np.int32), zeros)
    if basis is not None:
        h.setOptionValue("presolve", "off")
        h.setOptionValue("simplex_strategy", 1)  # dual
        h.setBasis(basis)
    h.run()
    if basis is not None:
        h.setOptionValue("presolve", "choose")
    if integer.size == 0:
        return "lp"
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
