"""Violations of `GridLimits`, per element by name and interval (pure).

Two sources: branch flows in kW per interval (the dispatch's linear model, any
`RadialGrid`, full or reduced: every line and transformer), and an AC power-flow result
(`grid/powerflow.py`: every transformer's loading and, where kept, every bus voltage).
Each violation names the element as the operator does (`GridLimits` names), the kind,
the interval's start, the value and the limit in force then (envelopes included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from cloud_controller.grid.limits import GridLimits

if TYPE_CHECKING:  # the live plan imports this module; power-grid-model only where AC is checked
    from cloud_controller.grid.powerflow import PowerFlowResult

__all__ = ["LimitViolation", "ViolationKind", "branch_violations", "interval_starts", "powerflow_violations"]

ViolationKind = Literal["trafo_loading", "line_loading", "voltage_low", "voltage_high"]
#: Below this a flow over its rating is round-off of the LP (its row tolerance), not a violation.
TOL_KW = 1e-3
TOL_PU = 1e-6


@dataclass(frozen=True)
class LimitViolation:
    """One element over one of its limits in one interval."""

    element: str
    kind: ViolationKind
    start: datetime  # the interval's start
    value: float  # kW (|flow|), kVA (AC loading x nominal) or pu
    limit: float  # in the same unit, as in force in that interval
    unit: Literal["kW", "kVA", "pu"]

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape the API shows."""
        return {
            "element": self.element,
            "kind": self.kind,
            "start": self.start,
            "value": round(self.value, 4),
            "limit": round(self.limit, 4),
            "unit": self.unit,
        }


def branch_violations(
    limits: GridLimits,
    refs: Sequence[str],
    flow_kw: npt.NDArray[np.float64],
    starts: Sequence[datetime],
    period_s: float,
    *,
    tol_kw: float = TOL_KW,
) -> list[LimitViolation]:
    """Branches whose |flow| (T, K) exceeds their rating in an interval; `refs` name the K columns."""
    flows = np.abs(np.asarray(flow_kw, dtype=float))
    rating = limits.ratings_kw(refs, starts, period_s)
    out: list[LimitViolation] = []
    for t, k in zip(*np.nonzero(flows > rating + tol_kw), strict=True):
        name = limits.name_of_ref(refs[k])
        kind: ViolationKind = "trafo_loading" if limits.branches[name].kind == "trafo" else "line_loading"
        out.append(LimitViolation(name, kind, starts[t], float(flows[t, k]), float(rating[t, k]), "kW"))
    return sorted(out, key=lambda v: (v.start, v.element))


def powerflow_violations(
    limits: GridLimits,
    result: PowerFlowResult,
    starts: Sequence[datetime],
    period_s: float,
    *,
    tol_pu: float = TOL_PU,
) -> list[LimitViolation]:
    """Transformers over their rating and buses outside their band in an AC result of len(starts) steps.

    A transformer's AC loading (current at rated voltage, a fraction of sn_mva) is compared
    in kVA with its rating in force; buses only where the result kept their voltages.
    """
    if result.n_steps != len(starts):
        raise ValueError(f"{result.n_steps} power-flow steps for {len(starts)} intervals")
    out: list[LimitViolation] = []
    names = list(result.trafo_names)
    rating = limits.ratings_kw(names, starts, period_s)
    for k, ref in enumerate(names):
        name = limits.name_of_ref(ref)
        if name not in limits.branches:
            continue
        s_kva = np.asarray(result.trafo_loading[:, k], dtype=float) * limits.branches[name].nominal_kw
        for t in np.flatnonzero(s_kva > rating[:, k] * (1.0 + tol_pu)).tolist():
            out.append(
                LimitViolation(name, "trafo_loading", starts[t], float(s_kva[t]), float(rating[t, k]), "kVA")
            )
    if result.bus_vm_pu is not None and result.bus_idx is not None:
        for j, idx in enumerate(result.bus_idx.tolist()):
            name = limits.name_of_ref(f"bus:{idx}")
            band = limits.buses.get(name)
            if band is None:
                continue
            vm = np.asarray(result.bus_vm_pu[:, j], dtype=float)
            for t in np.flatnonzero(vm < band.v_min_pu - tol_pu).tolist():
                out.append(LimitViolation(name, "voltage_low", starts[t], float(vm[t]), band.v_min_pu, "pu"))
            for t in np.flatnonzero(vm > band.v_max_pu + tol_pu).tolist():
                out.append(LimitViolation(name, "voltage_high", starts[t], float(vm[t]), band.v_max_pu, "pu"))
    return sorted(out, key=lambda v: (v.start, v.element))


def interval_starts(first: datetime, n: int, period_s: float) -> list[datetime]:
    """The starts of `n` intervals of `period_s` from `first`."""
    return [first + timedelta(seconds=k * period_s) for k in range(n)]
