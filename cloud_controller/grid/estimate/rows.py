"""The WLS rows of one period: every usable measurement as a row of the residual model.

Split from the estimator so the rows can be read (and tested) on their own: which sensor
a row stands for decides what the bad-data loop removes. A bus injection is one row only
when every appliance on the bus is measured (power-grid-model's rule); the real meter with
the smallest σ is the one blamed for it, and a pseudo-measurement is never "bad data".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from cloud_controller.grid.estimate.measurements import MeasurementBatch
from cloud_controller.grid.estimate.wls import Rows, WlsModel

__all__ = ["RowMeta", "wls_rows"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RowMeta:
    """What one WLS row stands for: the sensor to remove if it is bad."""

    sensor: str
    label: str
    col: int  # load column, voltage sensor column or flow sensor column
    family: Literal["load", "voltage", "flow"]
    removable: bool  # real meters only: a pseudo-measurement is never "bad data"


def wls_rows(
    mb: MeasurementBatch, t: int, wls: WlsModel, load_ppc_bus: IntArray, *, with_meta: bool = True
) -> tuple[Rows, list[RowMeta]]:
    """Period `t` of `mb` as WLS rows (per unit) and what each row stands for (`with_meta`, else []).

    Vectorised over sensors (the χ² test of every period of a batch builds these rows; a
    per-bus Python loop was ~0.1 s a period on the region). Row order: voltages, then per
    load bus (ascending) its P and Q injection, then per flow sensor its P and Q.
    """
    base = wls.base_mva * 1e3  # kW per pu
    v, ld, fl = mb.voltage, mb.loads, mb.flows
    # voltages
    v_ok = np.flatnonzero(np.isfinite(v.sigma_pu[t])) if len(v.bus) else np.zeros(0, dtype=np.int64)
    vb = wls.ppc_bus(v.bus[v_ok]) if len(v_ok) else np.zeros(0, dtype=np.int64)
    # load injections: one row pair per bus whose every appliance is measured (PGM's rule)
    order = np.argsort(load_ppc_bus, kind="stable")
    sb = load_ppc_bus[order]
    starts = np.flatnonzero(np.r_[True, sb[1:] != sb[:-1]]) if len(sb) else np.zeros(0, dtype=np.int64)
    buses = sb[starts]
    ok = (np.isfinite(ld.sigma_p_kw[t]) & np.isfinite(ld.sigma_q_kvar[t]))[order]
    bus_ok = np.logical_and.reduceat(ok, starts) if len(starts) else np.zeros(0, dtype=bool)
    keep = np.flatnonzero(bus_ok)

    def per_bus(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = np.add.reduceat(x[order], starts)[keep] if len(starts) else x[:0]
        return out

    p_sum, q_sum = per_bus(ld.p_kw[t]), per_bus(ld.q_kvar[t])
    sp = np.sqrt(per_bus(ld.sigma_p_kw[t] ** 2))  # a bus with an inf σ is not kept
    sq = np.sqrt(per_bus(ld.sigma_q_kvar[t] ** 2))
    n_b = len(keep)
    # flows
    f_ok = (
        np.flatnonzero(np.isfinite(fl.sigma_p_kw[t]) & np.isfinite(fl.sigma_q_kvar[t]))
        if len(fl.branch)
        else np.zeros(0, dtype=np.int64)
    )
    f_br = np.asarray([wls.ppc_branch(fl.branch[c]) for c in f_ok], dtype=np.int64)
    n_v, n_f = len(v_ok), len(f_ok)
    kind: list[str] = ["v"] * n_v + ["p_inj", "q_inj"] * n_b + ["p_flow", "q_flow"] * n_f
    rows = Rows(
        kind=tuple(kind),  # type: ignore[arg-type]
        bus=np.concatenate([vb, np.repeat(buses[keep], 2), np.full(2 * n_f, -1)]).astype(np.int64),
        branch=np.concatenate([np.full(n_v + 2 * n_b, -1), np.repeat(f_br, 2)]).astype(np.int64),
        to_side=np.concatenate(
            [
                np.zeros(n_v + 2 * n_b, dtype=bool),
                np.repeat([fl.side[c] == "to" for c in f_ok], 2).astype(bool),
            ]
        ),
        z=np.concatenate(
            [
                v.u_pu[t, v_ok],
                np.column_stack([-p_sum, -q_sum]).ravel() / base,
                np.column_stack([fl.p_kw[t, f_ok], fl.q_kvar[t, f_ok]]).ravel() / base,
            ]
        ).astype(float),
        sigma=np.concatenate(
            [
                v.sigma_pu[t, v_ok],
                np.column_stack([sp, sq]).ravel() / base,
                np.column_stack([fl.sigma_p_kw[t, f_ok], fl.sigma_q_kvar[t, f_ok]]).ravel() / base,
            ]
        ).astype(float),
    )
    if not with_meta:
        return rows, []
    meta = [RowMeta(f"voltage:{int(v.bus[c])}", v.source[c], int(c), "voltage", True) for c in v_ok]
    for i in keep:
        cols = order[starts[i] : starts[i + 1] if i + 1 < len(starts) else len(order)]
        real = cols[ld.metered[t, cols]]
        # the real meter that dominates the row is the one to blame
        blame = int(real[np.argmin(ld.sigma_p_kw[t, real])]) if len(real) else int(cols.min())
        m = RowMeta(
            f"load:{int(ld.load[blame])}",
            ld.site[blame] or f"load:{int(ld.load[blame])}",
            blame,
            "load",
            len(real) > 0,
        )
        meta += [m, m]
    for c in f_ok:
        m = RowMeta(f"flow:{fl.branch[c]}:{fl.side[c]}", fl.source[c], int(c), "flow", True)
        meta += [m, m]
    return rows, meta
