"""Areas of a radial network for the per-area dispatch (`decompose.py`).

Where to cut, and each area's own LP problem.

An area is the subtree below one branch (an MV/LV station, or smaller); what lies above the
areas (the slack bus, the HV/MV transformer, MV lines) is shared. An area's LP holds its
subtree plus the *path* of shared buses from the slack bus down to it; everything else
folds onto that path as fixed load (`fold_matrix`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from cloud_controller.dispatch.model.lp import LpIndex
from cloud_controller.dispatch.model.problem import BIG, FloatArray, IntArray, Problem
from cloud_controller.grid.radial import RadialGrid


@dataclass(frozen=True)
class Area:
    """A subtree below `top_branch`, with the path of shared buses from the slack down to it."""

    top_branch: int
    buses: IntArray  # full-grid bus indices of the subtree (its top bus first)
    branches: IntArray  # the top branch and every branch inside the subtree
    path_buses: IntArray  # slack bus ... parent bus of the top branch
    path_branches: IntArray  # branches along that path
    sites: IntArray  # full-problem site indices in the subtree


def _up_maps(grid: RadialGrid) -> tuple[IntArray, IntArray]:
    """Per bus: its parent bus and the branch feeding it (-1 at the slack bus)."""
    parent_of = np.full(grid.n_bus, -1, dtype=np.int64)
    parent_of[grid.child] = grid.parent
    branch_of = np.full(grid.n_bus, -1, dtype=np.int64)
    branch_of[grid.child] = np.arange(grid.n_branch)
    return parent_of, branch_of


def _children(grid: RadialGrid) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for k, par in enumerate(grid.parent.tolist()):
        out.setdefault(par, []).append(k)
    return out


def _subtree(grid: RadialGrid, out: dict[int, list[int]], top_branch: int) -> tuple[list[int], list[int]]:
    buses: list[int] = []
    branches: list[int] = []
    stack = [top_branch]
    while stack:
        k = stack.pop()
        branches.append(k)
        b = int(grid.child[k])
        buses.append(b)
        stack.extend(out.get(b, []))
    return buses, branches


def _area(
    grid: RadialGrid,
    k: int,
    subtree: tuple[list[int], list[int]],
    site_bus: IntArray,
    up: tuple[IntArray, IntArray],
) -> Area:
    """The area below branch k: its subtree (buses, branches) and the path above it."""
    buses, branches = subtree
    parent_of, branch_of = up
    path: list[int] = []
    b = int(grid.parent[k])
    while b != -1:
        path.append(b)
        b = int(parent_of[b])
    path.reverse()
    path_br = [int(branch_of[b]) for b in path[1:]]
    in_area = np.zeros(grid.n_bus, dtype=bool)
    in_area[buses] = True
    return Area(
        top_branch=k,
        buses=np.asarray(buses, dtype=np.int64),
        branches=np.asarray(branches, dtype=np.int64),
        path_buses=np.asarray(path, dtype=np.int64),
        path_branches=np.asarray(path_br, dtype=np.int64),
        sites=np.flatnonzero(in_area[site_bus]).astype(np.int64),
    )


def area_below(grid: RadialGrid, site_bus: IntArray, k: int) -> Area:
    """The subtree below branch `k` as an area (with its path from the slack bus)."""
    subtree = _subtree(grid, _children(grid), k)
    return _area(grid, k, subtree, np.asarray(site_bus, dtype=np.int64), _up_maps(grid))


def areas_joined(grid: RadialGrid, site_bus: IntArray, ks: list[int]) -> Area:
    """The subtrees below branches `ks` (none below another) as one area, with the union of their paths.

    One LP for all of them instead of one each. `top_branch` is the first.
    """
    parts = [area_below(grid, site_bus, k) for k in ks]
    if len(parts) == 1:
        return parts[0]
    path: list[int] = []
    seen: set[int] = set()
    for a in parts:  # root first, each bus after its parent
        for b in a.path_buses.tolist():
            if b not in seen:
                seen.add(b)
                path.append(b)
    _, branch_of = _up_maps(grid)
    return Area(
        top_branch=ks[0],
        buses=np.concatenate([a.buses for a in parts]),
        branches=np.concatenate([a.branches for a in parts]),
        path_buses=np.asarray(path, dtype=np.int64),
        path_branches=np.asarray([int(branch_of[b]) for b in path[1:]], dtype=np.int64),
        sites=np.sort(np.concatenate([a.sites for a in parts])),
    )


def split_areas(
    grid: RadialGrid, site_bus: IntArray, *, max_sites: int = 200, max_buses: int = 300
) -> list[Area]:
    """Cut the tree into areas of at most `max_sites` sites and `max_buses` buses where the tree allows it.

    Starting from the branches out of the slack bus, a subtree with more than `max_sites`
    sites or `max_buses` buses is replaced by the subtrees below its top bus (which becomes
    a shared bus), as long as no site sits on that bus. (The bus count matters too: a
    feeder with few sites but a whole LV network costs about as much as one with many
    sites.) Subtrees without sites are not areas: their fixed
    loads are carried as fixed loads. Raises ValueError if a site sits on the slack bus.
    """
    site_bus = np.asarray(site_bus, dtype=np.int64)
    if np.any(site_bus == grid.root):
        raise ValueError("a site on the slack bus belongs to no area")
    out = _children(grid)
    n_at = np.bincount(site_bus, minlength=grid.n_bus)
    parent_of, branch_of = _up_maps(grid)
    areas: list[Area] = []
    todo = list(reversed(out.get(grid.root, [])))
    while todo:
        k = todo.pop()
        buses, branches = _subtree(grid, out, k)
        n_sites = int(n_at[buses].sum())
        if n_sites == 0:
            continue
        top = int(grid.child[k])
        below = out.get(top, [])
        too_big = n_sites > max_sites or len(buses) > max_buses
        if too_big and n_at[top] == 0 and len(below) > 0:
            todo.extend(reversed(below))
            continue
        areas.append(_area(grid, k, (buses, branches), site_bus, (parent_of, branch_of)))
    return areas


def decomposable(problem: Problem) -> str | None:
    """Why `problem` cannot be decomposed by area (None if it can)."""
    if problem.meshed:
        return "a meshed grid: an area's flows are not the sums over its subtree"
    if problem.n_units:
        return "generic units with their own costs couple through the slack-bus cost"
    if problem.root_cost is not None:
        return "a cost on the slack bus's power couples every area"
    if problem.has_shed:
        return "a bounded slack-bus power couples every area"
    if np.any(problem.site_bus == problem.grid.root):
        return "a site sits on the slack bus"
    return None


def subtree_matrix(grid: RadialGrid) -> sp.csr_matrix:
    """(K, N) matrix D with D[k, n] = 1 if bus n is below branch k.

    Branch flows are `loads @ D.T`; voltages are `v_root - (r * flows) @ D`, since the
    branches above a bus are the branches it is below.
    """
    parent_of, branch_of = _up_maps(grid)
    rows: list[IntArray] = []
    cols: list[IntArray] = []
    bus = np.arange(grid.n_bus, dtype=np.int64)
    cur = bus.copy()
    live = cur != grid.root
    while live.any():
        rows.append(branch_of[cur[live]])
        cols.append(bus[live])
        cur = np.where(live, parent_of[np.maximum(cur, 0)], grid.root)
        live = cur != grid.root
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(grid.n_branch, grid.n_bus))


def sub_branches(area: Area) -> IntArray:
    """The full-grid branch of each branch of the area's LP (`sub_problem`'s order: path first)."""
    return np.concatenate([area.path_branches, area.branches])


def sub_rating(rating_kw: FloatArray | None, area: Area) -> FloatArray | None:
    """A call's (T, K) branch ratings for the area's LP (None stays None: the grid's)."""
    return None if rating_kw is None else np.asarray(rating_kw, float)[:, sub_branches(area)]


def sub_problem(problem: Problem, area: Area) -> tuple[Problem, IntArray, IntArray, IntArray]:
    """The area's Problem (path + subtree), its buses in full indices, its batteries and heat pumps."""
    g = problem.grid
    buses = np.concatenate([area.path_buses, area.buses])
    branches = sub_branches(area)
    local = np.full(g.n_bus, -1, dtype=np.int64)
    local[buses] = np.arange(len(buses))
    sub_grid = RadialGrid(
        bus_ids=g.bus_ids[buses],
        root=0,
        parent=local[g.parent[branches]],
        child=local[g.child[branches]],
        rating_kw=g.rating_kw[branches],
        r_pu_per_kw=g.r_pu_per_kw[branches],
        branch_names=tuple(g.branch_names[k] for k in branches.tolist()),
        v_root_pu=g.v_root_pu,
        v_min_pu=g.v_min_pu[buses],
        v_max_pu=g.v_max_pu[buses],
    )
    site_pos = np.full(problem.n_sites, -1, dtype=np.int64)
    site_pos[area.sites] = np.arange(len(area.sites))
    bats = np.flatnonzero(site_pos[problem.bat_site] >= 0).astype(np.int64)
    hps = np.flatnonzero(site_pos[problem.hp_site] >= 0).astype(np.int64)
    sub = replace(
        problem,
        grid=sub_grid,
        site_bus=local[problem.site_bus[area.sites]],
        bat_site=site_pos[problem.bat_site[bats]],
        bat_e_max_kwh=problem.bat_e_max_kwh[bats],
        bat_e_min_kwh=problem.bat_e_min_kwh[bats],
        bat_p_max_kw=problem.bat_p_max_kw[bats],
        hp_site=site_pos[problem.hp_site[hps]],
        hp_p_max_kw=problem.hp_p_max_kw[hps],
        ts_e_max_kwh=problem.ts_e_max_kwh[hps],
        site_pv=None if problem.site_pv is None else problem.site_pv[area.sites],
    )
    return sub, buses, bats, hps


def fold_matrix(grid: RadialGrid, area: Area, sub_buses: IntArray, lift: IntArray) -> sp.csr_matrix:
    """(n_sub, N): each full bus to itself if in the area's LP, else to its deepest path ancestor.

    `lift` maps a bus of any area to that area's attach bus (a shared bus) and leaves
    shared buses alone, so the walk up is only as long as the shared part is deep.
    """
    n_path = len(area.path_buses)
    local = np.full(grid.n_bus, -1, dtype=np.int64)
    local[sub_buses] = np.arange(len(sub_buses))
    parent_of, _ = _up_maps(grid)
    target = local.copy()
    cur = np.where(target >= 0, np.arange(grid.n_bus), lift)
    todo = target < 0
    while todo.any():
        here = local[cur]
        hit = todo & (here >= 0) & (here < n_path)
        target[hit] = here[hit]
        todo &= ~hit
        cur = np.where(todo, parent_of[cur], cur)
    return sp.csr_matrix(
        (np.ones(grid.n_bus), (target, np.arange(grid.n_bus))), shape=(len(sub_buses), grid.n_bus)
    )


def per_entry(value: FloatArray | None, T: int, idx: IntArray) -> FloatArray | None:
    """A per-period or per-entry input for the entries `idx`.

    As the engine reads it: reshaped to (T, -1), one column meaning one value per period.
    """
    if value is None:
        return None
    arr = np.asarray(value, dtype=float).reshape(T, -1)
    return arr if arr.shape[1] == 1 else arr[:, idx]


def columns(value: FloatArray | None, T: int, n: int, idx: IntArray) -> FloatArray | None:
    """A (T, n) input, or anything that broadcasts to it as the engine broadcasts, for `idx`."""
    if value is None:
        return None
    return np.broadcast_to(np.asarray(value, dtype=float), (T, n))[:, idx]


# A coupling row is idle in an area's LP if it is off its bound (slack above ROW_SLACK_TOL)
# or its dual is round-off (at most DUAL_TOL in objective units). Not relative to the row's
# penalty: a binding row's dual is the marginal cost of relief over the row's sensitivity,
# which can be small (cheap curtailment) and has nothing to do with the penalty.
ROW_SLACK_TOL = 1e-7
DUAL_TOL = 1e-9


def rows_idle(sol: Any, rows: IntArray, upper: FloatArray, *, scale: FloatArray | float = 1.0) -> bool:
    """Whether each `<=` row `rows` (upper bounds `upper`) is off its bound or has a round-off dual.

    Checked on a HiGHS solution: what an area's answer needs to be optimal for its part
    of the whole (decompose.py, repair.py). `scale`: what each row was multiplied by in
    the LP (lazy.py's voltage rows), so the tolerances apply to the rows as stated.
    """
    slack = (upper - np.asarray(sol.row_value)[rows]) / scale
    duals = np.asarray(sol.row_dual)[rows] * scale
    return not bool(np.any((slack <= ROW_SLACK_TOL) & (np.abs(duals) > DUAL_TOL)))


def coupling_rows(
    problem: Problem, sub: Problem, ix: LpIndex, area: Area, rating_kw: FloatArray | None = None
) -> tuple[IntArray, FloatArray]:
    """Rows of the area's LP that couple it to the rest (all `<=` rows), and their upper bounds.

    Every voltage band (path voltages carry the others' load) and the limits of the path
    branches, at `rating_kw` ((T, K_sub), a call's ratings) or the grid's. An area's answer
    is optimal for its part of the whole only if each of them is off its bound or has a
    round-off dual.
    """
    path_k = np.arange(len(area.path_branches))
    assert ix.r_v_up is not None and ix.r_v_dn is not None
    assert ix.r_branch_up is not None and ix.r_branch_dn is not None
    v_rows = np.concatenate([ix.r_v_up.ravel(), ix.r_v_dn.ravel()])
    b_rows = np.concatenate([ix.r_branch_up[:, path_k].ravel(), ix.r_branch_dn[:, path_k].ravel()])
    b_rows = b_rows[b_rows >= 0]
    rows = np.concatenate([v_rows, b_rows])
    sg = sub.grid
    v_max = sg.v_max_pu if problem.enforce_voltage else np.full(sg.n_bus, BIG)
    v_min = sg.v_min_pu if problem.enforce_voltage else np.full(sg.n_bus, -BIG)
    limited = ix.r_branch_up[:, path_k] >= 0  # the same branches have both rows
    rating = sg.rating_kw[None, :] if rating_kw is None else np.asarray(rating_kw, float)
    b_upper = np.broadcast_to(rating[:, path_k], limited.shape)[limited]
    upper = np.concatenate(
        [
            np.broadcast_to(v_max[None, :], ix.r_v_up.shape).ravel(),
            np.broadcast_to(-v_min[None, :], ix.r_v_dn.shape).ravel(),
            b_upper,
            b_upper,
        ]
    )
    return rows, upper
