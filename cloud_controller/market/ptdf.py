"""Linear sensitivities of a meshed or multi-feed region for the market: PTDFs on its DC network.

Why not the tree's paths: in a ring a site's power splits over both ways round, and with
several feeding points over the feeds, so a reduction at a site moves each branch by a
fraction (the power transfer distribution factor, PTDF) instead of 0 or 1 kW per kW.

Why every feeding point is held at a fixed angle here, while the planner's `DcGrid` lets
only each island's reference balance (the other ext_grids are units the LP dispatches):
the market asks what an order does to the grid as it runs, and in the AC power flow that
checks the orders (power-grid-model) every ext_grid is a voltage source at its angle.
The B-theta model is the planner's (`grid/meshed/planning.py`: flow from→to
``b_kw · (va_from − va_to − shift)``, `b_kw = 1 / r_pu_per_kw`), lossless, reactive power
ignored; `tests/unit/market/test_meshed_rows.py` compares it with pandapower's AC and DC
power flows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from cloud_controller.grid.meshed.network import IntArray
from cloud_controller.grid.meshed.planning import DcGrid
from cloud_controller.market.grid_view import FloatArray

__all__ = ["dc_flows_kw", "feed_buses", "reduction_ptdf"]


def feed_buses(grid: DcGrid) -> IntArray:
    """Buses held at a fixed angle: every island's reference and every other feeding point."""
    return np.unique(np.concatenate([grid.ref_bus, grid.feed_bus]).astype(np.int64))


class _Solver:
    """The B-theta system of `grid` with the feeding buses fixed, factorised once."""

    def __init__(self, grid: DcGrid) -> None:
        k = np.arange(grid.n_branch)
        self.inc = sp.csr_matrix(
            (
                np.concatenate([np.ones(grid.n_branch), -np.ones(grid.n_branch)]),
                (np.concatenate([grid.parent, grid.child]), np.concatenate([k, k])),
            ),
            shape=(grid.n_bus, grid.n_branch),
        )
        self.b_kw = 1.0 / np.asarray(grid.r_pu_per_kw, dtype=float)  # kW per rad
        b_bus = (self.inc @ sp.diags(self.b_kw) @ self.inc.T).tocsr()
        self.fixed = feed_buses(grid)
        self.free = np.setdiff1d(np.arange(grid.n_bus), self.fixed)
        ref_va = dict(zip(grid.ref_bus.tolist(), grid.ref_va_rad.tolist(), strict=True))
        self.va_fixed = np.asarray([ref_va.get(int(b), 0.0) for b in self.fixed])  # other feeds at 0 rad
        self.b_ff = b_bus[self.free][:, self.free].tocsc()
        self.b_fx = b_bus[self.free][:, self.fixed]
        self.lu = spla.splu(self.b_ff) if len(self.free) else None
        self.n_bus = grid.n_bus
        self.shift = np.asarray(grid.shift_rad, dtype=float)

    def angles(self, rhs_free: FloatArray) -> FloatArray:
        """(N, m) angles for m right-hand sides on the free buses (fixed buses at their angle)."""
        va = np.zeros((self.n_bus, rhs_free.shape[1]))
        va[self.fixed] = self.va_fixed[:, None]
        if self.lu is not None:
            va[self.free] = self.lu.solve(np.ascontiguousarray(rhs_free))
        return va


def reduction_ptdf(grid: DcGrid, buses: Sequence[int] | IntArray) -> FloatArray:
    """(K, len(buses)) change of each branch's from→to flow (kW) per kW of reduction at each bus.

    A reduction is an injection at the bus, taken up by the feeding points; at a feeding
    bus it changes no branch. For a tree it is −1 on the path to the root, 0 elsewhere.
    """
    s = _Solver(grid)
    pos = {int(b): i for i, b in enumerate(s.free)}
    rhs = np.zeros((len(s.free), len(buses)))
    for j, b in enumerate(buses):
        if int(b) in pos:
            rhs[pos[int(b)], j] = 1.0
    va = s.angles(rhs)
    va[s.fixed] = 0.0  # a sensitivity: the fixed angles do not move
    return np.asarray(s.b_kw[:, None] * (s.inc.T @ va), dtype=float)


def dc_flows_kw(grid: DcGrid, bus_load_kw: FloatArray) -> FloatArray:
    """(T, K) from→to flows of bus loads (T, N) kW (load positive), every feeding point at its angle."""
    s = _Solver(grid)
    loads = np.atleast_2d(np.asarray(bus_load_kw, dtype=float))
    rhs = -loads.T + (s.inc @ (s.b_kw * s.shift))[:, None]  # (N, T)
    rhs_free = rhs[s.free] - s.b_fx @ np.broadcast_to(s.va_fixed[:, None], (len(s.fixed), loads.shape[0]))
    va = s.angles(np.asarray(rhs_free))
    return np.asarray((s.b_kw[:, None] * (s.inc.T @ va - s.shift[:, None])).T, dtype=float)
