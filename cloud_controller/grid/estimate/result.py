"""What a state estimate returns: per element state and its σ, the removed bad data, the χ² test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BadDatum", "PseudoWidening", "StateEstimate"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class BadDatum:
    """One measurement removed by the largest-normalised-residual test (and what replaced it)."""

    period: int
    sensor: str  # "load:<pp idx>", "voltage:<pp bus>", "flow:<branch>:<side>"
    label: str  # site id, or what the meter is ("substation:HV/MV")
    measured: float  # kW (loads, flows) or pu (voltages), as given
    estimated: float  # the estimate of the same quantity before removal
    normalised_residual: float
    replaced_by: str  # "pseudo" (a load's forecast) or "nothing"


@dataclass(frozen=True)
class PseudoWidening:
    """One re-weighting step: the pseudo-measurements that shared a real meter's conflict got a wider σ.

    Recorded so it is never silent: the estimate then trusts the meter over the forecast there.
    """

    period: int
    meter: str  # the real meter whose normalised residual triggered it ("flow:trafo:3:to")
    label: str
    normalised_residual: float  # the meter's r_N before this step
    loads: tuple[int, ...]  # pandapower load indices whose pseudo σ was widened
    factor: float  # cumulative σ factor of those loads after this step


@dataclass(frozen=True)
class StateEstimate:
    """T periods of estimated state. σ arrays are None unless the estimate was asked for them.

    Loadings are fractions of the rating (1.0 = 100 %): lines current over `max_i_ka`, and
    transformers pandapower's current-based loading (rated voltage x current over sn).
    """

    bus_idx: IntArray  # pandapower bus index per column
    vm_pu: FloatArray  # (T, n_bus)
    va_deg: FloatArray  # (T, n_bus)
    line_idx: IntArray
    line_loading: FloatArray  # (T, n_line)
    trafo_names: tuple[str, ...]  # "trafo:<pp idx>"
    trafo_loading: FloatArray  # (T, n_trafo)
    trafo_p_lv_kw: FloatArray  # (T, n_trafo) power out of the LV side, load-positive
    load_idx: IntArray
    load_p_kw: FloatArray  # (T, n_load) estimated consumption
    chi2: FloatArray  # (T,) J(x) = Σ (r/σ)² of the final estimate
    chi2_threshold: FloatArray  # (T,) χ²(1 − prob_false, dof)
    chi2_failed: npt.NDArray[np.bool_]  # (T,) the first estimate failed the χ² test
    converged: npt.NDArray[np.bool_]  # (T,) PGM converged
    bad_data: tuple[BadDatum, ...] = ()
    pseudo_widened: tuple[PseudoWidening, ...] = ()
    vm_sigma_pu: FloatArray | None = None
    line_loading_sigma: FloatArray | None = None
    trafo_loading_sigma: FloatArray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        """Number of periods."""
        return int(self.vm_pu.shape[0])

    def vm_of(self, pp_bus: int) -> FloatArray:
        """Voltage series (T,) of one pandapower bus."""
        col = int(np.flatnonzero(self.bus_idx == pp_bus)[0])
        return np.asarray(self.vm_pu[:, col], dtype=float)
