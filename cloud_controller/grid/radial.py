"""Sparse linear model of a radial network (LinDistFlow, active power only).

Why branch flows instead of a dense PTDF: in a radial net the flow on a branch is the
sum of the injections below it, so one balance row per bus and one voltage-drop row per
branch give O(N) non-zeros, where a PTDF matrix has O(N * depth).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud_controller.grid.quiet import quiet_pandapower
from protocols.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RadialGrid:
    """A tree rooted at the slack bus; branch k feeds bus `child[k]` from bus `parent[k]`.

    Flows are in kW, positive from parent to child (towards the loads). `r_pu_per_kw`
    is the linear voltage drop per kW of flow: v_child = v_parent - r_pu_per_kw * f.
    """

    bus_ids: IntArray  # pandapower bus index of each internal bus
    root: int  # internal index of the slack bus
    parent: IntArray  # (K,) internal bus index
    child: IntArray  # (K,)
    rating_kw: FloatArray  # (K,) thermal limit as active power at 1 pu (inf if none)
    r_pu_per_kw: FloatArray  # (K,)
    branch_names: tuple[str, ...]  # e.g. "line:12", "trafo:3"
    v_root_pu: float
    v_min_pu: FloatArray  # (N,)
    v_max_pu: FloatArray  # (N,)

    @property
    def n_bus(self) -> int:
        """Number of buses."""
        return len(self.bus_ids)

    @property
    def n_branch(self) -> int:
        """Number of branches (one per bus below the slack: each bus's branch to its parent)."""
        return len(self.parent)

    def index_of(self, pp_bus: int) -> int:
        """Internal index of a pandapower bus id."""
        hits = np.flatnonzero(self.bus_ids == pp_bus)
        if len(hits) == 0:
            raise ConfigError(f"bus {pp_bus} is not connected to the slack", key="bus")
        return int(hits[0])

    def branch_flows_kw(self, bus_load_kw: FloatArray) -> FloatArray:
        """Flows for given bus loads (kW, load positive, shape (..., N)): sum of the subtree."""
        loads = np.array(bus_load_kw, dtype=float, copy=True)
        order = self._bottom_up()
        flows = np.zeros((*loads.shape[:-1], self.n_branch))
        for k in order:
            c, p = self.child[k], self.parent[k]
            flows[..., k] = loads[..., c]
            loads[..., p] += loads[..., c]
        return flows

    def root_load_kw(self, bus_load_kw: FloatArray) -> FloatArray:
        """Total load seen at the slack (lossless)."""
        return np.asarray(np.sum(bus_load_kw, axis=-1), dtype=float)

    def _bottom_up(self) -> list[int]:
        depth = np.zeros(self.n_bus, dtype=int)
        by_child = {int(c): k for k, c in enumerate(self.child)}
        # breadth-first from root gives depths; deeper branches first
        children: dict[int, list[int]] = {}
        for k, p in enumerate(self.parent):
            children.setdefault(int(p), []).append(k)
        queue = deque([self.root])
        while queue:
            b = queue.popleft()
            for k in children.get(b, []):
                depth[self.child[k]] = depth[b] + 1
                queue.append(int(self.child[k]))
        del by_child
        return sorted(range(self.n_branch), key=lambda k: -depth[self.child[k]])


def _line_rating_kw(line: Any, vn_kv: float) -> float:
    max_loading = float(line.get("max_loading_percent", 100.0))
    if not np.isfinite(max_loading):
        max_loading = 100.0
    return float(line.max_i_ka * line.df * line.parallel * vn_kv * np.sqrt(3) * 1e3 * max_loading / 100.0)


def radial_from_pandapower(net: Any, *, v_min_pu: float = 0.9, v_max_pu: float = 1.1) -> RadialGrid:
    """Build the radial model from an in-service pandapower net with exactly one ext_grid.

    Open switches are respected; a mesh raises ConfigError (the linear model would be wrong).
    """
    quiet_pandapower()
    import pandapower.topology as top

    eg = net.ext_grid[net.ext_grid.in_service]
    if len(eg) != 1:
        raise ConfigError(f"need exactly one in-service ext_grid, found {len(eg)}", key="ext_grid")
    graph = top.create_nxgraph(net, respect_switches=True, include_out_of_service=False, multi=True)
    root_pp = int(eg.bus.iloc[0])
    bus_ids: list[int] = [root_pp]
    index = {root_pp: 0}
    parent: list[int] = []
    child: list[int] = []
    rating: list[float] = []
    rsens: list[float] = []
    names: list[str] = []
    used: set[tuple[str, int]] = set()
    queue = deque([root_pp])
    while queue:
        b = queue.popleft()
        for _, nb, key in graph.edges(b, keys=True):
            table, idx = str(key[0]), int(key[1])
            if (table, idx) in used:
                continue
            used.add((table, idx))
            if nb in index:
                raise ConfigError(f"network is meshed at {table} {idx}", key=table)
            if table == "switch":
                # closed bus-bus switch: treat as an ideal branch
                rat, rs = np.inf, 0.0
            elif table == "line":
                ln = net.line.loc[idx]
                vn = float(net.bus.vn_kv.at[nb])
                rat = _line_rating_kw(ln, vn)
                r_ohm = ln.r_ohm_per_km * ln.length_km / ln.parallel
                rs = r_ohm / (1000.0 * vn**2)
            elif table == "trafo":
                tr = net.trafo.loc[idx]
                ml = float(tr.get("max_loading_percent", 100.0))
                ml = 100.0 if not np.isfinite(ml) else ml
                rat = float(tr.sn_mva * 1e3 * tr.get("parallel", 1) * ml / 100.0)
                rs = float(tr.vkr_percent / 100.0 / (tr.sn_mva * 1e3 * tr.get("parallel", 1)))
            else:
                raise ConfigError(f"unsupported branch element {table}", key=table)
            index[nb] = len(bus_ids)
            bus_ids.append(int(nb))
            parent.append(index[b])
            child.append(index[nb])
            rating.append(rat)
            rsens.append(rs)
            names.append(f"{table}:{idx}")
            queue.append(nb)
    ids = np.asarray(bus_ids, dtype=np.int64)
    vmin = net.bus.get("min_vm_pu")
    vmax = net.bus.get("max_vm_pu")
    vmin_arr = np.full(len(ids), v_min_pu)
    vmax_arr = np.full(len(ids), v_max_pu)
    if vmin is not None:
        vals = vmin.reindex(ids).to_numpy(dtype=float)
        vmin_arr = np.where(np.isfinite(vals), vals, v_min_pu)
    if vmax is not None:
        vals = vmax.reindex(ids).to_numpy(dtype=float)
        vmax_arr = np.where(np.isfinite(vals), vals, v_max_pu)
    return RadialGrid(
        bus_ids=ids,
        root=0,
        parent=np.asarray(parent, dtype=np.int64),
        child=np.asarray(child, dtype=np.int64),
        rating_kw=np.asarray(rating, dtype=float),
        r_pu_per_kw=np.asarray(rsens, dtype=float),
        branch_names=tuple(names),
        v_root_pu=float(eg.vm_pu.iloc[0]),
        v_min_pu=vmin_arr,
        v_max_pu=vmax_arr,
    )
