"""What a probabilistic congestion forecast is asked (`ForecastOptions`) and answers (`ProbabilisticForecast`).

Separate from the computation (`probabilistic.py`) so the API, the service and the benchmark
read one plain result type; alerts are built here from the statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from cloud_controller.forecast.indicators import CDF_LEVELS, QUANTILES, Alert, episodes

__all__ = ["ForecastOptions", "Method", "ProbabilisticForecast", "build_alerts"]

FloatArray = npt.NDArray[np.float64]
Method = Literal["fast", "ac"]


@dataclass(frozen=True)
class ForecastOptions:
    """How one forecast is computed and judged."""

    n_scenarios: int = 100
    method: Method = "fast"
    #: Voltage band every bus is judged against (pu); the element-limits work passes its own.
    v_band_pu: tuple[float, float] = (0.95, 1.05)
    #: An alert is raised where an element's P(exceed) reaches this level.
    alert_level: float = 0.1
    seed: int = 0
    #: Fast method only: this many intervals (the most uncertain) re-run through the full AC batch.
    ac_intervals: int = 0

    def __post_init__(self) -> None:
        if self.n_scenarios < 1:
            raise ValueError(f"n_scenarios must be >= 1, not {self.n_scenarios}")
        if self.method not in ("fast", "ac"):
            raise ValueError(f"method must be 'fast' or 'ac', not {self.method!r}")
        lo, hi = self.v_band_pu
        if not 0.0 < lo < hi:
            raise ValueError(f"v_band_pu must be (low, high) with 0 < low < high, not {self.v_band_pu}")
        if not 0.0 < self.alert_level <= 1.0:
            raise ValueError(f"alert_level must be in (0, 1], not {self.alert_level}")
        if self.ac_intervals < 0:
            raise ValueError("ac_intervals must be >= 0")


@dataclass(frozen=True)
class ProbabilisticForecast:
    """Per element (rows) and interval (columns): expected value, quantiles, P(exceed); the CDF; alerts.

    Transformers and lines are in % of their rating; buses in pu. `limit_lo`/`limit_hi` are
    what "exceed" means per element (loading above `limit_hi`; a voltage outside the band).
    """

    method: str
    n_scenarios: int
    elements: tuple[str, ...]  # "trafo:12", "line:3", "bus:7", "fleet_limit"
    names: tuple[str, ...]  # pandapower names (the station's name for a transformer)
    kinds: tuple[str, ...]  # "transformer", "line", "bus", "fleet_limit"
    limit_lo: FloatArray  # (E,) -inf for loadings
    limit_hi: FloatArray  # (E,)
    expected: FloatArray  # (E, T)
    quantiles: FloatArray  # (len(QUANTILES), E, T)
    p_exceed: FloatArray  # (E, T)
    cdf: FloatArray  # (E, len(CDF_LEVELS)): the horizon-worst value reached at each probability
    alerts: tuple[Alert, ...]
    options: ForecastOptions
    compute_s: float
    ac_checked: tuple[int, ...] = ()  # intervals taken from the full AC batch (fast method)
    quantile_levels: tuple[float, ...] = QUANTILES
    cdf_levels: tuple[float, ...] = CDF_LEVELS
    failed_steps: int = 0  # AC power flows that did not converge (their scenarios are NaN)

    @property
    def n_intervals(self) -> int:
        """Number of forecast intervals."""
        return int(self.expected.shape[1])

    def index(self, element: str) -> int:
        """Row of an element by id ("trafo:12") or name ("T_idx_118")."""
        if element in self.elements:
            return self.elements.index(element)
        if element in self.names:
            return self.names.index(element)
        raise KeyError(element)


def build_alerts(
    ids: Sequence[str],
    kinds: Sequence[str],
    expected: FloatArray,
    quantiles: FloatArray,
    p_exceed: FloatArray,
    limit_hi: FloatArray,
    opt: ForecastOptions,
) -> list[Alert]:
    """One alert per element and run of intervals with P(exceed) >= the alert level, in time order."""
    lo, hi = opt.v_band_pu
    alerts = []
    for e, first, last in episodes(p_exceed >= opt.alert_level):
        peak = first + int(np.argmax(p_exceed[e, first : last + 1]))
        limit = f"{lo:g}-{hi:g} pu" if kinds[e] == "bus" else f"{limit_hi[e]:g} %"
        alerts.append(
            Alert(
                ids[e],
                kinds[e],
                first,
                last,
                peak,
                float(p_exceed[e, peak]),
                float(expected[e, peak]),
                float(quantiles[QUANTILES.index(0.9), e, peak]),
                limit,
            )
        )
    alerts.sort(key=lambda a: (a.first, -a.p_exceed, a.element))
    return alerts
