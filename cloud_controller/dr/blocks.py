"""The selection by blocks of sites, coupled only through the request's step rows, certified by their step prices.

Why: HiGHS's simplex on the whole selection spends about one pivot per chain row (SOC and
zone, one per source and step) and each pivot costs more as the LP grows, so a 96-step
day over 1,000 buildings is one 1,070,000-column LP. Without feeder rows the selection is
separable by site except for the T rows `s_t·Σ_r (up − dn) + unmet_t = |target_t|`.

The route: cut the sites into blocks of about `block_sources` sources, give each block a
share of every step's request (in proportion to its caps in the request's direction),
solve each block's own LP (its own unmet columns, at the request's unmet price), and add
the answers up. The sum is feasible for the whole selection (the shares add up to the
request, the blocks' unmet to a value in [0, |target_t|]).

Certificate (LP duality). If every block's optimum has the same step prices λ_t (the
duals of its step rows), the blocks' duals together are a dual solution of the whole LP:
every column and every other row belongs to exactly one block, the step row of the whole
LP is the sum of the blocks' step rows, and each unmet column's reduced cost u_t − λ_t
has the same sign in every block, so the blocks' unmet columns sit on the same bound and
their sum on the whole column's bound (complementary slackness). A primal and a dual
solution that are feasible and complementary are optimal: the sum of the blocks'
objectives is the whole selection's optimum. When the prices differ (a block meets its
share at a lower marginal cost than another), the shares were wrong and nothing is
claimed: `select` solves the whole LP. The blocks stop at the first one whose prices
differ from the first block's, so a met request does not pay for every block first. A request the portfolio cannot meet in any step
prices every step at the unmet price in every block, which is the day-long case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from cloud_controller.dr.inputs import IntArray, MilpInputs
from cloud_controller.dr.problem import FloatArray

__all__ = ["SEPARABLE", "BlockAnswer", "Solved", "blocks_of", "shares_of", "solve_by_blocks", "sub_inputs"]

# objectives whose cost is a sum over sources and steps (bid_length and power_peak add columns over all steps)
SEPARABLE = ("flexibility", "financial", "min_cost")
PRICE_TOL = 1e-6  # relative agreement of the blocks' step prices for the certificate


@dataclass(frozen=True)
class Solved:
    """One LP/MILP's answer as arrays (before netting), with its step prices when it is an LP optimum."""

    up_kw: FloatArray  # (R, T)
    dn_kw: FloatArray  # (R, T)
    unmet_kw: FloatArray  # (T,)
    route: str
    status: str  # HiGHS's model status
    step_price: FloatArray | None  # (T,) duals of the step rows; None for a MILP or the pyomo builder
    mip_gap: float
    build_s: float = 0.0
    solve_s: float = 0.0


@dataclass(frozen=True)
class BlockAnswer:
    """The assembled answer, or why it is not certified (`solved` None)."""

    solved: Solved | None
    n_blocks: int
    price_spread: float  # max over steps of the blocks' step-price range, relative
    reason: str = ""
    point: Solved | None = (
        None  # the summed answer, certified or not, when every block answered (`fail_fast` off)
    )


def blocks_of(x: MilpInputs, block_sources: int) -> list[IntArray]:
    """Source indices per block: whole sites in the inputs' order, about `block_sources` sources each."""
    order = np.argsort(x.site_of, kind="stable")
    sites, starts = np.unique(x.site_of[order], return_index=True)
    bounds = [*(int(s) for s in starts), order.size]
    blocks: list[IntArray] = []
    current: list[int] = []
    for k in range(sites.size):
        current.extend(int(i) for i in order[bounds[k] : bounds[k + 1]])
        if len(current) >= block_sources:
            blocks.append(np.array(sorted(current), dtype=np.int64))
            current = []
    if current:
        blocks.append(np.array(sorted(current), dtype=np.int64))
    return blocks


def shares_of(x: MilpInputs, blocks: list[IntArray]) -> list[FloatArray]:
    """Each block's share of |target_t|: in proportion to its caps in the step's direction (equal if none)."""
    caps = np.where(x.sign[None, :] < 0, x.dn_max, x.up_max)  # (R, T)
    per_block = np.array([caps[rows].sum(axis=0) for rows in blocks])  # (K, T)
    total = per_block.sum(axis=0)
    weight = np.where(total > 0, per_block / np.where(total > 0, total, 1.0), 1.0 / len(blocks))
    return [x.target_abs_kw * w for w in weight]


def sub_inputs(x: MilpInputs, rows: IntArray, target_abs_kw: FloatArray) -> MilpInputs:
    """The inputs of the sources `rows` alone, asked for `target_abs_kw`; prices and weights of the whole."""
    local = np.full(x.up_max.shape[0], -1, dtype=np.int64)
    local[rows] = np.arange(rows.size)
    bat = np.flatnonzero(local[x.bat_rows] >= 0)
    hp = np.flatnonzero(local[x.hp_rows] >= 0)
    lim = np.flatnonzero(np.isin(x.limit_site, x.site_of[rows]))
    return replace(
        x,
        target_abs_kw=np.asarray(target_abs_kw, dtype=np.float64),
        up_max=x.up_max[rows],
        dn_max=x.dn_max[rows],
        partial=x.partial[rows],
        cost=x.cost[rows],
        bat_rows=local[x.bat_rows[bat]],
        bat_e0=x.bat_e0[bat],
        bat_e_min=x.bat_e_min[bat],
        bat_e_max=x.bat_e_max[bat],
        bat_eta_c=x.bat_eta_c[bat],
        bat_eta_d=x.bat_eta_d[bat],
        hp_rows=local[x.hp_rows[hp]],
        hp_decay=x.hp_decay[hp],
        hp_gain=x.hp_gain[hp],
        hp_lo=x.hp_lo[hp],
        hp_hi=x.hp_hi[hp],
        site_of=x.site_of[rows],
        limit_site=x.limit_site[lim],
        limit_kw=x.limit_kw[lim],
        feeder_sites=(),
        feeder_inc=np.zeros((0, x.n_steps)),
        feeder_red=np.zeros((0, x.n_steps)),
    )


def solve_by_blocks(
    x: MilpInputs, block_sources: int, solve: Callable[[MilpInputs], Solved], *, fail_fast: bool = True
) -> BlockAnswer:
    """Solve every block with `solve`, add the answers up and certify them by their step prices (module doc).

    `fail_fast` stops at the first block whose prices differ; without it every block is
    solved and an uncertified sum is still handed back as `point` (a warm start, `warm.py`).
    """
    if x.feeder_sites or x.objective not in SEPARABLE:
        return BlockAnswer(None, 0, float("nan"), "feeder rows or a non-separable objective")
    blocks = blocks_of(x, block_sources)
    up = np.zeros_like(x.up_max)
    dn = np.zeros_like(x.dn_max)
    unmet = np.zeros(x.n_steps)
    prices: list[FloatArray] = []
    build_s = solve_s = 0.0
    for k, (rows, share) in enumerate(zip(blocks, shares_of(x, blocks), strict=True)):
        s = solve(sub_inputs(x, rows, share))
        if s.step_price is None or s.status != "Optimal":
            return BlockAnswer(None, len(blocks), float("nan"), f"a block answered {s.route}, {s.status}")
        if (
            prices and fail_fast
        ):  # one block whose prices differ from the first's already rules the certificate out
            first = prices[0]
            differ = float((np.abs(s.step_price - first) / np.maximum(1.0, np.abs(first))).max(initial=0.0))
            if differ > PRICE_TOL:
                reason = f"the blocks' step prices differ by {differ:.2g} (block {k + 1} of {len(blocks)})"
                return BlockAnswer(None, len(blocks), differ, reason)
        up[rows], dn[rows] = s.up_kw, s.dn_kw
        unmet += s.unmet_kw
        prices.append(s.step_price)
        build_s += s.build_s
        solve_s += s.solve_s
    p = np.array(prices)
    scale = np.maximum(1.0, np.abs(p).max(axis=0))
    spread = float(((p.max(axis=0) - p.min(axis=0)) / scale).max(initial=0.0))
    solved = Solved(up, dn, unmet, "blocks-certified", "Optimal", p.mean(axis=0), 0.0, build_s, solve_s)
    if spread > PRICE_TOL:
        reason = f"the blocks' step prices differ by {spread:.2g}"
        return BlockAnswer(
            None, len(blocks), spread, reason, point=replace(solved, route="blocks-uncertified")
        )
    return BlockAnswer(solved, len(blocks), spread, point=solved)
