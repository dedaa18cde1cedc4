"""A starting basis for the first (cold) solve, built from the first inputs in O(size).

Why: from HiGHS's all-slack start the first solve pivots through most of the LP's rows
one by one (docs/benchmarks.md). But the dispatch LP has an obvious near-optimal basis: every store
idle, every heat pump making the heat it must, each site importing or exporting its net
load, the flows and voltages of the radial network following from the loads, and a soft
limit's slack basic only where that "do nothing" point breaks the limit. That basis is
square and non-singular (each equality row gets exactly one basic variable in a
triangular order: heat → site → bus (tree) → voltage drop (tree)) and primal feasible
apart from what the soft limits absorb; the simplex then only moves the flexible assets.

`basis_for` returns HiGHS basis statuses; the engine uses it once, before the first run.
"""

from __future__ import annotations

import highspy
import numpy as np
import numpy.typing as npt

from cloud_controller.dispatch.model.lp import LpIndex
from cloud_controller.dispatch.model.problem import (
    FloatArray,
    IntArray,
    Problem,
    StepInputs,
    StorageState,
    branch_rating,
)

BoolArray = npt.NDArray[np.bool_]
LOWER = int(highspy.HighsBasisStatus.kLower)
BASIC = int(highspy.HighsBasisStatus.kBasic)
UPPER = int(highspy.HighsBasisStatus.kUpper)
BASIS_STATUS = [highspy.HighsBasisStatus(i) for i in range(5)]  # by value: kLower .. kNonbasic


def _top_down(grid_parent: IntArray, grid_child: IntArray, root: int) -> list[int]:
    """Branches ordered so that a branch comes after the branch feeding its parent bus."""
    out_of: dict[int, list[int]] = {}
    for k, par in enumerate(grid_parent):
        out_of.setdefault(int(par), []).append(k)
    order: list[int] = []
    stack = [root]
    while stack:
        bus = stack.pop()
        for k in out_of.get(bus, []):
            order.append(k)
            stack.append(int(grid_child[k]))
    return order


def _set(status: IntArray, idx: IntArray, mask: object, value: int) -> None:
    """status[idx[mask]] = value, skipping entries that do not exist (-1)."""
    sel = np.asarray(idx)[np.asarray(mask, dtype=bool)] if mask is not None else np.asarray(idx)
    sel = sel[sel >= 0]
    status[sel] = value


def _battery_moves(
    p: Problem, ix: LpIndex, state: StorageState, net: FloatArray, *, col: IntArray, taken: BoolArray
) -> None:
    """Charge from surplus / discharge into deficit.

    Updates `net` (what the site still exchanges), the batteries' statuses, and marks sites
    whose battery takes the site row.
    """
    dt = p.dt_h
    s = p.bat_site
    e0 = np.asarray(state.e_bat_kwh, float)
    want = net[0, s]
    ch_room = np.maximum((p.bat_e_max_kwh - e0) / (p.bat_eta_c * dt), 0.0)
    dis_room = np.maximum((e0 - p.bat_e_min_kwh) * p.bat_eta_d / dt, 0.0)
    for sign, c_move, room, e_bound in (
        (-1.0, ix.c_ch[0], ch_room, UPPER),
        (1.0, ix.c_dis[0], dis_room, LOWER),
    ):
        need = np.maximum(sign * want, 0.0)  # surplus to store / deficit to cover
        cap = np.minimum(p.bat_p_max_kw, room)
        move = np.minimum(need, cap)
        active = move > 0.0
        whole = active & (need < cap)  # covers the site entirely: basic in the site row
        at_power = active & ~whole & (p.bat_p_max_kw <= room)  # flat out
        at_energy = active & ~whole & ~at_power  # stops at the energy bound
        col[c_move[whole]] = BASIC
        col[c_move[at_power]] = UPPER
        col[c_move[at_energy]] = BASIC
        col[ix.c_ebat[0][at_energy]] = e_bound
        taken[0, s[whole]] = True
        net[0, s[active]] -= sign * move[active]


def basis_for(problem: Problem, ix: LpIndex, x: StepInputs, state: StorageState) -> tuple[IntArray, IntArray]:
    """(col_status, row_status) as HiGHS basis-status integers for the first solve."""
    assert ix.r_vdrop is not None and ix.r_v_up is not None and ix.r_v_dn is not None
    assert ix.r_branch_up is not None and ix.r_branch_dn is not None
    assert ix.c_zu is not None and ix.r_unit_epi is not None
    assert ix.c_zroot is not None and ix.r_root_epi is not None
    p = problem
    g = p.grid
    T = p.horizon
    col = np.full(ix.n_cols, LOWER, dtype=np.int64)
    row = np.full(ix.n_rows, BASIC, dtype=np.int64)  # inequality rows: their logical is basic
    for eq in (ix.r_site, ix.r_heat, ix.r_bat, ix.r_ts, ix.r_bus, ix.r_vdrop):
        _set(row, eq.ravel(), None, LOWER)

    # heat pumps: make the heat needed, or run flat out and leave the rest unmet
    hp_kw = np.zeros((T, p.n_hp))
    if p.n_hp:
        heat = np.zeros((T, p.n_hp)) if x.heat_kw is None else np.asarray(x.heat_kw, float)
        cop = np.full(T, 3.0) if x.cop is None else np.asarray(x.cop, float)
        cap_frac = np.ones((T, p.n_hp)) if x.hp_cap_frac is None else np.asarray(x.hp_cap_frac, float)
        cap = cap_frac * p.hp_p_max_kw[None, :]
        need = np.maximum(heat, 0.0) / cop[:, None]
        fits = need <= cap
        hp_kw = np.where(fits, need, cap)
        _set(col, ix.c_hp, fits, BASIC)
        _set(col, ix.c_hp, ~fits, UPPER)
        _set(col, ix.c_unmet, ~fits, BASIC)
    # stores idle: their energy is basic in its balance row
    _set(col, ix.c_ebat, None, BASIC)
    _set(col, ix.c_ets, None, BASIC)

    # sites import or export their net load; in a single period a battery first covers its
    # site's surplus or deficit (the Schutterwald study's self-consumption) as far as power and energy allow
    net = np.broadcast_to(np.asarray(x.base_kw, float), (T, p.n_sites)).copy()
    np.add.at(net.T, p.hp_site, hp_kw.T)
    site_row_taken = np.zeros((T, p.n_sites), dtype=bool)  # a battery is basic in the site row
    if T == 1 and p.n_bat:
        _battery_moves(p, ix, state, net, col=col, taken=site_row_taken)
    _set(col, ix.c_imp, (net >= 0.0) & ~site_row_taken, BASIC)
    _set(col, ix.c_exp, (net < 0.0) & ~site_row_taken, BASIC)

    # units at their lower bound; bus loads; radial flows and voltages follow
    bus_kw = np.zeros((T, g.n_bus))
    np.add.at(bus_kw.T, p.site_bus, net.T)
    if p.n_units:
        np.add.at(bus_kw.T, p.unit_bus, np.broadcast_to(p.unit_p_min_kw, (T, p.n_units)).T)
    if x.bus_fixed_kw is not None:
        bus_kw += np.asarray(x.bus_fixed_kw, float)
    flow = g.branch_flows_kw(bus_kw)  # (T, K)
    root_kw = bus_kw.sum(axis=1)
    _set(col, ix.c_f, None, BASIC)
    _set(col, ix.c_root, None, BASIC)
    _set(col, ix.c_v[:, g.child], None, BASIC)
    v = np.full((T, g.n_bus), g.v_root_pu)
    for k in _top_down(g.parent, g.child, g.root):
        v[:, g.child[k]] = v[:, g.parent[k]] - g.r_pu_per_kw[k] * flow[:, k]

    # soft limits broken by this point: the slack is basic, the row tight at its bound
    def swap(broken: np.ndarray, slack: IntArray, rows: IntArray) -> None:
        ok = (np.asarray(slack) >= 0) & (np.asarray(rows) >= 0) & broken
        _set(col, slack, ok, BASIC)
        _set(row, rows, ok, UPPER)

    call_rating = branch_rating(p, x)  # this call's ratings (a DSO envelope), else the grid's
    rating = g.rating_kw[None, :] if call_rating is None else call_rating
    swap(flow > rating, ix.c_sup, ix.r_branch_up)
    swap(-flow > rating, ix.c_sdn, ix.r_branch_dn)
    if p.enforce_voltage:
        swap(v > g.v_max_pu[None, :], ix.c_svu, ix.r_v_up)
        swap(v < g.v_min_pu[None, :], ix.c_svd, ix.r_v_dn)
    lim = np.full(T, np.inf) if x.station_limit_kw is None else np.asarray(x.station_limit_kw, float)
    flim = (
        np.full(T, np.inf) if x.station_feed_limit_kw is None else np.asarray(x.station_feed_limit_kw, float)
    )
    swap(root_kw > lim, ix.c_sst, ix.r_st)
    swap(-root_kw > flim, ix.c_sstf, ix.r_stf)

    # epigraph variables: basic in the segment row that is tight at this point
    for u in range(p.n_units):
        c = p.unit_cost[u]
        if not c.slopes:
            _set(col, ix.c_zu[:, u], None, int(highspy.HighsBasisStatus.kZero))  # free, in no row
            continue
        val = [
            c.slopes[k] * float(p.unit_sign[u]) * p.unit_p_min_kw[u] + c.offsets[k]
            for k in range(len(c.slopes))
        ]
        k_max = int(np.argmax(val))
        _set(col, ix.c_zu[:, u], None, BASIC)
        _set(row, ix.r_unit_epi[:, u, k_max], None, LOWER)
    rc = p.root_cost
    _set(col, ix.c_zroot, None, BASIC)
    if rc is None:
        _set(row, ix.r_root_epi[:, 0], None, LOWER)
    else:
        val_t = np.stack([rc.slopes[k] * root_kw + rc.offsets[k] for k in range(len(rc.slopes))], axis=1)
        k_t = np.argmax(val_t, axis=1)
        _set(row, ix.r_root_epi[np.arange(T), k_t], None, LOWER)
    return col, row


def set_basis(h: highspy.Highs, col: IntArray, row: IntArray) -> bool:
    """Hand the statuses to HiGHS; False (and HiGHS keeps its own start) if it refuses them."""
    n_basic = int((col == BASIC).sum() + (row == BASIC).sum())
    if n_basic != len(row):
        return False
    basis = highspy.HighsBasis()
    basis.col_status = [BASIS_STATUS[s] for s in col.tolist()]
    basis.row_status = [BASIS_STATUS[s] for s in row.tolist()]
    basis.valid = True
    return bool(h.setBasis(basis) == highspy.HighsStatus.kOk)


def count_check(col: IntArray, row: IntArray) -> int:
    """Basic variables minus rows (0 for a square basis); for tests."""
    return int((col == BASIC).sum() + (row == BASIC).sum() - len(row))
