"""GOPACS's grid rows on a meshed or multi-feed grid: each branch's room in each direction, by PTDF.

Why a row per direction: in a tree a reduction below a branch always pushes it the same way
(towards the root), so one row, its room for reverse flow, is enough (`grid_check`). In a
ring the same site moves one branch forward and the branch beside it backward, by a
fraction each (`GridView.ptdf`); the median flow may run either way per interval. So each
branch gets a from→to row and a to→from row, each held to `GridView.directed_headroom_kw`
at the risk level, and an offer's coefficient in a row is the most any of its sites pushes
the branch that way, per kW: the book does not know how the FSP splits the offer over its
sites, so the whole offer may come from that site (conservative). What an offer relieves
on another branch is not counted (also conservative: the rows never rely on it).
For a tree this gives exactly the radial rows: sensitivity −1 below the branch, so only
the to→from row, with coefficient 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cloud_controller.market.clearing import GridRow
from cloud_controller.market.grid_view import GridView

__all__ = ["DIRECTIONS", "MIN_SENS", "cover_per_kw", "meshed_rows", "row_id"]

#: A site that moves a branch by less than this (kW per kW) does not put an offer in its row:
#: the AC check judges what is left, and a ring of thousands of buses would give dense rows.
MIN_SENS = 1e-3
DIRECTIONS = ((1, "from-to"), (-1, "to-from"))


def row_id(element: str, direction: int) -> str:
    """The row's name: the branch and the direction it holds (`line:3 from-to`)."""
    return f"{element} {dict(DIRECTIONS)[direction]}"


def meshed_rows(
    view: GridView,
    offers: Sequence[tuple[str, Sequence[str]]],
    skip: set[str],
    risk: float,
) -> tuple[dict[str, dict[str, float]], list[GridRow], list[tuple[str, str]]]:
    """(sensitivity per offer and row, the rows, offers refused) for offers (id, sites) on `view.ptdf`.

    Branches in `skip` (the congestion points being cleared) and branches without a rating
    get no rows; an offer with a site outside the view is refused with the sites named.
    """
    if view.ptdf is None:
        raise ValueError("the grid view has no PTDF: a radial view uses grid_check's rows")
    index = {s: i for i, s in enumerate(view.sites)}
    names = view.grid.branch_names
    rated = np.isfinite(np.asarray(view.grid.rating_kw, dtype=float))
    sens: dict[str, dict[str, float]] = {}
    refused: list[tuple[str, str]] = []
    touched: dict[str, tuple[str, int]] = {}
    for offer_id, sites in offers:
        unknown = [s for s in sites if s not in index]
        if unknown or not sites:
            why = f"site(s) {', '.join(unknown)} not in the grid model" if unknown else "names no sites"
            refused.append((offer_id, f"grid: {why}: its effect on other elements is unknown"))
            continue
        cols = view.ptdf[:, [index[s] for s in sites]]  # (K, n)
        mine: dict[str, float] = {}
        for direction, _ in DIRECTIONS:
            push = np.max(direction * cols, axis=1)  # the most any site pushes each branch that way
            for k in np.flatnonzero((push >= MIN_SENS) & rated):
                if names[k] in skip:
                    continue
                rid = row_id(names[k], direction)
                mine[rid] = float(push[k])
                touched[rid] = (names[k], direction)
        sens[offer_id] = mine
    # already over at the risk level: nothing may add to it (0, not a negative bound the MILP cannot meet)
    rows = [
        GridRow(rid, {t: max(0.0, kw) for t, kw in view.directed_headroom_kw(e, risk, direction).items()})
        for rid, (e, direction) in sorted(touched.items())
    ]
    return sens, rows, refused


def cover_per_kw(view: GridView, offers: Sequence[tuple[str, str, Sequence[str]]]) -> dict[str, float]:
    """The relief (kW) at its own congestion point per kW ordered, per offer (id, congestion point, sites).

    Inside a mesh an offer relieves its congestion point by the PTDF of its sites only. The
    least over its sites (the whole offer may come from that one) and over the view's
    intervals (the median flow's direction decides what relieves), never below 0. An offer
    whose congestion point is not a branch of the view, or with a site outside it, keeps 1:
    the request and the rows refuse those on their own.
    """
    if view.ptdf is None:
        raise ValueError("the grid view has no PTDF: a radial view relieves 1:1")
    index = {s: i for i, s in enumerate(view.sites)}
    out: dict[str, float] = {}
    for offer_id, cp, sites in offers:
        try:
            _, k = view.branch(cp)
        except KeyError:
            continue
        if not sites or any(s not in index for s in sites):
            continue
        toward = np.where(view.signed_p50_kw[:, k] >= 0.0, 1.0, -1.0)  # (T,) the median's direction
        relief = -toward[:, None] * view.ptdf[k, [index[s] for s in sites]][None, :]  # (T, n)
        out[offer_id] = max(0.0, float(np.min(relief)))
    return out
