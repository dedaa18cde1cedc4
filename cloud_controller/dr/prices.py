"""The selection by blocks of sites coordinated by step prices, certified by the Lagrangian bound.

Why: `blocks.py` gives each block a fixed share of the request, which is right only when
every block ends at the same step prices; a request the portfolio MEETS usually is not
(a block of cheap sites meets its share at a lower marginal cost than a dear one), and
then the whole LP answers. Here the prices choose the shares instead (Dantzig-Wolfe
decomposition, price-directive):

- a **master LP** over the T step rows `Σ_s Σ_j a_sj·w_sj + unmet_t = |target_t|` and one
  convexity row per site `Σ_j w_sj = 1`: it mixes, per site, the delivery profiles a_sj
  (kW per step, in the request's direction) the site has proposed so far, at their costs
  c_sj, with the request's unmet columns (at the request's unmet price u_t); its row
  duals are the step prices λ_t and each site's μ_s. A site's first profile is "nothing
  activated", so the master is feasible from the first round;
- per block of about `block_sources` sources a **pricing LP**: the block's own rows (SOC,
  zone, site limits, caps; its step rows freed) with the delivery priced at λ:
  `v_k(λ) = min Σ (c − λ_t·s_t)·(up − dn)`. Its answer, split by site (the block's rows
  never couple two sites), gives each site a new profile, which enters the master when
  its reduced cost `c_sj − λ·a_sj − μ_s` is negative. The prices the blocks see are
  smoothed towards the best ones so far (Wentges: α·λ_best + (1 − α)·λ_master), which
  damps the master's early swings; a smoothed round that adds nothing steps α down.

Certificate (weak duality). For ANY step prices λ the Lagrangian
`L(λ) = λ·|target| + Σ_k v_k(λ) + Σ_t min(0, u_t − λ_t)·|target_t|` is a lower bound on
the whole LP relaxation's optimum. The master's answer is a feasible point of the whole
LP relaxation (per site a convex combination of feasible points, the step rows met
exactly), so when its objective is within `GAP_TOL` of the best bound seen (relative to
the objective, unmet kWh at their price included) it is the whole LP's optimum to that
tolerance. The binaries (a battery's up/down exclusivity, on/off sources) are relaxed in
the pricing LPs; the mix is kept only when it is integral where they are (no exclusivity
cell with both up and dn above the tolerance, every on/off source at 0 or its cap): then
it is an integer point with the relaxation's objective, hence the MILP's optimum too.
Anything else — no certificate within `max_rounds`, a mix that is not integral, an LP that
is not optimal — claims nothing: `select` hands the selection to the whole LP and says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
from numpy.typing import NDArray

from cloud_controller.dr.blocks import SEPARABLE, Solved, blocks_of, sub_inputs
from cloud_controller.dr.inputs import IntArray, MilpInputs, needs_binary, source_costs, unmet_cost
from cloud_controller.dr.matrix import MilpIndex, build_milp, crash_basis
from cloud_controller.dr.problem import FloatArray
from cloud_controller.highs.quiet import quiet_highs

__all__ = ["GAP_TOL", "PriceAnswer", "solve_by_prices"]

GAP_TOL = 1e-7  # (master objective − best Lagrangian bound) / max(1, |objective|)
INF = highspy.kHighsInf


@dataclass(frozen=True)
class PriceAnswer:
    """The assembled answer, or why it is not certified (`solved` None); rounds and the gap either way."""

    solved: Solved | None
    n_blocks: int
    rounds: int
    gap: float
    reason: str = ""


class _NotCertified(Exception):
    """Internal: stop the rounds and hand the selection to the whole LP, with the reason."""


@dataclass
class _Block:
    """One block's pricing LP in its own HiGHS, and which of its sources belong to which site."""

    rows: IntArray  # source indices of the block in the whole
    h: Any
    ix: MilpIndex
    c_up: FloatArray  # (R_k, T) the selection's cost per kW per step
    c_dn: FloatArray
    site_local: IntArray  # (R_k,) the block's site of each of its sources, 0 .. S_k − 1
    first_site: int  # the block's sites are the master's convexity rows first_site .. + S_k − 1
    n_sites: int = field(init=False)
    cols: NDArray[np.int32] = field(init=False)  # HiGHS's columns of up, then dn

    def __post_init__(self) -> None:
        self.n_sites = int(self.site_local.max(initial=-1)) + 1
        self.cols = np.concatenate([self.ix.up.ravel(), self.ix.dn.ravel()]).astype(np.int32)


@dataclass(frozen=True)
class _Priced:
    """A block's pricing answer, split by site."""

    up: FloatArray  # (R_k, T)
    dn: FloatArray
    value: float  # v_k(λ)
    cost: FloatArray  # (S_k,) each site's profile in the selection's objective
    delivery: FloatArray  # (S_k, T) kW in the request's direction


def _pricing_block(x: MilpInputs, rows: IntArray, first_site: int) -> _Block:
    """The block's LP with its step rows freed (target 0: its unmet columns are fixed at 0), binaries relaxed."""
    sub = sub_inputs(x, rows, np.zeros(x.n_steps))
    h = quiet_highs()
    ix = build_milp(sub, h)
    if ix.integer.size:
        h.changeColsIntegrality(
            ix.integer.size, ix.integer.astype(np.int32), np.zeros(ix.integer.size, dtype=np.uint8)
        )
    n_t = x.n_steps
    h.changeRowsBounds(n_t, ix.step_rows.astype(np.int32), np.full(n_t, -INF), np.full(n_t, INF))
    h.setBasis(crash_basis(ix))  # "nothing activated": a feasible start for every price
    c_up, c_dn = source_costs(sub)
    _, site_local = np.unique(sub.site_of, return_inverse=True)
    return _Block(rows, h, ix, c_up, c_dn, site_local.astype(np.int64), first_site)


def _price(block: _Block, sign: FloatArray, lam: FloatArray) -> _Priced:
    """Solve the block's pricing LP at step prices `lam` (warm: only the costs change between rounds)."""
    pay = (lam * sign)[None, :]
    cost_up, cost_dn = block.c_up - pay, block.c_dn + pay
    block.h.changeColsCost(block.cols.size, block.cols, np.concatenate([cost_up.ravel(), cost_dn.ravel()]))
    block.h.run()
    status = block.h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise _NotCertified(f"a pricing LP answered {block.h.modelStatusToString(status)}")
    col = np.asarray(block.h.getSolution().col_value, dtype=np.float64)
    up, dn = col[block.ix.up], col[block.ix.dn]
    s = block.n_sites
    cost = np.zeros(s)
    np.add.at(cost, block.site_local, (block.c_up * up + block.c_dn * dn).sum(axis=1))
    net = np.zeros((s, lam.size))
    np.add.at(net, block.site_local, up - dn)
    value = float((cost_up * up).sum() + (cost_dn * dn).sum())
    return _Priced(up, dn, value, cost, net * sign[None, :])


class _Master:
    """The master LP: T step rows and one convexity row per site; unmet columns and the sites' profiles."""

    def __init__(self, x: MilpInputs, n_sites: int) -> None:
        n_t = x.n_steps
        self.n_t = n_t
        self.h = quiet_highs()
        self.h.setOptionValue("simplex_strategy", 4)  # primal: new columns keep the basis primal feasible
        none_i, none_v = np.zeros(0, np.int32), np.zeros(0)
        self.h.addRows(n_t, x.target_abs_kw, x.target_abs_kw, 0, none_i, none_i, none_v)
        self.h.addRows(n_sites, np.ones(n_sites), np.ones(n_sites), 0, none_i, none_i, none_v)
        self.unmet_cost = unmet_cost(x)
        t_ix = np.arange(n_t, dtype=np.int32)  # unmet_t: cost u_t, in [0, |target_t|], in step row t
        self.h.addCols(
            n_t, self.unmet_cost, np.zeros(n_t), x.target_abs_kw.copy(), n_t, t_ix, t_ix, np.ones(n_t)
        )

    def add(self, sites: IntArray, cost: FloatArray, delivery: FloatArray) -> None:
        """One column per site (the master's site index `sites`): its cost and delivery profile."""
        n = sites.size
        if not n:
            return
        mask = np.abs(delivery) > 1e-12
        rr, tt = np.nonzero(np.concatenate([mask, np.ones((n, 1), dtype=bool)], axis=1))
        idx = np.where(tt < self.n_t, tt, self.n_t + sites[rr]).astype(np.int32)
        val = np.where(tt < self.n_t, delivery[rr, np.minimum(tt, self.n_t - 1)], 1.0)
        starts = np.searchsorted(rr, np.arange(n)).astype(np.int32)
        self.h.addCols(n, cost, np.zeros(n), np.full(n, INF), idx.size, starts, idx, val)

    def solve(self) -> tuple[float, FloatArray, FloatArray, FloatArray]:
        """(objective, λ per step, μ per site, column values)."""
        self.h.run()
        status = self.h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise _NotCertified(f"the master LP answered {self.h.modelStatusToString(status)}")
        sol = self.h.getSolution()
        dual = np.asarray(sol.row_dual, dtype=np.float64)
        value = float(self.h.getInfo().objective_function_value)
        return value, dual[: self.n_t], dual[self.n_t :], np.asarray(sol.col_value, dtype=np.float64)


@dataclass
class _Profiles:
    """What each master column is: the site's block, its sources in the block, and their up/dn (None: nothing)."""

    block: list[int] = field(default_factory=list)
    rows: list[IntArray] = field(default_factory=list)
    up: list[FloatArray | None] = field(default_factory=list)
    dn: list[FloatArray | None] = field(default_factory=list)

    def append(self, block: int, rows: IntArray, up: FloatArray | None, dn: FloatArray | None) -> None:
        self.block.append(block)
        self.rows.append(rows)
        self.up.append(up)
        self.dn.append(dn)


def solve_by_prices(
    x: MilpInputs,
    block_sources: int,
    *,
    max_rounds: int = 40,
    tolerance_kw: float = 1e-6,
    smoothing: float = 0.5,
) -> PriceAnswer:
    """Coordinate the blocks by step prices until the Lagrangian bound certifies the master's mix (module doc)."""
    if x.feeder_sites or x.objective not in SEPARABLE:
        return PriceAnswer(None, 0, 0, float("nan"), "feeder rows or a non-separable objective")
    t0 = time.perf_counter()
    blocks, master, profiles = _setup(x, block_sources)
    build_s = time.perf_counter() - t0
    best_lb, lam_best = -INF, np.zeros(0)
    gap = float("inf")
    rounds = 0
    try:
        for rounds in range(1, max_rounds + 1):
            upper, lam_m, mu, w = master.solve()
            alpha = smoothing if lam_best.size else 0.0
            while True:
                lam = alpha * lam_best + (1.0 - alpha) * lam_m if alpha > 0 else lam_m
                priced = [_price(b, x.sign, lam) for b in blocks]
                bound = _lagrangian(x, master.unmet_cost, lam, priced)
                if bound > best_lb:
                    best_lb, lam_best = bound, lam
                added = sum(
                    _add_columns(master, profiles, k, b, p, lam_m, mu)
                    for k, (b, p) in enumerate(zip(blocks, priced, strict=True))
                )
                gap = (upper - best_lb) / max(1.0, abs(upper))
                if gap <= GAP_TOL or added or alpha == 0.0:
                    break
                alpha = 0.0 if alpha < 0.1 else alpha / 2  # mispriced: step towards the master's prices
            if gap <= GAP_TOL:
                up, dn, why = _mix(x, blocks, profiles, w, tolerance_kw)
                if why:
                    return PriceAnswer(None, len(blocks), rounds, gap, why)
                solve_s = time.perf_counter() - t0 - build_s
                solved = Solved(
                    up, dn, w[: x.n_steps].copy(), "prices-certified", "Optimal", None, 0.0, build_s, solve_s
                )
                return PriceAnswer(solved, len(blocks), rounds, gap)
            if added == 0:
                return PriceAnswer(None, len(blocks), rounds, gap, f"no new profile at gap {gap:.2g}")
    except _NotCertified as exc:
        return PriceAnswer(None, len(blocks), rounds, gap, str(exc))
    return PriceAnswer(
        None, len(blocks), rounds, gap, f"no certificate after {rounds} rounds (gap {gap:.2g})"
    )


def _setup(x: MilpInputs, block_sources: int) -> tuple[list[_Block], _Master, _Profiles]:
    """The blocks' pricing LPs and the master with every site's "nothing activated" profile (feasible at once)."""
    blocks: list[_Block] = []
    n_sites = 0
    for rows in blocks_of(x, block_sources):
        blocks.append(_pricing_block(x, rows, n_sites))
        n_sites += blocks[-1].n_sites
    master = _Master(x, n_sites)
    profiles = _Profiles()
    master.add(np.arange(n_sites), np.zeros(n_sites), np.zeros((n_sites, x.n_steps)))
    for k, b in enumerate(blocks):
        for s in range(b.n_sites):
            profiles.append(k, np.flatnonzero(b.site_local == s), None, None)
    return blocks, master, profiles


def _lagrangian(x: MilpInputs, u: FloatArray, lam: FloatArray, priced: list[_Priced]) -> float:
    """L(λ): a lower bound on the whole LP relaxation for any λ (module doc)."""
    unmet_part = float((np.minimum(0.0, u - lam) * x.target_abs_kw).sum())
    return float(lam @ x.target_abs_kw) + unmet_part + sum(p.value for p in priced)


def _add_columns(
    master: _Master, profiles: _Profiles, k: int, b: _Block, p: _Priced, lam_m: FloatArray, mu: FloatArray
) -> int:
    """Add the block's site profiles whose reduced cost at the master's own prices is negative; how many."""
    sites = np.arange(b.first_site, b.first_site + b.n_sites)
    reduced = p.cost - p.delivery @ lam_m - mu[sites]
    new = np.flatnonzero(reduced < -1e-9 * np.maximum(1.0, np.abs(p.cost)))
    master.add(sites[new], p.cost[new], p.delivery[new])
    for s in new:
        rows = np.flatnonzero(b.site_local == s)
        profiles.append(k, rows, p.up[rows], p.dn[rows])
    return int(new.size)


def _mix(
    x: MilpInputs, blocks: list[_Block], profiles: _Profiles, w: FloatArray, tol_kw: float
) -> tuple[FloatArray, FloatArray, str]:
    """The master's mix as source columns (up, dn), and why it is not integral for the MILP's binaries ("" if it is)."""
    up = np.zeros_like(x.up_max)
    dn = np.zeros_like(x.dn_max)
    n_t = x.n_steps
    for j in range(len(profiles.block)):
        weight = float(w[n_t + j])
        p_up, p_dn = profiles.up[j], profiles.dn[j]
        if weight > 0.0 and p_up is not None and p_dn is not None:
            src = blocks[profiles.block[j]].rows[profiles.rows[j]]
            up[src] += weight * p_up
            dn[src] += weight * p_dn
    if np.any(np.minimum(up, dn)[needs_binary(x)] > tol_kw):
        return up, dn, "the mix charges and discharges a battery at once"
    onoff = ~x.partial
    for level, cap in ((up[onoff], x.up_max[onoff]), (dn[onoff], x.dn_max[onoff])):
        if np.any((level > tol_kw) & (np.abs(level - cap) > tol_kw)):
            return up, dn, "the mix runs an on/off source in part"
    return up, dn, ""
