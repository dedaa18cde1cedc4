"""Batch AC power flow with power-grid-model, to check dispatch results against real physics.

Why: the optimiser plans on a lossless, active-power-only linear model (`radial.py`). Before a
plan is trusted, the same load profiles go through a full AC Newton-Raphson power flow, which
adds losses, reactive power and the non-linear voltage drop. pandapower does one snapshot per
call (about 0.1 s for the Schutterwald region); power-grid-model does a whole year of 15-minute
steps in one batch call, because the topology and admittance matrix are built once and only the
load injections change per scenario.

This module holds the batch calculation and its result type; the PGM input is translated
from the pandapower tables in `pgm_input.py`, and the comparison with the linear model (and
the year benchmark) is in `ac_check.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cloud_controller.grid.pgm_input import PgmInputBuilder, finite_or
from protocols.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PowerFlowResult:
    """AC power-flow results per time step (T steps), reduced to what a dispatch check needs.

    Full per-bus/per-line arrays for a year would be several hundred MB, so only the root power,
    every transformer's loading and the per-step extremes of line loading and voltage are kept.
    Steps where the power flow failed (did not converge) are NaN and listed in `failed_steps`.
    """

    p_root_kw: FloatArray  # (T,) active power drawn from the ext_grid, load positive
    q_root_kvar: FloatArray  # (T,) reactive power drawn from the ext_grid
    p_load_kw: FloatArray  # (T,) sum of all modelled load powers (the lossless root power)
    trafo_loading: FloatArray  # (T, n_trafo) fraction of rating (1.0 = 100 %)
    trafo_names: tuple[str, ...]  # "trafo:<pandapower index>", as in RadialGrid.branch_names
    line_loading_max: FloatArray  # (T,) highest line loading (fraction of thermal current)
    v_min_pu: FloatArray  # (T,) lowest energised bus voltage
    v_max_pu: FloatArray  # (T,) highest energised bus voltage
    failed_steps: IntArray  # indices of steps whose power flow failed
    bus_vm_pu: FloatArray | None = None  # (T, n_bus) only if asked for; NaN for unfed buses
    bus_idx: IntArray | None = None  # pandapower bus index of each bus_vm_pu column
    trafo_p_lv_kw: FloatArray | None = None  # (T, n_trafo) active power out of each LV side

    @property
    def n_steps(self) -> int:
        """Number of time steps solved."""
        return len(self.p_root_kw)

    @property
    def losses_kw(self) -> FloatArray:
        """Network losses (lines and transformers, incl. iron losses): root power minus loads."""
        return np.asarray(self.p_root_kw - self.p_load_kw, dtype=float)

    def with_steps(self, rows: IntArray, sub: PowerFlowResult) -> PowerFlowResult:
        """A copy where steps `rows` are replaced by `sub`'s results (sub has len(rows) steps).

        Why: a study run that takes most steps over from another run needs the power flow
        only for the steps it solved itself. Per-bus voltages are not merged (dropped).
        """
        rows = np.asarray(rows, dtype=np.int64)
        if sub.n_steps != len(rows) or sub.trafo_names != self.trafo_names:
            raise ValueError("sub-result does not match the rows or the transformers")

        def put(base: FloatArray, part: FloatArray) -> FloatArray:
            out = np.array(base, copy=True)
            out[rows] = part
            return out

        keep = ~np.isin(self.failed_steps, rows)
        return PowerFlowResult(
            p_root_kw=put(self.p_root_kw, sub.p_root_kw),
            q_root_kvar=put(self.q_root_kvar, sub.q_root_kvar),
            p_load_kw=put(self.p_load_kw, sub.p_load_kw),
            trafo_loading=put(self.trafo_loading, sub.trafo_loading),
            trafo_names=self.trafo_names,
            line_loading_max=put(self.line_loading_max, sub.line_loading_max),
            v_min_pu=put(self.v_min_pu, sub.v_min_pu),
            v_max_pu=put(self.v_max_pu, sub.v_max_pu),
            failed_steps=np.sort(np.concatenate([self.failed_steps[keep], rows[sub.failed_steps]])),
            trafo_p_lv_kw=None
            if self.trafo_p_lv_kw is None or sub.trafo_p_lv_kw is None
            else put(self.trafo_p_lv_kw, sub.trafo_p_lv_kw),
        )

    def trafo_loading_of(self, name: str) -> FloatArray:
        """Loading series (T,) of one transformer, by its branch name such as "trafo:12"."""
        if name not in self.trafo_names:
            raise ConfigError(f"no transformer {name!r} in the power-flow model", key="trafo")
        return np.asarray(self.trafo_loading[:, self.trafo_names.index(name)], dtype=float)


def _column(out: Any, component: Any, attribute: str) -> FloatArray:
    """One attribute of a columnar PGM output (single: (n,), batch: (T, n)) as float64."""
    data = out[component]
    if not isinstance(data, dict):
        raise TypeError(f"expected columnar PGM output for {component}")
    return np.asarray(data[attribute], dtype=np.float64)


def _column_or_none(out: Any, component: Any, attribute: str, n_steps: int) -> FloatArray:
    """`_column`, or (n_steps, 0) where the net has none of `component` (PGM then leaves it out)."""
    if component not in out:
        return np.zeros((n_steps, 0))
    return _column(out, component, attribute)


class BatchPowerFlow(PgmInputBuilder):
    """A power-grid-model copy of a pandapower net, built once, then run for many load vectors.

    Columns of the load matrices passed to `run` are the pandapower loads `load_idx`
    (default: every in-service load in table order, which is `Region.site_load_idx`).
    Other in-service loads stay at their pandapower p_mw x scaling / q_mvar x scaling.
    """

    def __init__(
        self,
        net: Any,
        load_idx: Sequence[int] | IntArray | None = None,
        *,
        method: Literal["iterative_current", "newton_raphson"] = "iterative_current",
        injections: bool = False,
    ) -> None:
        """Set up the batch power flow; `method` is PGM's iterative current (default) or Newton-Raphson.

        `injections`: also model the net's sgens, storages and shunts at their fixed values
        (`pgm_input`); off for the dispatch AC check, which refuses them (its linear model
        does not hold them either).

        Iterative current is the default because it is faster on a year of the 319-load region
        (sequential), with results equal to 3e-6 kW and 5e-10 pu; it is PGM's method for
        distribution grids and keeps one factorisation for the whole batch.
        """
        from power_grid_model import PowerGridModel

        self._method = method
        self._check_supported(net, injections=injections)
        self._f_hz = finite_or(getattr(net, "f_hz", 50.0), 50.0)
        self._ids = 0
        input_data: dict[str, Any] = {}
        input_data["node"], node_id = self._nodes(net)
        input_data["line"] = self._lines(net, node_id)
        input_data["transformer"], self._trafo_rated_v, self._trafo_sn_va = self._trafos(net, node_id)
        self.trafo_names: tuple[str, ...] = tuple(f"trafo:{int(i)}" for i in self._trafo_pp_idx)
        links = self._links(net, node_id)
        if len(links):
            input_data["link"] = links
        input_data["source"] = self._sources(net, node_id)
        input_data["sym_load"] = self._loads(net, node_id, load_idx)
        self._gen_p_kw = 0.0
        if injections:
            gens = self._sym_gens(net, node_id)
            if len(gens):
                input_data["sym_gen"] = gens
                self._fixed_p_kw -= self._gen_p_kw
            shunts = self._shunts(net, node_id)
            if len(shunts):
                input_data["shunt"] = shunts
        self._model = PowerGridModel(input_data, system_frequency=self._f_hz)
        self._energized = self._energized_nodes()

    def _energized_nodes(self) -> npt.NDArray[np.bool_]:
        """Nodes fed from the source. Only loads change per step, so this holds for every step."""
        from power_grid_model import ComponentType

        out = self._model.calculate_power_flow(output_component_types={ComponentType.node: ["energized"]})
        return _column(out, ComponentType.node, "energized") > 0

    # ------------------------------------------------------------------ calculation

    @property
    def n_loads(self) -> int:
        """Number of columns expected in the load matrices."""
        return len(self.load_idx)

    def run(
        self,
        p_load_kw: FloatArray,
        q_load_kvar: FloatArray | None = None,
        *,
        threading: int = 0,
        steps_per_batch: int | None = None,
        keep_bus_voltages: bool = False,
    ) -> PowerFlowResult:
        """AC power flow for T load vectors in one PGM batch calculation.

        p_load_kw: (T, n_loads) active power per load, consumption positive, PV feed-in negative.
        q_load_kvar: same shape; None means unity power factor, matching the active-power-only
            dispatch model so the AC-vs-DC gap shows losses rather than assumed reactive power.
        threading: PGM batch threading (0 = all hardware threads, -1 = sequential).
        steps_per_batch: split very long runs into several PGM calls to bound memory
            (a year at 15 min is one call by default: about 1 GB peak for this region).
        keep_bus_voltages: also return every bus voltage (T x n_bus floats: 180 MB for a
            year here), for comparisons and plots; off by default.
        """
        p = np.atleast_2d(np.asarray(p_load_kw, dtype=float))
        if p.ndim != 2 or p.shape[1] != self.n_loads:
            raise ConfigError(
                f"p_load_kw must have shape (T, {self.n_loads}), got {p.shape}", key="p_load_kw"
            )
        if q_load_kvar is None:
            q = np.zeros_like(p)
        else:
            q = np.atleast_2d(np.asarray(q_load_kvar, dtype=float))
            if q.shape != p.shape:
                raise ConfigError(
                    f"q_load_kvar shape {q.shape} differs from p_load_kw {p.shape}", key="q_load_kvar"
                )
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
            raise ConfigError("load matrices contain NaN or inf", key="p_load_kw")
        n_steps = p.shape[0]
        if n_steps == 0:
            raise ConfigError("no time steps to calculate", key="p_load_kw")
        chunk = n_steps if steps_per_batch is None else max(1, int(steps_per_batch))
        parts = [
            self._run_chunk(p[s : s + chunk], q[s : s + chunk], threading, keep_bus_voltages)
            for s in range(0, n_steps, chunk)
        ]
        failed = [pt[6] + s for pt, s in zip(parts, range(0, n_steps, chunk), strict=True)]
        bus_vm: FloatArray | None = None
        if keep_bus_voltages:
            bus_vm = np.concatenate([pt[7] for pt in parts if pt[7] is not None])
        return PowerFlowResult(
            p_root_kw=np.concatenate([pt[0] for pt in parts]),
            q_root_kvar=np.concatenate([pt[1] for pt in parts]),
            p_load_kw=p.sum(axis=1) + self._fixed_p_kw,
            trafo_loading=np.concatenate([pt[2] for pt in parts]),
            trafo_names=self.trafo_names,
            line_loading_max=np.concatenate([pt[3] for pt in parts]),
            v_min_pu=np.concatenate([pt[4] for pt in parts]),
            v_max_pu=np.concatenate([pt[5] for pt in parts]),
            failed_steps=np.concatenate(failed).astype(np.int64),
            bus_vm_pu=bus_vm,
            bus_idx=self.bus_idx.copy() if keep_bus_voltages else None,
            trafo_p_lv_kw=np.concatenate([pt[8] for pt in parts]),
        )

    def _run_chunk(
        self, p_kw: FloatArray, q_kvar: FloatArray, threading: int, keep_bus_voltages: bool
    ) -> tuple[
        FloatArray,
        FloatArray,
        FloatArray,
        FloatArray,
        FloatArray,
        FloatArray,
        IntArray,
        FloatArray | None,
        FloatArray,
    ]:
        from power_grid_model import ComponentType

        n_steps = p_kw.shape[0]
        update = {
            ComponentType.sym_load: {
                "id": np.ascontiguousarray(np.broadcast_to(self._load_ids, p_kw.shape)),
                "p_specified": p_kw * 1e3,
                "q_specified": q_kvar * 1e3,
            }
        }
        # columnar output of only the needed attributes: a year of full row-based output
        # for this region would be several GB
        from power_grid_model import CalculationMethod

        out = self._model.calculate_power_flow(
            update_data=update,
            threading=threading,
            calculation_method=CalculationMethod[self._method],
            continue_on_batch_error=True,
            output_component_types={
                ComponentType.source: ["p", "q"],
                ComponentType.node: ["u_pu"],
                ComponentType.line: ["loading"],
                ComponentType.transformer: ["i_from", "i_to", "p_to"],
            },
        )
        p_root = _column(out, ComponentType.source, "p").sum(axis=1) / 1e3
        q_root = _column(out, ComponentType.source, "q").sum(axis=1) / 1e3
        u_all = _column(out, ComponentType.node, "u_pu")
        u = u_all[:, self._energized]
        v_min = u.min(axis=1) if u.shape[1] else np.full(n_steps, np.nan)
        v_max = u.max(axis=1) if u.shape[1] else np.full(n_steps, np.nan)
        loading = _column(out, ComponentType.line, "loading")
        line_max = np.nanmax(loading, axis=1) if loading.shape[1] else np.zeros(n_steps)
        # pandapower's "current" trafo loading: rated voltage x actual current per side, so it
        # stays a thermal measure when the bus voltage sags (PGM's own loading uses actual s)
        i_from = _column_or_none(out, ComponentType.transformer, "i_from", n_steps)
        i_to = _column_or_none(out, ComponentType.transformer, "i_to", n_steps)
        s_from = i_from * self._trafo_rated_v[:, 0] * np.sqrt(3)
        s_to = i_to * self._trafo_rated_v[:, 1] * np.sqrt(3)
        trafo = np.maximum(s_from, s_to) / self._trafo_sn_va
        # power delivered out of the LV side (p_to flows into the trafo), load positive
        p_lv = -_column_or_none(out, ComponentType.transformer, "p_to", n_steps) / 1e3
        err = self._model.batch_error
        failed = (
            np.asarray(err.failed_scenarios, dtype=np.int64)
            if err is not None
            else np.zeros(0, dtype=np.int64)
        )
        if len(failed):
            for arr in (p_root, q_root, v_min, v_max, line_max):
                arr[failed] = np.nan
            trafo[failed] = np.nan
            p_lv[failed] = np.nan
        bus_vm: FloatArray | None = None
        if keep_bus_voltages:
            bus_vm = np.where(self._energized[None, :], u_all, np.nan)
            bus_vm[failed] = np.nan
        return p_root, q_root, trafo, line_max, v_min, v_max, failed, bus_vm, p_lv
