"""A meshed or multi-feed network as the dispatch LP's grid: B-theta rows in the LinDistFlow rows' place.

Why a `RadialGrid` subclass and not a second LP: the dispatch LP's grid rows are one balance
row per bus (flows in and out, the slack's import, sites, units) and one row per branch
``v_child - v_parent + r_k · f_k = 0``. With ``parent``/``child`` read as a branch's from/to
bus, ``v`` as the bus voltage angle (rad) and ``r_k = 1 / (base_kw · b_k)`` that row *is* the
DC branch law ``f_k = base · b_k · (va_f - va_t - shift_k)`` (right-hand side ``-shift_k``),
and the balance rows hold on any graph. So sites, batteries, heat pumps, the per-branch
(T, K) rating and the station limit stay the LP's own families, and the planner's warm
re-solve (bounds and costs only) keeps its basis.

What differs from a tree, and where the LP reads it (`dispatch/model/lp.py`):
- every island's reference bus has its angle fixed (`ref_bus`, `ref_va_rad`); the slack
  column (`root`) is the first reference bus's ext_grid;
- every other ext_grid is a feeding point: a dispatchable unit of the problem
  (`Problem.unit_feed`), counted with the slack in the station rows;
- the voltage band has no meaning on angles: problems on a `DcGrid` run with
  `enforce_voltage=False`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from cloud_controller.grid.meshed.network import DcNetwork, FloatArray, IntArray
from cloud_controller.grid.meshed.translate import dc_network_from_pandapower
from cloud_controller.grid.radial import RadialGrid
from cloud_controller.grid.region import Region
from protocols.errors import ConfigError

KW_PER_MW = 1000.0
ANGLE_BAND_RAD = 1e3  # "no band": the LP's voltage rows are relaxed on angle columns


@dataclass(frozen=True)
class DcGrid(RadialGrid):
    """A `RadialGrid` whose branches may form loops: parent/child are from/to, `v` is the angle (rad).

    `r_pu_per_kw` is rad per kW of from-side flow. `feed_bus` / `feed_names` are the ext_grids
    other than the slack (each a unit of a problem on this grid, see `feed_units`).
    """

    shift_rad: FloatArray  # (K,) phase shift: the branch row's right-hand side is -shift
    ref_bus: IntArray  # every island's reference bus (angle fixed), ref_bus[0] == root
    ref_va_rad: FloatArray
    island: IntArray  # (N,)
    feed_bus: IntArray  # buses of the feeding points other than the slack
    feed_names: tuple[str, ...]  # their "ext_grid:<index>"
    root_name: str  # the slack's "ext_grid:<index>"
    base_mva: float

    def branch_flows_kw(self, bus_load_kw: FloatArray) -> FloatArray:
        """DC flows for given bus loads (kW, load positive, (..., N)); the slack alone balances them.

        Only the slack balances here: with several feeding points the flows also depend on
        what each one feeds, which only the LP decides (its schedule holds the flows).
        """
        loads = np.asarray(bus_load_kw, dtype=float)
        flat = loads.reshape(-1, self.n_bus)
        out = (
            np.stack([self.dc_flows_kw(-row) for row in flat]) if len(flat) else np.zeros((0, self.n_branch))
        )
        return out.reshape(*loads.shape[:-1], self.n_branch)

    def dc_flows_kw(self, injection_kw: FloatArray) -> FloatArray:
        """From-side flows (kW) of a DC power flow with these bus injections; each island's reference balances."""
        inc = sp.csr_matrix(
            (
                np.concatenate([np.ones(self.n_branch), -np.ones(self.n_branch)]),
                (np.concatenate([self.parent, self.child]), np.tile(np.arange(self.n_branch), 2)),
            ),
            shape=(self.n_bus, self.n_branch),
        )
        b_kw = 1.0 / self.r_pu_per_kw  # kW per rad
        rhs = np.asarray(injection_kw, dtype=float) + inc @ (b_kw * self.shift_rad)
        va = np.zeros(self.n_bus)
        va[self.ref_bus] = self.ref_va_rad
        free = np.setdiff1d(np.arange(self.n_bus), self.ref_bus)
        b_bus = (inc @ sp.diags(b_kw) @ inc.T).tocsr()
        if len(free):
            rhs_free = rhs[free] - b_bus[free][:, self.ref_bus] @ va[self.ref_bus]
            va[free] = spla.spsolve(b_bus[free][:, free].tocsc(), rhs_free)
        return np.asarray(b_kw * (inc.T @ va - self.shift_rad), dtype=float)


def dc_grid(network: DcNetwork, rating_kw: FloatArray | None = None) -> DcGrid:
    """The dispatch LP's grid of a translated network; `rating_kw` replaces the network's ratings.

    Why a rating argument: `rundcopp` leaves a branch without ``max_loading_percent``
    unlimited (the network's `branch_rating_mw`), the planner's limits rate it at 100 %
    (`grid/limits.py`); each caller states which it plans against.
    """
    if len(network.ref_bus) == 0:
        raise ConfigError("no reference bus: a DC network needs an ext_grid", key="ext_grid")
    b = network.branch_b_pu
    if (~np.isfinite(b)).any() or (b == 0).any():
        k = int(np.flatnonzero(~np.isfinite(b) | (b == 0))[0])
        raise ConfigError(
            f"branch {network.branch_names[k]} has no finite reactance", key=network.branch_names[k]
        )
    feeds = [g for g, name in enumerate(network.unit_names) if name.startswith("ext_grid:")]
    root = int(network.ref_bus[0])
    root_unit = next(g for g in feeds if int(network.unit_bus[g]) == root)
    others = [g for g in feeds if g != root_unit]
    n = network.n_bus
    rating = network.branch_rating_mw * KW_PER_MW if rating_kw is None else np.asarray(rating_kw, dtype=float)
    return DcGrid(
        bus_ids=network.bus_ids.copy(),
        root=root,
        parent=network.branch_from.copy(),
        child=network.branch_to.copy(),
        rating_kw=rating,
        r_pu_per_kw=1.0 / (network.base_mva * KW_PER_MW * b),
        branch_names=network.branch_names,
        v_root_pu=float(network.ref_va_rad[0]),
        v_min_pu=np.full(n, -ANGLE_BAND_RAD),
        v_max_pu=np.full(n, ANGLE_BAND_RAD),
        shift_rad=network.branch_shift_rad.copy(),
        ref_bus=network.ref_bus.copy(),
        ref_va_rad=network.ref_va_rad.copy(),
        island=network.island.copy(),
        feed_bus=network.unit_bus[others].astype(np.int64),
        feed_names=tuple(network.unit_names[g] for g in others),
        root_name=network.unit_names[root_unit],
        base_mva=network.base_mva,
    )


def pp_bus_index(net: Any, network: DcNetwork) -> dict[int, int]:
    """Internal bus of every pandapower bus that survives the translation (fused buses included)."""
    from cloud_controller.grid.meshed.translate import _fuse_buses

    fuse = _fuse_buses(net)
    pos = {int(b): i for i, b in enumerate(network.bus_ids)}
    return {b: pos[fuse.find(b)] for b in fuse.parent if fuse.find(b) in pos}


def is_meshed_net(net: Any) -> bool:
    """Whether `net` has a loop or several in-service ext_grids (`network_shape`): then it is planned as a `DcGrid`.

    A net the DC translation refuses (e.g. a ward, a three-winding transformer) is left to
    the radial model, which accepts or refuses it with its own error.
    """
    from cloud_controller.grid.meshed.choose import network_shape

    try:
        network = dc_network_from_pandapower(net)
    except ConfigError:
        return False
    return not network_shape(network).radial


def meshed_region(net: Any, *, rating_kw: FloatArray | None = None) -> Region:
    """A `Region` of a meshed or multi-feed net: its loads are the sites, its grid a `DcGrid`.

    Ratings: the planner's (`limits_from_pandapower`: 100 % where ``max_loading_percent`` is
    absent) unless given. There are no MV/LV stations or HV/MV transformer in this view: the
    planner holds every branch of the net by its own rating.
    """
    from cloud_controller.grid.limits import limits_from_pandapower

    network = dc_network_from_pandapower(net)
    if rating_kw is None:
        limits = limits_from_pandapower(net)
        rating_kw = np.asarray(
            [
                limits.branches[limits.name_of_ref(ref)].rating_kw
                if limits.name_of_ref(ref) in limits.branches
                else np.inf
                for ref in network.branch_names
            ]
        )
    grid = dc_grid(network, rating_kw)
    at = pp_bus_index(net, network)
    loads = net.load[net.load.in_service.astype(bool)]
    site_bus: list[int] = []
    for idx, b in zip(loads.index, loads.bus, strict=True):
        if int(b) not in at:
            raise ConfigError(
                f"load {idx} sits on bus {int(b)}, not connected to a feeding point", key=f"load:{idx}"
            )
        site_bus.append(at[int(b)])
    return Region(
        net=net,
        grid=grid,
        site_names=tuple(str(n) for n in loads.name),
        site_bus=np.asarray(site_bus, dtype=np.int64),
        site_load_idx=loads.index.to_numpy(dtype=np.int64),
        site_station=("",) * len(loads),
        station_branch={},
        hvmv_branch=None,
    )
