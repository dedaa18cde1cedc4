"""Batch AC power flow with power-grid-model, to check dispatch results against real physics.

Why: the optimiser plans on a lossless, active-power-only linear model (`radial.py`). Before a
plan is trusted, the same load profiles go through a full AC Newton-Raphson power flow, which
adds losses, reactive power and the non-linear voltage drop. pandapower does one snapshot per
call (about 0.1 s for the Schutterwald region); power-grid-model does a whole year of 15-minute
steps in one batch call, because the topology and admittance matrix are built once and only the
load injections change per scenario.

The PGM input is built here straight from the pandapower tables (power_grid_model_io is not a
dependency). The conversion follows pandapower's own element models so that a PGM snapshot
equals `pp.runpp` (see tests/unit/grid/test_powerflow.py):

* lines: series impedance x length / parallel, shunt capacitance x length x parallel,
  thermal current max_i_ka x df x parallel; open line switches open the line end;
* transformers: short-circuit and no-load parameters of the pandapower trafo, ratio taps at
  their fixed `tap_pos` (taps change the voltage by a few percent, so they are not ignored);
* ext_grid: a PGM source with a very high short-circuit power, i.e. the ideal slack of pandapower;
* loads: constant-power symmetric loads, one per in-service pandapower load.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from protocols.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Short-circuit power of the PGM source (VA). PGM models the source with an internal impedance;
# pandapower's ext_grid is an ideal voltage source. 1e15 VA keeps the source voltage drop below
# 1e-8 pu at MW loads while the admittance matrix stays well conditioned.
_SOURCE_SK_VA = 1e15

# pandapower element tables the converter does not translate. A non-empty in-service one
# would silently be missing from the AC check, so it is refused instead.
_UNSUPPORTED_TABLES = (
    "sgen",
    "gen",
    "storage",
    "shunt",
    "trafo3w",
    "impedance",
    "ward",
    "xward",
    "dcline",
    "motor",
    "asymmetric_load",
    "asymmetric_sgen",
    "svc",
    "tcsc",
    "ssc",
    "vsc",
)


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


def _in_service(df: Any) -> Any:
    if "in_service" not in df.columns:
        return df
    return df[df.in_service.astype(bool)]


def _open_line_ends(net: Any) -> set[tuple[int, int]]:
    """(line index, bus) pairs cut by an open line switch."""
    sw = net.switch
    if len(sw) == 0:
        return set()
    op = sw[(sw.et == "l") & ~sw.closed.astype(bool)]
    return {(int(e), int(b)) for e, b in zip(op.element, op.bus, strict=True)}


def _column(out: Any, component: Any, attribute: str) -> FloatArray:
    """One attribute of a columnar PGM output (single: (n,), batch: (T, n)) as float64."""
    data = out[component]
    if not isinstance(data, dict):
        raise TypeError(f"expected columnar PGM output for {component}")
    return np.asarray(data[attribute], dtype=np.float64)


def _finite(value: Any, default: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


class BatchPowerFlow:
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
    ) -> None:
        """Set up the batch power flow; `method` is PGM's iterative current (default) or Newton-Raphson.

        Iterative current is the default because it is faster on a year of the 319-load region
        (sequential), with results equal to 3e-6 kW and 5e-10 pu; it is PGM's method for
        distribution grids and keeps one factorisation for the whole batch.
        """
        from power_grid_model import PowerGridModel

        self._method = method
        self._check_supported(net)
        self._f_hz = _finite(getattr(net, "f_hz", 50.0), 50.0)
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
        self._model = PowerGridModel(input_data, system_frequency=self._f_hz)
        self._energized = self._energized_nodes()

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _check_supported(net: Any) -> None:
        eg = _in_service(net.ext_grid)
        if len(eg) == 0:
            raise ConfigError("the net has no in-service ext_grid", key="ext_grid")
        for table in _UNSUPPORTED_TABLES:
            if table in net and len(_in_service(net[table])) > 0:
                raise ConfigError(f"pandapower table {table!r} is not supported by BatchPowerFlow", key=table)
        sw = net.switch
        if len(sw) and bool((sw.et == "b").any()):
            bb = sw[(sw.et == "b") & sw.closed.astype(bool)]
            if len(bb) and bool((bb.z_ohm.fillna(0.0) > 0).any()):
                raise ConfigError("bus-bus switches with z_ohm > 0 are not supported", key="switch")

    def _new_ids(self, n: int) -> npt.NDArray[np.int32]:
        """PGM needs ids unique across all component types: hand out consecutive blocks."""
        ids = np.arange(self._ids, self._ids + n, dtype=np.int32)
        self._ids += n
        return ids

    def _nodes(self, net: Any) -> tuple[Any, dict[int, int]]:
        from power_grid_model import initialize_array

        bus = _in_service(net.bus)
        arr = initialize_array("input", "node", len(bus))
        arr["id"] = self._new_ids(len(bus))
        arr["u_rated"] = bus.vn_kv.to_numpy(dtype=float) * 1e3
        self.bus_idx: IntArray = bus.index.to_numpy(dtype=np.int64)
        return arr, {int(b): int(i) for b, i in zip(bus.index, arr["id"], strict=True)}

    def _lines(self, net: Any, node_id: dict[int, int]) -> Any:
        from power_grid_model import initialize_array

        line = _in_service(net.line)
        line = line[line.from_bus.isin(node_id) & line.to_bus.isin(node_id)]
        open_ends = _open_line_ends(net)
        arr = initialize_array("input", "line", len(line))
        arr["id"] = self._new_ids(len(line))
        arr["from_node"] = [node_id[int(b)] for b in line.from_bus]
        arr["to_node"] = [node_id[int(b)] for b in line.to_bus]
        arr["from_status"] = [
            0 if (int(i), int(b)) in open_ends else 1 for i, b in zip(line.index, line.from_bus, strict=True)
        ]
        arr["to_status"] = [
            0 if (int(i), int(b)) in open_ends else 1 for i, b in zip(line.index, line.to_bus, strict=True)
        ]
        length = line.length_km.to_numpy(dtype=float)
        par = line.parallel.to_numpy(dtype=float)
        df = line.df.to_numpy(dtype=float) if "df" in line.columns else np.ones(len(line))
        c_f = line.c_nf_per_km.to_numpy(dtype=float) * 1e-9 * length * par
        g_s = (
            line.g_us_per_km.fillna(0.0).to_numpy(dtype=float) * 1e-6 * length * par
            if "g_us_per_km" in line.columns
            else np.zeros(len(line))
        )
        if bool(np.any((g_s > 0) & (c_f <= 0))):
            raise ConfigError("lines with conductance but no capacitance are not supported", key="line")
        arr["r1"] = line.r_ohm_per_km.to_numpy(dtype=float) * length / par
        arr["x1"] = line.x_ohm_per_km.to_numpy(dtype=float) * length / par
        arr["c1"] = c_f
        # PGM gives the shunt conductance as loss angle: tan(delta) = G / (omega C)
        arr["tan1"] = np.divide(g_s, 2 * np.pi * self._f_hz * c_f, out=np.zeros(len(line)), where=c_f > 0)
        arr["i_n"] = line.max_i_ka.to_numpy(dtype=float) * 1e3 * df * par
        return arr

    def _trafos(self, net: Any, node_id: dict[int, int]) -> tuple[Any, FloatArray, FloatArray]:
        from power_grid_model import BranchSide, WindingType, initialize_array

        tr = _in_service(net.trafo)
        tr = tr[tr.hv_bus.isin(node_id) & tr.lv_bus.isin(node_id)]
        n = len(tr)
        self._trafo_pp_idx = tr.index.to_numpy(dtype=np.int64)
        arr = initialize_array("input", "transformer", n)
        arr["id"] = self._new_ids(n)
        arr["from_node"] = [node_id[int(b)] for b in tr.hv_bus]
        arr["to_node"] = [node_id[int(b)] for b in tr.lv_bus]
        arr["from_status"] = 1
        arr["to_status"] = 1
        open_t = (
            net.switch[(net.switch.et == "t") & ~net.switch.closed.astype(bool)] if len(net.switch) else None
        )
        if open_t is not None and len(open_t):
            cut = {(int(e), int(b)) for e, b in zip(open_t.element, open_t.bus, strict=True)}
            arr["from_status"] = [
                0 if (int(i), int(b)) in cut else 1 for i, b in zip(tr.index, tr.hv_bus, strict=True)
            ]
            arr["to_status"] = [
                0 if (int(i), int(b)) in cut else 1 for i, b in zip(tr.index, tr.lv_bus, strict=True)
            ]
        par = tr.parallel.to_numpy(dtype=float)
        sn_va = tr.sn_mva.to_numpy(dtype=float) * 1e6 * par
        u1 = tr.vn_hv_kv.to_numpy(dtype=float) * 1e3
        u2 = tr.vn_lv_kv.to_numpy(dtype=float) * 1e3
        arr["u1"] = u1
        arr["u2"] = u2
        arr["sn"] = sn_va
        arr["uk"] = tr.vk_percent.to_numpy(dtype=float) / 100.0
        arr["pk"] = tr.vkr_percent.to_numpy(dtype=float) / 100.0 * sn_va
        arr["i0"] = tr.i0_percent.to_numpy(dtype=float) / 100.0
        arr["p0"] = tr.pfe_kw.to_numpy(dtype=float) * 1e3 * par
        clock = np.rint(tr.shift_degree.fillna(0.0).to_numpy(dtype=float) / 30.0).astype(int) % 12
        odd = clock % 2 == 1
        # winding types only matter for zero sequence; an odd clock needs a delta on one side
        arr["winding_from"] = np.where(odd, WindingType.delta, WindingType.wye_n)
        arr["winding_to"] = WindingType.wye_n
        arr["clock"] = clock
        tap_side = np.zeros(n, dtype=np.int8)
        tap_pos = np.zeros(n, dtype=np.int8)
        tap_min = np.zeros(n, dtype=np.int8)
        tap_max = np.zeros(n, dtype=np.int8)
        tap_nom = np.zeros(n, dtype=np.int8)
        tap_size = np.zeros(n)
        for k, (_, row) in enumerate(tr.iterrows()):
            pos = _finite(row.get("tap_pos"), np.nan)
            step = _finite(row.get("tap_step_percent"), 0.0)
            side = row.get("tap_side")
            if not np.isfinite(pos) or step == 0.0 or side not in ("hv", "lv"):
                continue
            ttype = row.get("tap_changer_type")
            if isinstance(ttype, str) and ttype not in ("Ratio",):
                raise ConfigError(
                    f"trafo {row.name}: tap changer type {ttype!r} is not supported", key="trafo"
                )
            if _finite(row.get("tap_step_degree"), 0.0) != 0.0:
                raise ConfigError(f"trafo {row.name}: phase-shifting taps are not supported", key="trafo")
            neutral = _finite(row.get("tap_neutral"), 0.0)
            tap_side[k] = BranchSide.from_side if side == "hv" else BranchSide.to_side
            tap_pos[k] = round(pos)
            tap_nom[k] = round(neutral)
            tap_min[k] = round(_finite(row.get("tap_min"), min(pos, neutral)))
            tap_max[k] = round(_finite(row.get("tap_max"), max(pos, neutral)))
            vn = u1[k] if side == "hv" else u2[k]
            tap_size[k] = step / 100.0 * vn
        arr["tap_side"] = tap_side
        arr["tap_pos"] = tap_pos
        arr["tap_min"] = tap_min
        arr["tap_max"] = tap_max
        arr["tap_nom"] = tap_nom
        arr["tap_size"] = tap_size
        df = tr.df.to_numpy(dtype=float) if "df" in tr.columns else np.ones(n)
        # rated power for the loading: derated like pandapower does (sn x parallel x df)
        return arr, np.stack([u1, u2], axis=1), sn_va * df

    def _links(self, net: Any, node_id: dict[int, int]) -> Any:
        """Closed bus-bus switches: ideal zero-impedance links."""
        from power_grid_model import initialize_array

        sw = net.switch
        if len(sw) == 0:
            return initialize_array("input", "link", 0)
        bb = sw[(sw.et == "b") & sw.closed.astype(bool)]
        bb = bb[bb.bus.isin(node_id) & bb.element.isin(node_id)]
        arr = initialize_array("input", "link", len(bb))
        arr["id"] = self._new_ids(len(bb))
        arr["from_node"] = [node_id[int(b)] for b in bb.bus]
        arr["to_node"] = [node_id[int(b)] for b in bb.element]
        arr["from_status"] = 1
        arr["to_status"] = 1
        return arr

    def _sources(self, net: Any, node_id: dict[int, int]) -> Any:
        from power_grid_model import initialize_array

        eg = _in_service(net.ext_grid)
        arr = initialize_array("input", "source", len(eg))
        self._source_ids = self._new_ids(len(eg))
        arr["id"] = self._source_ids
        arr["node"] = [node_id[int(b)] for b in eg.bus]
        arr["status"] = 1
        arr["u_ref"] = eg.vm_pu.to_numpy(dtype=float)
        arr["u_ref_angle"] = np.deg2rad(eg.va_degree.fillna(0.0).to_numpy(dtype=float))
        arr["sk"] = _SOURCE_SK_VA
        arr["rx_ratio"] = 0.1
        arr["z01_ratio"] = 1.0
        return arr

    def _loads(self, net: Any, node_id: dict[int, int], load_idx: Sequence[int] | IntArray | None) -> Any:
        from power_grid_model import LoadGenType, initialize_array

        load = _in_service(net.load)
        load = load[load.bus.isin(node_id)]
        if load_idx is None:
            cols = load.index.to_numpy(dtype=np.int64)
        else:
            cols = np.asarray(load_idx, dtype=np.int64)
            missing = sorted(set(cols.tolist()) - set(load.index.tolist()))
            if missing:
                raise ConfigError(f"loads {missing[:5]} are not in service or not connected", key="load")
        # controllable loads first, in column order, so the batch update is one dense block
        rest = load.index[~load.index.isin(cols)].to_numpy(dtype=np.int64)
        order = np.concatenate([cols, rest])
        sel = load.loc[order]
        scaling = sel.scaling.to_numpy(dtype=float) if "scaling" in sel.columns else np.ones(len(sel))
        arr = initialize_array("input", "sym_load", len(sel))
        arr["id"] = self._new_ids(len(sel))
        arr["node"] = [node_id[int(b)] for b in sel.bus]
        arr["status"] = 1
        arr["type"] = LoadGenType.const_power
        arr["p_specified"] = sel.p_mw.to_numpy(dtype=float) * scaling * 1e6
        arr["q_specified"] = sel.q_mvar.to_numpy(dtype=float) * scaling * 1e6
        self.load_idx: IntArray = cols
        self._load_ids = arr["id"][: len(cols)].copy()
        self._fixed_p_kw = float(np.sum(arr["p_specified"][len(cols) :])) / 1e3
        return arr

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
        i_from = _column(out, ComponentType.transformer, "i_from")
        i_to = _column(out, ComponentType.transformer, "i_to")
        s_from = i_from * self._trafo_rated_v[:, 0] * np.sqrt(3)
        s_to = i_to * self._trafo_rated_v[:, 1] * np.sqrt(3)
        trafo = np.maximum(s_from, s_to) / self._trafo_sn_va
        # power delivered out of the LV side (p_to flows into the trafo), load positive
        p_lv = -_column(out, ComponentType.transformer, "p_to") / 1e3
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


def dc_ac_discrepancy(
    p_root_dc_kw: FloatArray, p_root_ac_kw: FloatArray, *, min_fraction: float = 0.01
) -> dict[str, float]:
    """Relative gap between the AC root power and the linear (DC, lossless) one.

    Steps where |DC| is below `min_fraction` of its largest magnitude are skipped: around the
    zero crossing (PV feed-in balancing the load) the relative gap blows up without meaning.
    Returns max and mean of |AC - DC| / |DC| over the kept steps, the mean signed gap, and
    how many steps were kept.
    """
    dc = np.asarray(p_root_dc_kw, dtype=float).ravel()
    ac = np.asarray(p_root_ac_kw, dtype=float).ravel()
    if dc.shape != ac.shape:
        raise ConfigError(f"DC and AC series differ in length: {dc.shape} vs {ac.shape}", key="p_root")
    ok = np.isfinite(dc) & np.isfinite(ac)
    scale = float(np.max(np.abs(dc[ok]))) if ok.any() else 0.0
    keep = ok & (np.abs(dc) > min_fraction * scale)
    if scale == 0.0 or not keep.any():
        return {
            "max_rel": float("nan"),
            "mean_rel": float("nan"),
            "mean_signed_rel": float("nan"),
            "n_steps": 0.0,
        }
    rel = (ac[keep] - dc[keep]) / np.abs(dc[keep])
    return {
        "max_rel": float(np.max(np.abs(rel))),
        "mean_rel": float(np.mean(np.abs(rel))),
        "mean_signed_rel": float(np.mean(rel)),
        "n_steps": float(keep.sum()),
    }


def time_year(n_steps: int = 35_040, *, threading: int = 0, seed: int = 0) -> float:
    """Seconds for one AC batch of a year of 15-minute steps on the Schutterwald region.

    Random household loads (-4..+6 kW, negative = PV feed-in); the model build is not timed.
    Kept out of the unit tests because it takes longer than a unit test should.
    """
    from cloud_controller.grid.region import build_schutterwald_region

    region = build_schutterwald_region()
    bpf = BatchPowerFlow(region.net, region.site_load_idx)
    rng = np.random.default_rng(seed)
    p = rng.uniform(-4.0, 6.0, size=(n_steps, bpf.n_loads))
    t0 = time.perf_counter()
    res = bpf.run(p, threading=threading)
    dt = time.perf_counter() - t0
    print(
        f"AC batch power flow: {n_steps} steps x {bpf.n_loads} loads in {dt:.2f} s "
        f"({dt / n_steps * 1e3:.3f} ms/step, threading={threading}, failed={len(res.failed_steps)})"
    )
    return dt
