"""Batch WLS state estimation with power-grid-model, a χ² test and largest-normalised-residual removal.

Why this shape: the network is translated once (the same tables as `BatchPowerFlow`, plus one
power sensor per load, the voltage and branch-flow meters given); every period's readings
are one scenario of a single PGM batch call, as the power flows are. Bad data then follow
pandapower's recipe (`chi2_analysis`, `remove_bad_data`): if J(x̂) = Σ (r/σ)² exceeds the
χ² quantile at 1 − 0.05, the real measurement with the largest normalised residual above
3.0 is removed (a site meter falls back to its pseudo-measurement) and that period is
re-estimated, up to 10 times. Unless the pseudo-measurements share that meter's conflict:
then they are widened first (`baddata.py` says why and how far). PGM gives neither the gain matrix nor residual covariances,
so the normalised residuals come from the numpy WLS linearisation in `wls.py`, evaluated
at PGM's estimate; only periods that fail the χ² test pay for it.

Zero injection needs no sensor: PGM treats every node without an appliance as a
zero-injection constraint, and `wls.py` adds the same constraints.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cloud_controller.grid.estimate.baddata import (
    conflict_rows,
    largest_residual,
    normalised_residuals,
    pseudo_rows,
    remove_sensor,
)
from cloud_controller.grid.estimate.measurements import MeasurementBatch
from cloud_controller.grid.estimate.observability import Observability, Topology, check_observability
from cloud_controller.grid.estimate.result import BadDatum, PseudoWidening, StateEstimate
from cloud_controller.grid.estimate.rows import wls_rows
from cloud_controller.grid.estimate.wls import Rows, WlsModel
from cloud_controller.grid.pgm_input import PgmInputBuilder, _in_service, finite_or
from protocols.errors import ConfigError

__all__ = ["EstimateOptions", "StateEstimator"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class EstimateOptions:
    """Options of one estimate; the bad-data defaults are pandapower's."""

    method: Literal["newton_raphson", "iterative_linear"] = "newton_raphson"
    error_tolerance: float = 1e-8
    max_iterations: int = 30
    chi2_prob_false: float = 0.05
    rn_max_threshold: float = 3.0
    max_bad_data_iterations: int = 10
    bad_data: bool = True
    # before a real meter is removed, the pseudo-measurements sharing its conflict are widened
    # (baddata.py): σ × pseudo_widen_factor per step, at most max_pseudo_factor per load; 1 = off
    pseudo_widen_factor: float = 2.0
    max_pseudo_factor: float = 8.0
    pseudo_coupling: float = 0.5
    with_sigma: bool = False  # state and loading σ: one gain-matrix inverse per period
    threading: int = -1  # PGM batch threads (-1 sequential, 0 all)


class StateEstimator(PgmInputBuilder):
    """A power-grid-model copy of a pandapower net with sensors, built once, estimated for many periods."""

    def __init__(self, net: Any) -> None:
        from power_grid_model import ComponentType

        self._check_supported(net)
        self._f_hz = finite_or(getattr(net, "f_hz", 50.0), 50.0)
        self._ids = 0
        self._net = net
        base: dict[Any, Any] = {}
        base[ComponentType.node], self._node_id = self._nodes(net)
        base[ComponentType.line] = self._lines(net, self._node_id)
        line = _in_service(net.line)
        self.line_idx: IntArray = line[
            line.from_bus.isin(self._node_id) & line.to_bus.isin(self._node_id)
        ].index.to_numpy(dtype=np.int64)
        base[ComponentType.transformer], self._trafo_rated_v, self._trafo_sn_va = self._trafos(
            net, self._node_id
        )
        self.trafo_names: tuple[str, ...] = tuple(f"trafo:{int(i)}" for i in self._trafo_pp_idx)
        links = self._links(net, self._node_id)
        if len(links):
            base[ComponentType.link] = links
        base[ComponentType.source] = self._sources(net, self._node_id)
        base[ComponentType.sym_load] = self._loads(net, self._node_id, None)
        self._all_load_ids = base[ComponentType.sym_load]["id"].copy()
        self._base = base
        self._ids_after_base = self._ids
        self._u_rated = base[ComponentType.node]["u_rated"].astype(float)
        self._models: dict[tuple[Any, ...], tuple[Any, dict[str, Any]]] = {}
        self.wls = WlsModel(net)
        self._ppc_of_node = self.wls.ppc_bus(self.bus_idx)
        load = _in_service(net.load).loc[self.load_idx]
        self._load_ppc_bus = self.wls.ppc_bus(load.bus.to_numpy(dtype=np.int64))
        src_bus = set(self.wls.ppc_bus(_in_service(net.ext_grid).bus.to_numpy(dtype=np.int64)).tolist())
        with_appliance = set(self._load_ppc_bus.tolist()) | src_bus
        # every node without an appliance is a zero injection in PGM: the same constraints here
        self.zero_buses: IntArray = np.array(
            sorted(set(self._ppc_of_node.tolist()) - with_appliance), dtype=np.int64
        )
        self._line_rating_va = (
            np.sqrt(3)
            * net.bus.vn_kv.loc[line.loc[self.line_idx].from_bus].to_numpy(dtype=float)
            * 1e3
            * base[ComponentType.line]["i_n"].astype(float)
        )
        self._rating_va = np.concatenate([self._line_rating_va, self._trafo_sn_va])
        self._branch_rows = np.array(
            [self.wls.ppc_branch(f"line:{i}") for i in self.line_idx]
            + [self.wls.ppc_branch(n) for n in self.trafo_names],
            dtype=np.int64,
        )

    # ------------------------------------------------------------------ observability

    def topology(self) -> Topology:
        """The estimator's bus-branch graph (pandapower's internal buses, in-service branches)."""
        br = self.wls.branch
        on = np.flatnonzero(br[:, 10].real > 0)  # BR_STATUS
        names = [""] * br.shape[0]
        for i in self.line_idx:
            names[self.wls.ppc_branch(f"line:{i}")] = f"line:{i}"
        for nm in self.trafo_names:
            names[self.wls.ppc_branch(nm)] = nm
        label = np.full(self.wls.n_bus, -1, dtype=np.int64)
        label[self._ppc_of_node] = self.bus_idx
        return Topology(
            n_bus=self.wls.n_bus,
            f=br[on, 0].real.astype(np.int64),
            t=br[on, 1].real.astype(np.int64),
            branch_names=tuple(names[k] for k in on),
            bus_label=label,
            load_bus=self._load_ppc_bus.copy(),
            source_bus=np.asarray([self.wls.ref], dtype=np.int64),
        )

    def observability(
        self,
        mb: MeasurementBatch,
        t: int = 0,
        *,
        count_pseudo: bool = False,
        flow_candidates: bool = True,
        max_suggestions: int | None = None,
    ) -> Observability:
        """Observability of period `t`; by default from real meters alone (pseudo-measurements excluded)."""
        topo = self.topology()
        ld = mb.loads
        usable = np.isfinite(ld.sigma_p_kw[t]) & np.isfinite(ld.sigma_q_kvar[t])
        measured = usable if count_pseudo else usable & ld.metered[t]
        fl = mb.flows
        ok = (
            np.isfinite(fl.sigma_p_kw[t]) & np.isfinite(fl.sigma_q_kvar[t])
            if len(fl.branch)
            else np.zeros(0, bool)
        )
        pos = np.asarray([topo.branch_names.index(fl.branch[c]) for c in np.flatnonzero(ok)], dtype=np.int64)
        vb = (
            self.wls.ppc_bus(mb.voltage.bus[np.isfinite(mb.voltage.sigma_pu[t])])
            if len(mb.voltage.bus)
            else np.zeros(0, dtype=np.int64)
        )
        return check_observability(
            topo, measured, pos, vb, flow_candidates=flow_candidates, max_suggestions=max_suggestions
        )

    # ------------------------------------------------------------------ PGM model per sensor layout

    def _model(self, mb: MeasurementBatch) -> tuple[Any, dict[str, Any]]:
        """The PGM model for this layout of voltage and flow meters (cached: the layout rarely changes)."""
        from power_grid_model import ComponentType, MeasuredTerminalType, PowerGridModel, initialize_array

        key = (tuple(mb.voltage.bus.tolist()), tuple(zip(mb.flows.branch, mb.flows.side, strict=True)))
        if key in self._models:
            return self._models[key]
        if not np.array_equal(mb.loads.load, self.load_idx):
            raise ConfigError("load sensors must cover every in-service load in table order", key="loads")
        self._ids = self._ids_after_base
        data = dict(self._base)
        vs = initialize_array("input", "sym_voltage_sensor", len(mb.voltage.bus))
        vs["id"] = self._new_ids(len(vs))
        missing = [int(b) for b in mb.voltage.bus if int(b) not in self._node_id]
        if missing:
            raise ConfigError(f"voltage sensors at unknown buses {missing[:5]}", key="voltage")
        vs["measured_object"] = [self._node_id[int(b)] for b in mb.voltage.bus]
        vs["u_sigma"] = 1.0
        vs["u_measured"] = 1.0
        data[ComponentType.sym_voltage_sensor] = vs
        n_l, n_f = len(self.load_idx), len(mb.flows.branch)
        ps = initialize_array("input", "sym_power_sensor", n_l + n_f)
        ps["id"] = self._new_ids(n_l + n_f)
        ps["measured_object"][:n_l] = self._all_load_ids
        ps["measured_terminal_type"][:n_l] = MeasuredTerminalType.load
        ids = {
            "line": self._base[ComponentType.line]["id"],
            "trafo": self._base[ComponentType.transformer]["id"],
        }
        order = {"line": list(self.line_idx), "trafo": list(self._trafo_pp_idx)}
        for k, (name, side) in enumerate(zip(mb.flows.branch, mb.flows.side, strict=True)):
            table, idx = name.split(":")
            ps["measured_object"][n_l + k] = ids[table][order[table].index(int(idx))]
            ps["measured_terminal_type"][n_l + k] = (
                MeasuredTerminalType.branch_from if side == "from" else MeasuredTerminalType.branch_to
            )
        ps["p_sigma"] = 1.0
        ps["q_sigma"] = 1.0
        ps["p_measured"] = 0.0
        ps["q_measured"] = 0.0
        data[ComponentType.sym_power_sensor] = ps
        model = PowerGridModel(data, system_frequency=self._f_hz)
        info = {
            "v_ids": vs["id"].copy(),
            "p_ids": ps["id"].copy(),
            "v_urated": self._u_rated[[int(np.flatnonzero(self.bus_idx == b)[0]) for b in mb.voltage.bus]],
        }
        self._models[key] = (model, info)
        return model, info

    def _pgm_run(self, mb: MeasurementBatch, opt: EstimateOptions) -> dict[str, FloatArray]:
        from power_grid_model import CalculationMethod, ComponentType

        model, info = self._model(mb)
        T = mb.n_steps
        v, ld, fl = mb.voltage, mb.loads, mb.flows
        u_rated = info["v_urated"][None, :]
        # PGM disables a power sensor with infinite σ; a voltage sensor needs a finite one,
        # so an absent voltage reading gets a σ so wide (1e6 pu) that it carries no weight
        v_sigma = np.where(np.isfinite(v.sigma_pu), v.sigma_pu, 1e6)
        update = {
            ComponentType.sym_voltage_sensor: {
                "id": np.ascontiguousarray(np.broadcast_to(info["v_ids"], (T, len(info["v_ids"])))),
                "u_measured": np.where(np.isfinite(v.sigma_pu), v.u_pu, 1.0) * u_rated,
                "u_sigma": v_sigma * u_rated,
            },
            ComponentType.sym_power_sensor: {
                "id": np.ascontiguousarray(np.broadcast_to(info["p_ids"], (T, len(info["p_ids"])))),
                "p_measured": np.concatenate([ld.p_kw, fl.p_kw], axis=1) * 1e3,
                "q_measured": np.concatenate([ld.q_kvar, fl.q_kvar], axis=1) * 1e3,
                "p_sigma": np.concatenate([ld.sigma_p_kw, fl.sigma_p_kw], axis=1) * 1e3,
                "q_sigma": np.concatenate([ld.sigma_q_kvar, fl.sigma_q_kvar], axis=1) * 1e3,
            },
        }
        out = model.calculate_state_estimation(
            update_data=update,
            threading=opt.threading,
            calculation_method=CalculationMethod[opt.method],
            error_tolerance=opt.error_tolerance,
            max_iterations=opt.max_iterations,
            continue_on_batch_error=True,
            output_component_types={
                ComponentType.node: ["u_pu", "u_angle"],
                ComponentType.line: ["loading"],
                ComponentType.transformer: ["i_from", "i_to", "p_to"],
                ComponentType.sym_load: ["p"],
            },
        )
        err = model.batch_error
        failed = np.zeros(T, dtype=bool)
        if err is not None:
            failed[np.asarray(err.failed_scenarios, dtype=np.int64)] = True

        def col(comp: Any, attr: str) -> FloatArray:
            return np.atleast_2d(np.asarray(out[comp][attr], dtype=np.float64))

        i_from, i_to = col(ComponentType.transformer, "i_from"), col(ComponentType.transformer, "i_to")
        s_from = i_from * self._trafo_rated_v[:, 0] * np.sqrt(3)
        s_to = i_to * self._trafo_rated_v[:, 1] * np.sqrt(3)
        res = {
            "u_pu": col(ComponentType.node, "u_pu"),
            "u_angle": col(ComponentType.node, "u_angle"),
            "line_loading": col(ComponentType.line, "loading"),
            "trafo_loading": np.maximum(s_from, s_to) / self._trafo_sn_va,
            "trafo_p_lv_kw": -col(ComponentType.transformer, "p_to") / 1e3,
            "load_p_kw": col(ComponentType.sym_load, "p") / 1e3,
            "failed": failed,
        }
        for k, a in res.items():
            if k != "failed":
                a[failed] = np.nan
        return res

    def _voltages(self, res: dict[str, FloatArray], t: int) -> npt.NDArray[np.complex128]:
        v = np.ones(self.wls.n_bus, dtype=np.complex128)
        v[self._ppc_of_node] = res["u_pu"][t] * np.exp(1j * res["u_angle"][t])
        return v

    # ------------------------------------------------------------------ estimate

    def estimate(self, mb: MeasurementBatch, options: EstimateOptions | None = None) -> StateEstimate:
        """Estimate every period of `mb`; bad data removed per period as the module docstring says."""
        opt = options or EstimateOptions()
        res = self._pgm_run(mb, opt)
        T = mb.n_steps
        j_all, thr_all = np.full(T, np.nan), np.full(T, np.nan)
        chi_failed = np.zeros(T, dtype=bool)
        bad: list[BadDatum] = []
        vm_sigma = np.full((T, len(self.bus_idx)), np.nan) if opt.with_sigma else None
        n_br = len(self.line_idx) + len(self.trafo_names)
        br_sigma = np.full((T, n_br), np.nan) if opt.with_sigma else None
        widened: list[PseudoWidening] = []
        for t in range(T):
            if res["failed"][t]:
                continue
            rows, _ = wls_rows(mb, t, self.wls, self._load_ppc_bus, with_meta=False)
            v = self._voltages(res, t)
            j, thr = self._chi2(rows, v, opt)
            chi_failed[t] = j > thr
            if opt.bad_data and chi_failed[t]:
                rows, v, j, thr = self._clean(mb, t, res, opt, bad, widened)
            j_all[t], thr_all[t] = j, thr
            if vm_sigma is not None and br_sigma is not None:
                vm_sigma[t], br_sigma[t] = self.wls.sigmas(
                    v, rows, self.zero_buses, self._ppc_of_node, self._branch_rows, self._rating_va
                )
        n_l = len(self.line_idx)
        return StateEstimate(
            bus_idx=self.bus_idx.copy(),
            vm_pu=res["u_pu"],
            va_deg=np.rad2deg(res["u_angle"]),
            line_idx=self.line_idx.copy(),
            line_loading=res["line_loading"],
            trafo_names=self.trafo_names,
            trafo_loading=res["trafo_loading"],
            trafo_p_lv_kw=res["trafo_p_lv_kw"],
            load_idx=self.load_idx.copy(),
            load_p_kw=res["load_p_kw"],
            chi2=j_all,
            chi2_threshold=thr_all,
            chi2_failed=chi_failed,
            converged=~res["failed"].astype(bool),
            bad_data=tuple(bad),
            pseudo_widened=tuple(widened),
            vm_sigma_pu=vm_sigma,
            line_loading_sigma=None if br_sigma is None else br_sigma[:, :n_l],
            trafo_loading_sigma=None if br_sigma is None else br_sigma[:, n_l:],
            meta={"method": opt.method},
        )

    def _chi2(self, rows: Rows, v: npt.NDArray[np.complex128], opt: EstimateOptions) -> tuple[float, float]:
        """J(x̂) = Σ (r/σ)² and its χ² threshold (m counts the zero-injection constraints)."""
        r = rows.z - self.wls.h(v, rows)
        dof = len(rows.z) + 2 * len(self.zero_buses) - self.wls.n_state
        return float(np.sum((r / rows.sigma) ** 2)), _chi2_threshold(opt.chi2_prob_false, dof)

    def _clean(
        self,
        mb: MeasurementBatch,
        t: int,
        res: dict[str, FloatArray],
        opt: EstimateOptions,
        bad: list[BadDatum],
        widened: list[PseudoWidening],
    ) -> tuple[Rows, npt.NDArray[np.complex128], float, float]:
        """Period t's bad-data loop (module docstring; the widening rule in `baddata.py`); `res` row t updated."""
        step = mb.step(t)
        rows, meta = wls_rows(step, 0, self.wls, self._load_ppc_bus)
        v = self._voltages(res, t)
        j, thr = self._chi2(rows, v, opt)
        factor = np.ones(len(self.load_idx))
        kw_per_pu = self.wls.base_mva * 1e3
        for _ in range(opt.max_bad_data_iterations):
            r = rows.z - self.wls.h(v, rows)
            metered = step.loads.metered[0]
            # candidates: real meters' P, V and flow rows (a site meter's Q is a pseudo-value)
            cand = np.flatnonzero(
                [m.removable and kd != "q_inj" for m, kd in zip(meta, rows.kind, strict=True)]
            )
            pseudo = pseudo_rows(rows, meta, metered, self._load_ppc_bus)
            omega, gain = self.wls.residual_covariance(v, rows, self.zero_buses, np.union1d(cand, pseudo))
            r = gain.refined(rows, r)  # consistent with Ω (wls.Gain.refined says why)
            rn = normalised_residuals(r, omega, rows.sigma)
            if not len(cand):
                break
            k = largest_residual(cand, rn, r, rows.sigma)
            if rn[k] <= opt.rn_max_threshold:
                break
            cols = np.zeros(0, dtype=np.int64)
            # power meters only: a voltage meter's misfit is a voltage drop, which widened loads
            # explain only by implausible ones (a 30σ busbar error was absorbed at x8)
            if opt.pseudo_widen_factor > 1.0 and len(pseudo) and rows.kind[k] != "v":
                group = conflict_rows(
                    k,
                    rn,
                    omega,
                    gain.omega_column(rows, k),
                    pseudo,
                    rn_threshold=opt.rn_max_threshold,
                    coupling=opt.pseudo_coupling,
                )
                cols = np.flatnonzero(np.isin(self._load_ppc_bus, rows.bus[group]) & ~metered)
                cols = cols[factor[cols] * opt.pseudo_widen_factor <= opt.max_pseudo_factor * (1 + 1e-9)]
            m = meta[k]
            if len(cols):
                step = step.with_pseudo_widened(0, cols, opt.pseudo_widen_factor)
                factor[cols] *= opt.pseudo_widen_factor
                loads = tuple(int(i) for i in self.load_idx[cols])
                widened.append(
                    PseudoWidening(t, m.sensor, m.label, float(rn[k]), loads, float(factor[cols].max()))
                )
            else:
                step, datum = remove_sensor(step, m, rows, r, k, t, float(rn[k]), kw_per_pu)
                bad.append(datum)
            sub = self._pgm_run(step, opt)
            if sub["failed"][0]:
                break
            for key, arr in res.items():
                arr[t] = sub[key][0]
            rows, meta = wls_rows(step, 0, self.wls, self._load_ppc_bus)
            v = self._voltages(res, t)
            j, thr = self._chi2(rows, v, opt)
            if j <= thr:
                break
        return rows, v, j, thr


@functools.lru_cache(maxsize=256)
def _chi2_threshold(prob_false: float, dof: int) -> float:
    """χ²(1 − prob_false, dof); inf without redundancy (cached: the periods of a batch share a few dof)."""
    from scipy.stats import chi2 as chi2_dist

    return float(chi2_dist.ppf(1.0 - prob_false, dof)) if dof > 0 else float("inf")
