"""Linear scenario model of a radial network around an AC base case (the fast forecast's core).

Why it is accurate enough: on a radial network a branch carries the sum of what is below it,
and the voltage at a bus is the root's minus the drops along its path. Around an AC operating
point (power-grid-model at the interval's median loads) only a scenario's *deviation* is
propagated, with two bottom-up and one top-down sweep over the tree:

* voltage (DistFlow, linear in u = V²): δu_child = δu_parent / t² − 2 (r κ + x ξ) ΔP per branch,
  ΔP the sum of the site deviations below it, κ − 1 and ξ the marginal active and reactive
  losses below it from the base case (2 r P / V², 2 x P / V² per branch, accumulated
  bottom-up, in the direction the sites' σ deviate in), t a transformer's off-nominal ratio;
* branch current (KCL, so no loss model at all): the base current plus the change of every
  load current below it, p / V at the scenario's own voltage; the reactive part stays at the
  base's. Loading is that current over the base case's (calibrated to PGM's loading
  definitions), so a flow that reverses under PV feed-in is handled by the magnitude.

What is dropped: the losses' second-order growth (measured: 1e-4 pu of the error), the z² S² / V²
term of DistFlow, the reactive current's change, and the voltage
angles' spread below a branch (under a degree in distribution grids). tests/unit/forecast/
holds it to 1 percentage point of loading and 0.002 pu against the full AC batch, scenario by
scenario, at up to 140 % loading and 0.91 pu. Arrays are float32 (E, T, S): element,
interval, scenario.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from cloud_controller.grid.pgm_input import finite_or
from cloud_controller.grid.radial import RadialGrid

__all__ = ["BaseCase", "TreeModel"]

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class BaseCase:
    """The AC operating point per interval (T rows) in tree order, and the sensitivities from it."""

    loading: FloatArray  # (T, K) fraction of rating
    p_rec_mw: FloatArray  # (T, K)
    q_rec_mvar: FloatArray  # (T, K)
    vm_pu: FloatArray  # (T, N)
    kappa: FloatArray  # (T, K) dP_rec,k / dΔP_k
    xi: FloatArray  # (T, K) dQ_rec,k / dΔP_k
    scale: FloatArray  # (T, K) loading per (|S| MVA / V pu) at the child end
    du_coef: FloatArray  # (T, K) 2 (r κ + x ξ): the drop in V² per MW of ΔP
    i_re: FloatArray  # (T, K) base current at the child end, in phase with its voltage (MW / pu)
    i_im: FloatArray  # (T, K) its reactive part


class TreeModel:
    """The radial tree of a region with per-unit impedances and the sites' place in it."""

    def __init__(self, net: Any, grid: RadialGrid, site_bus: npt.ArrayLike) -> None:
        """`site_bus`: each site's internal bus index (several sites may share one)."""
        self.grid = grid
        self.site_bus = np.asarray(site_bus, dtype=np.int64)
        k_n = grid.n_branch
        self._impedances(net, grid)
        # depth levels for the sweeps (parents before children within the BFS branch order)
        depth = np.zeros(grid.n_bus, dtype=np.int64)
        branch_of_bus = np.full(grid.n_bus, -1, dtype=np.int64)
        for k in range(k_n):  # BFS order: a parent's depth is set before its children's
            depth[grid.child[k]] = depth[grid.parent[k]] + 1
            branch_of_bus[grid.child[k]] = k
        self.branch_of_bus = branch_of_bus
        bdepth = depth[grid.child]
        self.levels = [np.flatnonzero(bdepth == d) for d in range(1, int(bdepth.max(initial=0)) + 1)]
        # parent branch of each branch (-1 below the root)
        self.parent_branch = branch_of_bus[grid.parent]
        # downstream incidence: branch k x site i = 1 where site i is below branch k
        rows: list[int] = []
        cols: list[int] = []
        for i, b in enumerate(self.site_bus):
            k = int(branch_of_bus[int(b)])
            while k >= 0:
                rows.append(k)
                cols.append(i)
                k = int(self.parent_branch[k])
        # BFS order makes branch k feed bus k + 1: the child voltages are then a view, not a gather
        self._child_is_next = bool(np.array_equal(grid.child, np.arange(1, k_n + 1)))
        # the sweeps' plans: (branch, its parent branch) bottom-up; (branch, child, parent, 1/t) top-down
        self._up = [
            (k, int(self.parent_branch[k])) for k in range(k_n - 1, -1, -1) if self.parent_branch[k] >= 0
        ]
        self._down = [
            (k, int(grid.child[k]), int(grid.parent[k]), float(1.0 / self.ratio[k])) for k in range(k_n)
        ]
        at_root = branch_of_bus[self.site_bus] < 0
        self._own = sp.csr_matrix(
            (
                np.ones(int((~at_root).sum()), dtype=np.float32),
                (branch_of_bus[self.site_bus[~at_root]], np.flatnonzero(~at_root)),
            ),
            shape=(k_n, len(self.site_bus)),
        )
        self.below = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(k_n, len(self.site_bus))
        )

    def _impedances(self, net: Any, grid: RadialGrid) -> None:
        """Per branch: per-unit r and x (1 MVA base), rating at 1 pu, loading limit, off-nominal ratio."""
        k_n = grid.n_branch
        self.r_pu = np.zeros(k_n)
        self.x_pu = np.zeros(k_n)
        self.ratio = np.ones(k_n)
        self.rated_mva = np.full(k_n, np.inf)  # at 1 pu voltage
        self.limit_pct = np.full(k_n, 100.0)
        self.kind: list[str] = []
        for k, name in enumerate(grid.branch_names):
            table, idx_s = name.split(":")
            self.kind.append(table)
            idx = int(idx_s)
            vn = float(net.bus.vn_kv.at[int(grid.bus_ids[grid.child[k]])])
            if table == "line":
                ln = net.line.loc[idx]
                par = float(ln.parallel)
                self.r_pu[k] = float(ln.r_ohm_per_km) * float(ln.length_km) / par / vn**2
                self.x_pu[k] = float(ln.x_ohm_per_km) * float(ln.length_km) / par / vn**2
                df = float(ln.get("df", 1.0))
                self.rated_mva[k] = np.sqrt(3) * vn * float(ln.max_i_ka) * df * par
                self.limit_pct[k] = finite_or(ln.get("max_loading_percent"), 100.0)
            elif table == "trafo":
                tr = net.trafo.loc[idx]
                sn = float(tr.sn_mva) * float(tr.get("parallel", 1)) * float(tr.get("df", 1.0))
                ref = (float(tr.vn_lv_kv) / vn) ** 2
                vk, vkr = float(tr.vk_percent) / 100.0, float(tr.vkr_percent) / 100.0
                self.r_pu[k] = vkr / sn * ref
                self.x_pu[k] = np.sqrt(max(vk**2 - vkr**2, 0.0)) / sn * ref
                self.rated_mva[k] = sn
                self.limit_pct[k] = finite_or(tr.get("max_loading_percent"), 100.0)
                self.ratio[k] = _trafo_ratio(net, tr)

    @property
    def n_sites(self) -> int:
        """Number of load columns (sites) the model takes deviations of."""
        return len(self.site_bus)

    def base_case(
        self,
        loading: FloatArray,
        p_rec_mw: FloatArray,
        q_rec_mvar: FloatArray,
        vm_pu: FloatArray,
        weight_mw: FloatArray,
    ) -> BaseCase:
        """Sensitivities around an AC solution (T rows); `weight_mw` (T, n_sites) the direction of deviation.

        The marginal losses depend on where below a branch the deviation happens; the sites'
        standard deviations are the direction scenarios deviate in, so they weight it.
        """
        T, K = p_rec_mw.shape
        v_child = vm_pu[:, self.grid.child]
        # dP_rec / dλ and dQ_rec / dλ for loads moving by λ·weight (bottom-up)
        g = np.zeros((T, K))
        h = np.zeros((T, K))
        own = np.zeros((T, K))
        at_root = self.branch_of_bus[self.site_bus] < 0  # a site on the slack bus moves no branch
        np.add.at(own.T, self.branch_of_bus[self.site_bus[~at_root]], weight_mw[:, ~at_root].T)
        g += own
        flow_w = np.asarray(self.below @ weight_mw.T.astype(np.float32)).T.astype(float)  # (T, K) ΔW_k
        v2 = np.maximum(v_child, 0.5) ** 2
        for level in reversed(self.levels):
            parent = self.parent_branch[level]
            has = parent >= 0
            lv, par = level[has], parent[has]
            dloss_p = (
                2.0 * self.r_pu[lv] * (p_rec_mw[:, lv] * g[:, lv] + q_rec_mvar[:, lv] * h[:, lv]) / v2[:, lv]
            )
            dloss_q = (
                2.0 * self.x_pu[lv] * (p_rec_mw[:, lv] * g[:, lv] + q_rec_mvar[:, lv] * h[:, lv]) / v2[:, lv]
            )
            np.add.at(g.T, par, (g[:, lv] + dloss_p).T)
            np.add.at(h.T, par, (h[:, lv] + dloss_q).T)
        safe = np.where(flow_w > 1e-12, flow_w, 1.0)
        kappa = np.where(flow_w > 1e-12, g / safe, 1.0)
        xi = np.where(flow_w > 1e-12, h / safe, 0.0)
        i_re = p_rec_mw / np.maximum(v_child, 0.5)
        i_im = q_rec_mvar / np.maximum(v_child, 0.5)
        s0 = np.hypot(i_re, i_im)
        fallback = 1.0 / self.rated_mva
        calibrated = s0 > 1e-3 * np.where(np.isfinite(self.rated_mva), self.rated_mva, 0.0) + 1e-12
        scale = np.where(calibrated, loading / np.where(calibrated, s0, 1.0), fallback)
        du_coef = 2.0 * (self.r_pu * kappa + self.x_pu * xi)
        return BaseCase(loading, p_rec_mw, q_rec_mvar, vm_pu, kappa, xi, scale, du_coef, i_re, i_im)

    def scenarios(self, base: BaseCase, t_idx: IntArray, dp_mw: F32, p0_mw: F32) -> tuple[F32, F32]:
        """Branch loading (K, Tb, S) and bus voltage (N, Tb, S) for site deviations `dp_mw` (n_sites, Tb, S).

        `t_idx`: the base case's rows (intervals) this block covers; `p0_mw` (n_sites, Tb) the
        sites' medians the base case was solved at. In-place arithmetic on
        float32 blocks: this is the forecast's hot loop (~6 M values per indicator per block).
        """
        n, tb, s = dp_mw.shape
        # ΔP_k: each branch's own child-bus sites, then children added into parents bottom-up
        # (one in-place row add per branch: ~5x faster than the sparse product with `below`)
        flows = np.asarray(self._own @ dp_mw.reshape(n, tb * s), dtype=np.float32)
        for k, parent in self._up:
            flows[parent] += flows[k]
        flows = flows.reshape(-1, tb, s)
        b = _rows(base, t_idx)
        base_v_site = b["vm"][self.site_bus]
        # voltages in squared magnitude (DistFlow is linear in u = V²): δu_c = δu_p / t² − 2 (r δP + x δQ)
        du_drop = flows
        du_drop *= b["du_coef"][:, :, None]
        du = np.zeros((self.grid.n_bus, tb, s), dtype=np.float32)
        for k, child, parent, inv_ratio in self._down:
            if inv_ratio == 1.0:
                np.subtract(du[parent], du_drop[k], out=du[child])
            else:
                np.multiply(du[parent], np.float32(inv_ratio**2), out=du[child])
                du[child] -= du_drop[k]
        del du_drop, flows
        du += np.square(b["vm"])[:, :, None]
        vm = np.sqrt(np.maximum(du, np.float32(0.01), out=du), out=du)
        # branch currents (KCL, no losses to model): the base current plus the change of every
        # load current below, p / V at the scenario's own voltage; reactive part held at the base
        site_v = vm[self.site_bus]
        di = dp_mw + p0_mw[:, :, None]
        di /= site_v
        di -= (p0_mw / base_v_site)[:, :, None]
        del site_v
        cur = np.asarray(self._own @ di.reshape(n, tb * s), dtype=np.float32)
        del di
        for k, parent in self._up:
            cur[parent] += cur[k]
        cur = cur.reshape(-1, tb, s)
        cur += b["i_re"][:, :, None]
        np.multiply(cur, cur, out=cur)
        cur += np.square(b["i_im"])[:, :, None]
        loading = np.sqrt(cur, out=cur)
        loading *= b["scale"][:, :, None]
        return loading, vm


def _rows(base: BaseCase, t_idx: IntArray) -> dict[str, F32]:
    """The base case's rows `t_idx` as (element, interval) float32 blocks."""
    return {
        "vm": base.vm_pu[t_idx].T.astype(np.float32),
        "scale": base.scale[t_idx].T.astype(np.float32),
        "du_coef": base.du_coef[t_idx].T.astype(np.float32),
        "i_re": base.i_re[t_idx].T.astype(np.float32),
        "i_im": base.i_im[t_idx].T.astype(np.float32),
    }


def _trafo_ratio(net: Any, tr: Any) -> float:
    """Off-nominal voltage ratio of a transformer (HV pu / LV pu at no load), taps included."""
    hv_bus_kv = float(net.bus.vn_kv.at[int(tr.hv_bus)])
    lv_bus_kv = float(net.bus.vn_kv.at[int(tr.lv_bus)])
    hv, lv = float(tr.vn_hv_kv), float(tr.vn_lv_kv)
    pos = finite_or(tr.get("tap_pos"), np.nan)
    step = finite_or(tr.get("tap_step_percent"), 0.0)
    if np.isfinite(pos) and step:
        shift = 1.0 + (pos - finite_or(tr.get("tap_neutral"), 0.0)) * step / 100.0
        if tr.get("tap_side") == "hv":
            hv *= shift
        elif tr.get("tap_side") == "lv":
            lv *= shift
    return (hv / hv_bus_kv) / (lv / lv_bus_kv)
