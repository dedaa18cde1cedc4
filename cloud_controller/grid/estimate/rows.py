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
    mb: MeasurementBatch, t: int, wls: WlsModel, load_ppc_bus: IntArray
) -> tuple[Rows, list[RowMeta]]:
    """Period `t` of `mb` as WLS rows (per unit) and what each row stands for."""
    base = wls.base_mva * 1e3  # kW per pu
    kind: list[str] = []
    bus: list[int] = []
    branch: list[int] = []
    to_side: list[bool] = []
    z: list[float] = []
    sig: list[float] = []
    meta: list[RowMeta] = []
    v = mb.voltage
    vb = wls.ppc_bus(v.bus) if len(v.bus) else np.zeros(0, dtype=np.int64)
    for c in range(len(v.bus)):
        if np.isfinite(v.sigma_pu[t, c]):
            kind.append("v")
            bus.append(int(vb[c]))
            branch.append(-1)
            to_side.append(False)
            z.append(float(v.u_pu[t, c]))
            sig.append(float(v.sigma_pu[t, c]))
            meta.append(RowMeta(f"voltage:{int(v.bus[c])}", v.source[c], c, "voltage", True))
    ld = mb.loads
    ok = np.isfinite(ld.sigma_p_kw[t]) & np.isfinite(ld.sigma_q_kvar[t])
    for b in np.unique(load_ppc_bus):
        cols = np.flatnonzero(load_ppc_bus == b)
        if not ok[cols].all():
            continue  # PGM: a bus injection is known only if every appliance on it is measured
        real = cols[ld.metered[t, cols]]
        # the real meter that dominates the row is the one to blame
        blame = int(real[np.argmin(ld.sigma_p_kw[t, real])]) if len(real) else int(cols[0])
        label = ld.site[blame] or f"load:{int(ld.load[blame])}"
        for k, val, s in (
            ("p_inj", ld.p_kw[t, cols], ld.sigma_p_kw[t, cols]),
            ("q_inj", ld.q_kvar[t, cols], ld.sigma_q_kvar[t, cols]),
        ):
            kind.append(k)
            bus.append(int(b))
            branch.append(-1)
            to_side.append(False)
            z.append(-float(val.sum()) / base)
            sig.append(float(np.sqrt((s**2).sum())) / base)
            meta.append(RowMeta(f"load:{int(ld.load[blame])}", label, blame, "load", len(real) > 0))
    fl = mb.flows
    for c in range(len(fl.branch)):
        if not (np.isfinite(fl.sigma_p_kw[t, c]) and np.isfinite(fl.sigma_q_kvar[t, c])):
            continue
        for k, val, s in (
            ("p_flow", fl.p_kw[t, c], fl.sigma_p_kw[t, c]),
            ("q_flow", fl.q_kvar[t, c], fl.sigma_q_kvar[t, c]),
        ):
            kind.append(k)
            bus.append(-1)
            branch.append(wls.ppc_branch(fl.branch[c]))
            to_side.append(fl.side[c] == "to")
            z.append(float(val) / base)
            sig.append(float(s) / base)
            meta.append(RowMeta(f"flow:{fl.branch[c]}:{fl.side[c]}", fl.source[c], c, "flow", True))
    rows = Rows(
        kind=tuple(kind),  # type: ignore[arg-type]
        bus=np.asarray(bus, dtype=np.int64),
        branch=np.asarray(branch, dtype=np.int64),
        to_side=np.asarray(to_side, dtype=bool),
        z=np.asarray(z, dtype=float),
        sigma=np.asarray(sig, dtype=float),
    )
    return rows, meta
