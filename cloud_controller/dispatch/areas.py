"""Areas of a radial network for the per-area dispatch (`decompose.py`): where to cut,
and each area's own LP problem.

An area is the subtree below one branch (an MV/LV station, or smaller); what lies above the
areas (the slack bus, the HV/MV transformer, MV lines) is shared. An area's LP holds its
subtree plus the *path* of shared buses from the slack bus down to it; everything else
folds onto that path as fixed load (`fold_matrix`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from cloud_controller.dispatch.problem import IntArray, Problem
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


def split_areas(
    grid: RadialGrid, site_bus: IntArray, *, max_sites: int = 200, max_buses: int = 300
) -> list[Area]:
    """Cut the tree into areas of at most `max_sites` sites and `max_buses` buses where the
    tree allows it.

    Starting from the branches out of the slack bus, a subtree with more than `max_sites`
    sites or `max_buses` buses is replaced by the subtrees below its top bus (which becomes
    a shared bus), as long as no site sits on that bus. (The bus count matters too: a
    feeder with few sites but a whole LV network costs as much as a full one; measured,
    1,000 buildings x 96 on the full LV network: an area of 43 sites and 630 buses took
    3.6 s, one of 56 sites and ~200 buses 1 s.) Subtrees without sites are not areas: their fixed
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
        path: list[int] = []
        b = int(grid.parent[k])
        while b != -1:
            path.append(b)
            b = int(parent_of[b])
        path.reverse()
        path_br = [int(branch_of[b]) for b in path[1:]]
        in_area = np.zeros(grid.n_bus, dtype=bool)
        in_area[buses] = True
        areas.append(
            Area(
                top_branch=k,
                buses=np.asarray(buses, dtype=np.int64),
                branches=np.asarray(branches, dtype=np.int64),
                path_buses=np.asarray(path, dtype=np.int64),
                path_branches=np.asarray(path_br, dtype=np.int64),
                sites=np.flatnonzero(in_area[site_bus]).astype(np.int64),
            )
        )
    return areas


def decomposable(problem: Problem) -> str | None:
    """Why `problem` cannot be decomposed by area (None if it can)."""
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
    branches above a bus are the branches it is below."""
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


def sub_problem(problem: Problem, area: Area) -> tuple[Problem, IntArray, IntArray, IntArray]:
    """The area's Problem (path + subtree), its buses in full indices, its batteries and heat pumps."""
    g = problem.grid
    buses = np.concatenate([area.path_buses, area.buses])
    branches = np.concatenate([area.path_branches, area.branches])
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
