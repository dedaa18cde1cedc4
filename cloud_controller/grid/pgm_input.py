"""pandapower net → power-grid-model input tables, the translation half of `BatchPowerFlow`.

Why separate: the conversion is a field-by-field mapping of pandapower's element models
onto power-grid-model's, long and only about units and conventions; the batch calculation
(`powerflow.py`) only needs the finished tables and a few index maps. power_grid_model_io
is not a dependency, so the conversion lives here. It follows pandapower's own element
models so that a PGM snapshot equals `pp.runpp` (see tests/unit/grid/test_powerflow.py):

* lines: series impedance x length / parallel, shunt capacitance x length x parallel,
  thermal current max_i_ka x df x parallel; open line switches open the line end;
* transformers: short-circuit and no-load parameters of the pandapower trafo, ratio taps at
  their fixed `tap_pos` (taps change the voltage by a few percent, so they are not ignored);
* ext_grid: a PGM source with a very high short-circuit power, i.e. the ideal slack of pandapower
  (several ext_grids: several sources, each holding its own voltage, as in pandapower);
* loads: constant-power symmetric loads, one per in-service pandapower load;
* only when asked for (`injections=True`: the congestion forecast on meshed and multi-feed nets
  such as `mv_oberrhein`): sgens and storages as constant-power symmetric generators at their
  p_mw x scaling / q_mvar x scaling (storage: load-positive, so a generator of minus it),
  shunts as fixed admittances (p_mw - j q_mvar) x step at their vn_kv. Without it those
  tables are refused, as before (the dispatch AC check and the estimator do not model them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
#: Tables `injections=True` translates (fixed injections, see the module docstring).
INJECTION_TABLES = ("sgen", "storage", "shunt")


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


def finite_or(value: Any, default: float) -> float:
    """`value` as a float if it is a finite number (a pandapower cell may be None or NaN), else `default`."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


class PgmInputBuilder:
    """The builders of `BatchPowerFlow`'s PGM input, one per pandapower element table.

    A base class of `BatchPowerFlow`: each builder hands out PGM ids from one shared counter
    and records the index maps the batch run reads (`bus_idx`, `load_idx`, the transformer,
    source and load ids). `BatchPowerFlow.__init__` sets `_f_hz` and `_ids` before building.
    """

    _f_hz: float  # system frequency of the net (Hz)
    _ids: int  # next free PGM id

    @staticmethod
    def _check_supported(net: Any, *, injections: bool = False) -> None:
        eg = _in_service(net.ext_grid)
        if len(eg) == 0:
            raise ConfigError("the net has no in-service ext_grid", key="ext_grid")
        for table in _UNSUPPORTED_TABLES:
            if injections and table in INJECTION_TABLES:
                continue
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
            pos = finite_or(row.get("tap_pos"), np.nan)
            step = finite_or(row.get("tap_step_percent"), 0.0)
            side = row.get("tap_side")
            if not np.isfinite(pos) or step == 0.0 or side not in ("hv", "lv"):
                continue
            ttype = row.get("tap_changer_type")
            if isinstance(ttype, str) and ttype not in ("Ratio",):
                raise ConfigError(
                    f"trafo {row.name}: tap changer type {ttype!r} is not supported", key="trafo"
                )
            if finite_or(row.get("tap_step_degree"), 0.0) != 0.0:
                raise ConfigError(f"trafo {row.name}: phase-shifting taps are not supported", key="trafo")
            neutral = finite_or(row.get("tap_neutral"), 0.0)
            tap_side[k] = BranchSide.from_side if side == "hv" else BranchSide.to_side
            tap_pos[k] = round(pos)
            tap_nom[k] = round(neutral)
            tap_min[k] = round(finite_or(row.get("tap_min"), min(pos, neutral)))
            tap_max[k] = round(finite_or(row.get("tap_max"), max(pos, neutral)))
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

    def _sym_gens(self, net: Any, node_id: dict[int, int]) -> Any:
        """In-service sgens and storages as constant-power generators (storage: minus its load-positive p)."""
        from power_grid_model import LoadGenType, initialize_array

        parts: list[tuple[Any, float]] = []
        for table, sign in (("sgen", 1.0), ("storage", -1.0)):
            if table in net and len(net[table]):
                df = _in_service(net[table])
                parts.append((df[df.bus.isin(node_id)], sign))
        n = sum(len(df) for df, _ in parts)
        arr = initialize_array("input", "sym_gen", n)
        arr["id"] = self._new_ids(n)
        arr["status"] = 1
        arr["type"] = LoadGenType.const_power
        pos = 0
        for df, sign in parts:
            sl = slice(pos, pos + len(df))
            scaling = df.scaling.to_numpy(dtype=float) if "scaling" in df.columns else np.ones(len(df))
            q = df.q_mvar.fillna(0.0).to_numpy(dtype=float) if "q_mvar" in df.columns else np.zeros(len(df))
            arr["node"][sl] = [node_id[int(b)] for b in df.bus]
            arr["p_specified"][sl] = sign * df.p_mw.to_numpy(dtype=float) * scaling * 1e6
            arr["q_specified"][sl] = sign * q * scaling * 1e6
            pos += len(df)
        #: their active power (kW, generation positive), taken off the modelled load
        self._gen_p_kw = float(np.sum(arr["p_specified"])) / 1e3
        return arr

    def _shunts(self, net: Any, node_id: dict[int, int]) -> Any:
        """In-service shunts: admittance (p_mw - j q_mvar) x step / vn_kv² (pandapower's shunt at its vn_kv)."""
        from power_grid_model import initialize_array

        sh = _in_service(net.shunt) if "shunt" in net else None
        sh = sh[sh.bus.isin(node_id)] if sh is not None else None
        n = 0 if sh is None else len(sh)
        arr = initialize_array("input", "shunt", n)
        if sh is None or n == 0:
            return arr
        vn_bus = net.bus.vn_kv.loc[sh.bus].to_numpy(dtype=float)
        vn = sh.vn_kv.to_numpy(dtype=float) if "vn_kv" in sh.columns else vn_bus
        vn = np.where(np.isfinite(vn), vn, vn_bus)
        step = sh.step.to_numpy(dtype=float) if "step" in sh.columns else np.ones(n)
        arr["id"] = self._new_ids(n)
        arr["node"] = [node_id[int(b)] for b in sh.bus]
        arr["status"] = 1
        arr["g1"] = sh.p_mw.to_numpy(dtype=float) * step / vn**2
        arr["b1"] = -sh.q_mvar.to_numpy(dtype=float) * step / vn**2
        arr["g0"] = arr["g1"]
        arr["b0"] = arr["b1"]
        return arr
