"""The limits in force, as the probabilistic forecast judges its elements against them.

The forecast reports a branch's loading in % of its nominal power (a transformer's `sn_mva`, a
line's `max_i_ka` at its voltage) and a bus's voltage in pu; `GridLimits` holds each element's
rating in kW (the net's `max_loading_percent`, a config override, a DSO's envelope in force in
an interval) and each bus's band. Pure: the planner calls it with the forecast's element order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt

from cloud_controller.grid.limits import GridLimits

__all__ = ["forecast_limits"]

FloatArray = npt.NDArray[np.float64]
#: A branch GridLimits does not rate (or rates at infinity) is judged at this loading (%): the
#: forecast's own default for an unrated branch, so P(exceed) stays meaningful.
UNRATED_PCT = 100.0


def forecast_limits(
    limits: GridLimits,
    branch_refs: Sequence[str],
    bus_refs: Sequence[str],
    starts: Sequence[datetime],
    period_s: float,
) -> tuple[FloatArray, tuple[FloatArray, FloatArray]]:
    """(T, K) each branch's limit in % of its nominal power per interval, and each bus's (low, high) band."""
    ratings = limits.ratings_kw(list(branch_refs), list(starts), period_s)  # (T, K) kW, inf = unknown
    pct = np.full(ratings.shape, UNRATED_PCT)
    for k, ref in enumerate(branch_refs):
        b = limits.branches.get(limits.name_of_ref(ref))
        if b is None or not (math.isfinite(b.nominal_kw) and b.nominal_kw > 0):
            continue
        col = ratings[:, k]
        # rounded: kW and back would make the net's own 0.15 % into 0.14999999999999997 %
        pct[:, k] = np.where(np.isfinite(col), np.round(100.0 * col / b.nominal_kw, 9), UNRATED_PCT)
    lo = np.empty(len(bus_refs))
    hi = np.empty(len(bus_refs))
    for i, ref in enumerate(bus_refs):
        band = limits.buses.get(limits.name_of_ref(ref))
        lo[i], hi[i] = (band.v_min_pu, band.v_max_pu) if band is not None else (0.95, 1.05)
    return pct, (lo, hi)
