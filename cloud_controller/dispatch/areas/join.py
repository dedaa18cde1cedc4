"""Joining the areas of `DecomposedEngine`: their schedules into one, their bases into a start."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cloud_controller.dispatch.areas.areas import Area
from cloud_controller.dispatch.areas.group import AreaStart
from cloud_controller.dispatch.engine import DispatchEngine
from cloud_controller.dispatch.highs.crash import BASIC, LOWER
from cloud_controller.dispatch.highs.joined_basis import AreaBasis, joined_basis
from cloud_controller.dispatch.model.problem import FloatArray, IntArray, Problem
from cloud_controller.dispatch.model.schedule import Schedule, Violation
from cloud_controller.dispatch.routes.lazy import V_UP


@dataclass
class AreaLp:
    """The maps between one area's LP and the full problem (its engine is in an `AreaGroup`)."""

    area: Area
    bats: IntArray  # full battery indices
    hps: IntArray  # full heat-pump indices
    fold: sp.csr_matrix  # (n_sub_bus, N): every full bus to its own or nearest path bus
    sub: Problem  # the area's problem


def start_from_areas(
    problem: Problem, subs: list[AreaLp], starts: dict[int, AreaStart | None], full: DispatchEngine
) -> bool:
    """Give the whole gridless LP the areas' grid rows and their joined bases as its start.

    The grid rows are those the areas added (`starts`, by area index, from wherever the
    areas are solved); the bases are joined by `joined_basis.py`. False if an area has no
    basis (answered site by site) or HiGHS refuses the start.
    """
    p = problem
    hs_pos = np.full(p.n_hp, -1, dtype=np.int64)
    hs_full = np.flatnonzero(p.ts_e_max_kwh > 0)
    hs_pos[hs_full] = np.arange(len(hs_full))
    if full.lazy is None or full.ix.r_v_up is None:  # builds the LP (by_site builds it late)
        return False  # the joined basis needs the numpy builder's full index
    parts: list[AreaBasis] = []
    kinds, elems, ts, row_st, slack_st = [], [], [], [], []
    for i, s in enumerate(subs):
        start = starts.get(i)
        if start is None:
            return False
        status = (start.col_status, start.row_status)
        sub_hs = np.flatnonzero(start.ts_e_max_kwh > 0)
        parts.append(
            AreaBasis(
                ix=start.ix,
                col_status=status[0],
                row_status=status[1],
                sites=s.area.sites,
                batteries=s.bats,
                heat_pumps=s.hps,
                stores=hs_pos[s.hps[sub_hs]],
            )
        )
        kind, elem, t, rows, slacks = start.added
        # the area LP's branches and buses are its path's, then its own (sub_problem)
        branch_of = np.concatenate([s.area.path_branches, s.area.branches])
        bus_of = np.concatenate([s.area.path_buses, s.area.buses])
        kinds.append(kind)
        elems.append(np.where(kind < V_UP, branch_of[np.minimum(elem, len(branch_of) - 1)], bus_of[elem]))
        ts.append(t)
        row_st.append(status[1][rows])
        slack_st.append(status[0][slacks])
    kind, elem, t = np.concatenate(kinds), np.concatenate(elems), np.concatenate(ts)
    # a path row two areas both added goes in once, with the first area's statuses
    key = (kind * (p.horizon + 1) + t) * (p.grid.n_bus + p.grid.n_branch + 1) + elem
    _, first = np.unique(key, return_index=True)
    rows, slacks = full.add_grid_rows(kind[first], elem[first], t[first])
    col, row = joined_basis(full.ix, parts)
    n_col, n_row = full.ix.n_cols + len(slacks), full.ix.n_rows + len(rows)
    col = np.concatenate([col, np.full(n_col - len(col), LOWER)])
    row = np.concatenate([row, np.full(n_row - len(row), BASIC)])
    col[slacks] = np.concatenate(slack_st)[first]
    row[rows] = np.concatenate(row_st)[first]
    return full.start_from(col, row)


def assemble(
    problem: Problem,
    subs: list[AreaLp],
    parts: list[Schedule],
    p_site: FloatArray,
    flows: FloatArray,
    v: FloatArray,
    root_kw: FloatArray,
) -> Schedule:
    """The areas' schedules as one schedule of the full problem (indices mapped back)."""
    p = problem
    T = p.horizon

    def gather(name: str, n: int, idx: Callable[[AreaLp], IntArray]) -> FloatArray:
        out = np.zeros((T, n))
        for s, part in zip(subs, parts, strict=True):
            out[:, idx(s)] = getattr(part, name)
        return out

    def by_site(s: AreaLp) -> IntArray:
        return s.area.sites

    def by_bat(s: AreaLp) -> IntArray:
        return s.bats

    def by_hp(s: AreaLp) -> IntArray:
        return s.hps

    violations: list[Violation] = []
    for s, part in zip(subs, parts, strict=True):
        for viol in part.violations:
            kind, elem = viol.kind, viol.element
            if kind == "heat_unmet":
                elem = f"hp:{int(s.hps[int(elem.split(':')[1])])}"
            elif kind == "shed":
                elem = f"site:{int(s.area.sites[int(elem.split(':')[1])])}"
            violations.append(Violation(kind, elem, viol.t, viol.amount))
    return Schedule(
        p_site_kw=p_site,
        p_bat_kw=gather("p_bat_kw", p.n_bat, by_bat),
        p_bat_ch_kw=gather("p_bat_ch_kw", p.n_bat, by_bat),
        p_bat_dis_kw=gather("p_bat_dis_kw", p.n_bat, by_bat),
        e_bat_kwh=gather("e_bat_kwh", p.n_bat, by_bat),
        p_hp_kw=gather("p_hp_kw", p.n_hp, by_hp),
        q_ts_kw=gather("q_ts_kw", p.n_hp, by_hp),
        e_ts_kwh=gather("e_ts_kwh", p.n_hp, by_hp),
        curtail_kw=gather("curtail_kw", p.n_sites, by_site),
        p_unit_kw=np.zeros((T, 0)),
        p_root_kw=root_kw,
        branch_flow_kw=flows,
        v_pu=v,
        objective=float(sum(part.objective for part in parts)),
        violations=violations,
    )
