"""Per-element AC power flows for the congestion forecast: every branch and every bus, not extremes.

Why a subclass of `BatchPowerFlow`: the dispatch check keeps only the per-step extremes of
line loading and voltage (a year of every line would be hundreds of MB); the congestion
forecast needs each element, for one horizon at a time. Same PGM model, same element
models and loading definitions (lines: max(i_from, i_to) / i_n; transformers: pandapower's
"current" loading, rated voltage x current per side over sn), so a forecast element here is
the same number the AC check reports.

Everything is returned in the region grid's order (`RadialGrid.branch_names`, `bus_ids`), so
the linear scenario model (`sensitivity.py`) and this reference line up column by column. On a
meshed or multi-feed region (`DcGrid`: parent/child read as from/to bus) the same holds, and
power-grid-model solves the loops and the several sources itself; the net's sgens, storages
and shunts are modelled at their fixed values (`injections=True`), as pandapower's `runpp` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud_controller.grid.pgm_input import _in_service, finite_or
from cloud_controller.grid.powerflow import BatchPowerFlow
from cloud_controller.grid.radial import RadialGrid
from protocols.errors import ConfigError

__all__ = ["ElementFlows", "ElementPowerFlow"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ElementFlows:
    """AC results per step (rows) for every branch and bus of the radial tree (columns)."""

    branch_loading: FloatArray  # (n, K) fraction of the element's rating (1.0 = 100 %)
    p_rec_mw: FloatArray  # (n, K) active power delivered into the branch's child bus
    q_rec_mvar: FloatArray  # (n, K) reactive power delivered into the child bus
    vm_pu: FloatArray  # (n, N) bus voltage magnitude
    failed_steps: IntArray


class ElementPowerFlow(BatchPowerFlow):
    """`BatchPowerFlow` that reports every line, transformer and bus of `grid` per step."""

    def __init__(self, net: Any, grid: RadialGrid, load_idx: npt.ArrayLike) -> None:
        super().__init__(
            net, np.asarray(load_idx, dtype=np.int64), method="iterative_current", injections=True
        )
        line = _in_service(net.line)
        node_set = set(self.bus_idx.tolist())
        line = line[line.from_bus.isin(node_set) & line.to_bus.isin(node_set)]
        line_col = {int(i): k for k, i in enumerate(line.index)}
        trafo_col = {int(i): k for k, i in enumerate(self._trafo_pp_idx)}
        bus_col = {int(b): k for k, b in enumerate(self.bus_idx)}
        self.n_branch = grid.n_branch
        # per tree branch: which PGM table/column, and whether its child is PGM's to-side
        self._line_k: list[int] = []
        self._line_c: list[int] = []
        self._line_child_is_to: list[bool] = []
        self._trafo_k: list[int] = []
        self._trafo_c: list[int] = []
        #: per grid branch: its table ("line", "trafo") and loading limit (% of nominal, the net's)
        self.branch_kind: list[str] = []
        self.branch_limit_pct = np.full(grid.n_branch, 100.0)
        for k, name in enumerate(grid.branch_names):
            table, idx_s = name.split(":")
            idx = int(idx_s)
            self.branch_kind.append(table)
            if table in ("line", "trafo"):
                self.branch_limit_pct[k] = (
                    finite_or(net[table].max_loading_percent.at[idx], 100.0)
                    if ("max_loading_percent" in net[table].columns)
                    else 100.0
                )
            child_pp = int(grid.bus_ids[grid.child[k]])
            if table == "line":
                if idx not in line_col:
                    raise ConfigError(f"line {idx} of the radial model is not in the PGM model", key="line")
                self._line_k.append(k)
                self._line_c.append(line_col[idx])
                self._line_child_is_to.append(int(net.line.to_bus.at[idx]) == child_pp)
            elif table == "trafo":
                self._trafo_k.append(k)
                self._trafo_c.append(trafo_col[idx])
        self._bus_c = np.asarray([bus_col[int(b)] for b in grid.bus_ids], dtype=np.int64)

    def run_elements(self, p_load_kw: FloatArray, *, threading: int = -1) -> ElementFlows:
        """AC power flow of n load vectors (n, n_loads) kW, unity power factor; every element kept."""
        from power_grid_model import CalculationMethod, ComponentType

        p = np.atleast_2d(np.asarray(p_load_kw, dtype=float))
        if p.shape[1] != self.n_loads or not np.all(np.isfinite(p)):
            raise ConfigError(f"p_load_kw must be finite with shape (n, {self.n_loads})", key="p_load_kw")
        n = p.shape[0]
        update = {
            ComponentType.sym_load: {
                "id": np.ascontiguousarray(np.broadcast_to(self._load_ids, p.shape)),
                "p_specified": p * 1e3,
                "q_specified": np.zeros_like(p),
            }
        }
        out = self._model.calculate_power_flow(
            update_data=update,
            threading=threading,
            calculation_method=CalculationMethod[self._method],
            continue_on_batch_error=True,
            output_component_types={
                ComponentType.node: ["u_pu"],
                ComponentType.line: ["loading", "p_from", "q_from", "p_to", "q_to"],
                ComponentType.transformer: ["i_from", "i_to", "p_to", "q_to"],
            },
        )

        def col(component: Any, attr: str) -> FloatArray:
            return np.asarray(out[component][attr], dtype=np.float64).reshape(n, -1)

        loading = np.zeros((n, self.n_branch))
        p_rec = np.zeros((n, self.n_branch))
        q_rec = np.zeros((n, self.n_branch))
        if self._line_k:
            lc = np.asarray(self._line_c)
            to = np.asarray(self._line_child_is_to)
            loading[:, self._line_k] = col(ComponentType.line, "loading")[:, lc]
            # PGM's p_from / p_to flow INTO the branch at that side: delivered = minus it
            p_to, p_from = col(ComponentType.line, "p_to")[:, lc], col(ComponentType.line, "p_from")[:, lc]
            q_to, q_from = col(ComponentType.line, "q_to")[:, lc], col(ComponentType.line, "q_from")[:, lc]
            p_rec[:, self._line_k] = -np.where(to, p_to, p_from) / 1e6
            q_rec[:, self._line_k] = -np.where(to, q_to, q_from) / 1e6
        if self._trafo_k:
            tc = np.asarray(self._trafo_c)
            s_from = col(ComponentType.transformer, "i_from")[:, tc] * self._trafo_rated_v[tc, 0] * np.sqrt(3)
            s_to = col(ComponentType.transformer, "i_to")[:, tc] * self._trafo_rated_v[tc, 1] * np.sqrt(3)
            loading[:, self._trafo_k] = np.maximum(s_from, s_to) / self._trafo_sn_va[tc]
            p_rec[:, self._trafo_k] = -col(ComponentType.transformer, "p_to")[:, tc] / 1e6
            q_rec[:, self._trafo_k] = -col(ComponentType.transformer, "q_to")[:, tc] / 1e6
        vm = col(ComponentType.node, "u_pu")[:, self._bus_c]
        err = self._model.batch_error
        failed = (
            np.asarray(err.failed_scenarios, dtype=np.int64) if err is not None else np.zeros(0, np.int64)
        )
        for arr in (loading, p_rec, q_rec, vm):
            arr[failed] = np.nan
        return ElementFlows(loading, p_rec, q_rec, vm, failed)
