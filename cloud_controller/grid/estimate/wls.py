"""A numpy WLS linearisation of the net, for what power-grid-model does not expose.

Why: power-grid-model returns the estimated state and each sensor's residual, but not the
gain matrix or the residual covariance, and the largest-normalised-residual test needs
both: r_N,i = |r_i| / sqrt(Ω_ii) with Ω = R − H E Hᵀ, H the measurement Jacobian at the
estimate and E the state covariance. So the same network is built a second time as
pandapower's own admittance matrices (`makeYbus` on its ppc, which the power-flow tests
show equal to PGM's model to 2e-5 pu), and H is formed at PGM's estimate with
pandapower's `dSbus_dV` / `dSbr_dV`. Zero injections enter as virtual
measurements with σ a thousandth of the tightest meter's (PGM treats them as exact
constraints; the difference in Ω is of that order), which keeps the gain matrix symmetric
positive definite with the net's tree sparsity, so it factorises with little fill, where
the KKT form filled in badly. Everything is per unit on the net's `sn_mva`.

Open line ends are modelled as out-of-service lines here (PGM keeps their shunt
capacitance: a few var on LV cables, far below any σ).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["Gain", "Rows", "WlsModel", "solve_chunked"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
RowKind = Literal["v", "p_inj", "q_inj", "p_flow", "q_flow"]


@dataclass(frozen=True)
class Rows:
    """Measurement rows of one period in the WLS model (all per unit)."""

    kind: tuple[RowKind, ...]
    bus: IntArray  # ppc bus (v, injections) or -1
    branch: IntArray  # ppc branch (flows) or -1
    to_side: npt.NDArray[np.bool_]  # flow at the branch's "to" end
    z: FloatArray  # measured value (injections generation-positive)
    sigma: FloatArray


#: Right-hand sides per SuperLU solve: on the region (1,261 states) 650 columns in one call took
#: 3.7 s and the same in chunks of 50 took 0.06 s (SuperLU's multi-column solve degrades with width).
SOLVE_CHUNK = 50


def solve_chunked(lu: Any, b: FloatArray) -> FloatArray:
    """lu⁻¹ b for a dense (n, m) b, SOLVE_CHUNK columns at a time."""
    out = np.empty(b.shape, dtype=float)
    for a in range(0, b.shape[1], SOLVE_CHUNK):
        out[:, a : a + SOLVE_CHUNK] = lu.solve(np.asfortranarray(b[:, a : a + SOLVE_CHUNK]))
    return out


def _real_or_imag(dva: Any, dvm: Any, nonref: IntArray, *, imag: bool) -> sp.csr_matrix:
    """[∂/∂θ (non-reference columns) | ∂/∂|V|] of the real (P) or imaginary (Q) part."""
    a, m = (dva.imag, dvm.imag) if imag else (dva.real, dvm.real)
    return sp.csr_matrix(sp.hstack([a[:, nonref], m]))


class WlsModel:
    """Admittance matrices of `net` (pandapower's ppc) and the measurement functions h(V), H(V)."""

    def __init__(self, net: Any) -> None:
        import pandapower as pp
        from pandapower.pypower.makeYbus import makeYbus

        work = copy.deepcopy(net)
        sw = work.switch
        if len(sw):
            open_lines = sw[(sw.et == "l") & ~sw.closed.astype(bool)].element.unique()
            work.line.loc[work.line.index.isin(open_lines), "in_service"] = False
            work.switch = sw[~((sw.et == "l") & ~sw.closed.astype(bool))]
        # one power flow of the unloaded copy builds pandapower's ppc (buses renumbered to its
        # internal order, every branch row kept); the admittances do not depend on the loads
        work.load["p_mw"] = 0.0
        work.load["q_mvar"] = 0.0
        pp.runpp(work, init="dc", calculate_voltage_angles=True, check_connectivity=False)
        ppc = work._ppc
        look = work._pd2ppc_lookups
        self.base_mva = float(ppc["baseMVA"])
        self.bus_lookup: IntArray = np.asarray(look["bus"], dtype=np.int64)
        self.branch = ppc["branch"]
        self._line_rows = look["branch"].get("line", (0, 0))
        self._trafo_rows = look["branch"].get("trafo", (0, 0))
        ybus, yf, yt = makeYbus(self.base_mva, ppc["bus"], ppc["branch"])
        self.ybus, self.yf, self.yt = sp.csr_matrix(ybus), sp.csr_matrix(yf), sp.csr_matrix(yt)
        # pandapower numbers branch rows in table order, every line then every trafo
        self._order = {"line": pd.Index(work.line.index), "trafo": pd.Index(work.trafo.index)}
        self.n_bus = int(ppc["bus"].shape[0])
        eg = work.ext_grid[work.ext_grid.in_service.astype(bool)]
        self.ref = int(self.bus_lookup[int(eg.bus.iloc[0])])
        self._nonref = np.array([b for b in range(self.n_bus) if b != self.ref], dtype=np.int64)

    def ppc_bus(self, pp_bus: IntArray | list[int]) -> IntArray:
        """The ppc bus index of pandapower buses."""
        return np.asarray(self.bus_lookup[np.asarray(pp_bus, dtype=np.int64)], dtype=np.int64)

    def ppc_branch(self, name: str) -> int:
        """The ppc branch row of "line:<idx>" or "trafo:<idx>" (pandapower index)."""
        table, idx = name.split(":")
        lo, _ = self._line_rows if table == "line" else self._trafo_rows
        return int(lo + self._order[table].get_loc(int(idx)))

    @property
    def n_state(self) -> int:
        """Angles of every non-reference bus, then every magnitude."""
        return len(self._nonref) + self.n_bus

    # -------------------------------------------------------------- functions

    def h(self, v: npt.NDArray[np.complex128], rows: Rows) -> FloatArray:
        """Measurement functions at complex bus voltages `v` (pu)."""
        s_bus = v * np.conj(self.ybus @ v)
        f = self.branch[:, 0].real.astype(np.int64)
        t = self.branch[:, 1].real.astype(np.int64)
        s_f = v[f] * np.conj(self.yf @ v)
        s_t = v[t] * np.conj(self.yt @ v)
        kinds = np.asarray(rows.kind)
        out = np.zeros(len(kinds))
        for kind, fn in (("v", np.abs), ("p_inj", np.real), ("q_inj", np.imag)):
            sel = kinds == kind
            if sel.any():
                out[sel] = fn(v[rows.bus[sel]] if kind == "v" else s_bus[rows.bus[sel]])
        for kind, fn in (("p_flow", np.real), ("q_flow", np.imag)):
            for to_side, s_br in ((False, s_f), (True, s_t)):
                sel = (kinds == kind) & (rows.to_side == to_side)
                if sel.any():
                    out[sel] = fn(s_br[rows.branch[sel]])
        return out

    def jacobian(self, v: npt.NDArray[np.complex128], rows: Rows) -> sp.csr_matrix:
        """∂h/∂x at `v`, x = (angles of non-reference buses, all magnitudes)."""
        from pandapower.pypower.dSbr_dV import dSbr_dV
        from pandapower.pypower.dSbus_dV import dSbus_dV

        ds_dvm, ds_dva = dSbus_dV(self.ybus, v)
        dsf_dva, dsf_dvm, dst_dva, dst_dvm, _, _ = dSbr_dV(self.branch, self.yf, self.yt, v)
        kinds = np.asarray(rows.kind)
        nr = self._nonref
        n_nr = len(nr)
        m = len(kinds)
        groups: list[sp.csr_matrix] = []
        order: list[IntArray] = []
        sel_v = np.flatnonzero(kinds == "v")
        if len(sel_v):
            cols = n_nr + rows.bus[sel_v]
            groups.append(
                sp.csr_matrix(
                    (np.ones(len(sel_v)), (np.arange(len(sel_v)), cols)), (len(sel_v), self.n_state)
                )
            )
            order.append(sel_v)
        for kind, dva_all, dvm_all, index in (
            ("p_inj", ds_dva, ds_dvm, rows.bus),
            ("q_inj", ds_dva, ds_dvm, rows.bus),
        ):
            sel = np.flatnonzero(kinds == kind)
            if len(sel):
                dva, dvm = dva_all[index[sel]], dvm_all[index[sel]]
                groups.append(_real_or_imag(dva, dvm, nr, imag=kind == "q_inj"))
                order.append(sel)
        for kind in ("p_flow", "q_flow"):
            for to_side, dva_all, dvm_all in ((False, dsf_dva, dsf_dvm), (True, dst_dva, dst_dvm)):
                sel = np.flatnonzero((kinds == kind) & (rows.to_side == to_side))
                if len(sel):
                    dva, dvm = dva_all[rows.branch[sel]], dvm_all[rows.branch[sel]]
                    groups.append(_real_or_imag(dva, dvm, nr, imag=kind == "q_flow"))
                    order.append(sel)
        if not groups:
            return sp.csr_matrix((0, self.n_state))
        stacked = sp.csr_matrix(sp.vstack(groups))
        inv = np.empty(m, dtype=np.int64)
        inv[np.concatenate(order)] = np.arange(m)
        return sp.csr_matrix(stacked[inv])

    def _factor(self, v: npt.NDArray[np.complex128], rows: Rows, zero_buses: IntArray) -> Gain:
        """H at `v` and the factorised gain matrix G = HᵀWH + CᵀC/σ_zi² (C: zero-injection rows)."""
        hm = self.jacobian(v, rows)
        zk: list[RowKind] = ["p_inj"] * len(zero_buses)
        zk += ["q_inj"] * len(zero_buses)
        zr = Rows(
            kind=tuple(zk),
            bus=np.concatenate([zero_buses, zero_buses]).astype(np.int64),
            branch=np.full(2 * len(zero_buses), -1, dtype=np.int64),
            to_side=np.zeros(2 * len(zero_buses), dtype=bool),
            z=np.zeros(2 * len(zero_buses)),
            sigma=np.ones(2 * len(zero_buses)),
        )
        cm = self.jacobian(v, zr)
        # zero injections as virtual measurements 1e-3 of the tightest σ: the gain matrix keeps
        # the net's tree sparsity and factorises with little fill (the KKT form filled in badly)
        s_zi = 1e-3 * float(rows.sigma.min()) if len(rows.sigma) else 1e-6
        w = sp.diags(1.0 / rows.sigma**2)
        gain = (hm.T @ w @ hm + (cm.T @ cm) / s_zi**2).tocsc()
        return Gain(hm, cm, -self.h(v, zr), s_zi, spla.splu(gain))

    def covariances(
        self,
        v: npt.NDArray[np.complex128],
        rows: Rows,
        zero_buses: IntArray,
        *,
        want_state: bool,
        only: IntArray | None = None,
    ) -> tuple[FloatArray, FloatArray | None, sp.csr_matrix]:
        """The diagonal of Ω (residual variances) and, if asked, the state covariance E.

        C, the zero-injection rows (P and Q), enter as near-exact virtual measurements.
        `only`: the rows whose Ω is wanted (the rest are NaN): each row is one solve with the
        factorised gain matrix, and only real meters can be bad data.
        Returns (omega_diag, E or None, H).
        """
        g = self._factor(v, rows, zero_buses)
        hm, lu = g.hm, g.lu
        sel = np.arange(hm.shape[0]) if only is None else np.asarray(only, dtype=np.int64)
        h_sel = hm[sel]
        x = solve_chunked(lu, h_sel.T.toarray())  # E Hᵀ of the wanted rows
        omega = np.full(hm.shape[0], np.nan)
        omega[sel] = rows.sigma[sel] ** 2 - np.asarray(h_sel.multiply(x.T).sum(axis=1)).ravel()
        cov = solve_chunked(lu, np.eye(self.n_state)) if want_state else None
        return omega, cov, hm

    def sigmas(
        self,
        v: npt.NDArray[np.complex128],
        rows: Rows,
        zero_buses: IntArray,
        bus_rows: IntArray,
        branch_rows: IntArray,
        rating_va: FloatArray,
    ) -> tuple[FloatArray, FloatArray]:
        """σ of the voltage at ppc buses `bus_rows` (pu) and of the loading of `branch_rows` (fraction of `rating_va`).

        From the state covariance E (one solve per state) and the linearised |S| at each branch's from end.
        """
        from pandapower.pypower.dSbr_dV import dSbr_dV

        _, cov, _ = self.covariances(v, rows, zero_buses, want_state=True)
        assert cov is not None
        vm_var = np.diag(cov)[len(self._nonref) :]
        vm_sigma = np.sqrt(np.maximum(vm_var[bus_rows], 0.0))
        dsf_dva, dsf_dvm, _, _, s_f, _ = dSbr_dV(self.branch, self.yf, self.yt, v)
        s = s_f[branch_rows]
        mag = np.maximum(np.abs(s), 1e-12)
        ds = sp.hstack([dsf_dva[branch_rows][:, self._nonref], dsf_dvm[branch_rows]]).tocsr()
        g = (sp.diags(s.real / mag) @ ds.real + sp.diags(s.imag / mag) @ ds.imag).tocsr()
        var = (np.asarray(g @ cov) * g.toarray()).sum(axis=1)
        sigma_s_va = np.sqrt(np.maximum(var, 0.0)) * self.base_mva * 1e6
        return vm_sigma, sigma_s_va / rating_va

    def residual_covariance(
        self, v: npt.NDArray[np.complex128], rows: Rows, zero_buses: IntArray, only: IntArray
    ) -> tuple[FloatArray, Gain]:
        """Ω's diagonal at rows `only` (NaN elsewhere), and the factorised gain for `refined` and `omega_column`."""
        g = self._factor(v, rows, zero_buses)
        sel = np.asarray(only, dtype=np.int64)
        omega = np.full(g.hm.shape[0], np.nan)
        if len(sel):
            h_sel = g.hm[sel]
            x = solve_chunked(g.lu, h_sel.T.toarray())
            omega[sel] = rows.sigma[sel] ** 2 - np.asarray(h_sel.multiply(x.T).sum(axis=1)).ravel()
        return omega, g


@dataclass(frozen=True)
class Gain:
    """H, the zero-injection rows C and their mismatch at one state, and the factorised gain matrix."""

    hm: sp.csr_matrix
    cm: sp.csr_matrix
    c_mismatch: FloatArray  # 0 − h_zi(v): zero injections are exactly 0
    s_zi: float
    lu: Any

    def refined(self, rows: Rows, r: FloatArray) -> FloatArray:
        """Residuals after one Gauss-Newton step of this model from the state they were taken at.

        Why: PGM's estimate is the optimum of PGM's model; this model differs from it by ~1e-6 pu,
        which next to a class-0.2 substation meter (σ ~ 1e-5 pu) is a residual of 0.1σ where the
        WLS optimum leaves 0.001σ, and with Ω ~ 1e-5 σ² such a meter's r_N came out 30-100x too
        high (a station meter "bad" at r_N 94 whose consistent r_N is 0.8). One step moves the
        state by ~1e-7 pu and makes r consistent with Ω (the same H and gain matrix).
        """
        rhs = self.hm.T @ (r / rows.sigma**2) + self.cm.T @ self.c_mismatch / self.s_zi**2
        dx = self.lu.solve(np.asarray(rhs, dtype=float))
        out: FloatArray = r - np.asarray(self.hm @ dx, dtype=float).ravel()
        return out

    def omega_column(self, rows: Rows, k: int) -> FloatArray:
        """Column k of Ω = R − H E Hᵀ: how every residual co-varies with row k's (one solve)."""
        x = self.lu.solve(np.asarray(self.hm[k].toarray().ravel(), dtype=float))
        col: FloatArray = -np.asarray(self.hm @ x, dtype=float).ravel()
        col[k] += float(rows.sigma[k]) ** 2
        return col
