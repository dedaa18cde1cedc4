"""How the planner and the forecasts hold each MV/LV station against fleet + background (pure).

The dispatch LP's flows are active power and a rating is kVA taken at unity power factor
(`grid/limits.py`). With a station's background (`station_load.py`) the planner:

- puts the background's median on the station's bus as a fixed load (`StepInputs.bus_fixed_kw`),
  so the station's flow, the HV/MV flow and the HV/MV threshold are of the total load, and
  `Plan.violations` compare the total with the rating;
- rates the station in active power: `sqrt(S² − Q²)` with the meter's measured Q held over the
  horizon, or `S · cos φ` (`COS_PHI_DEFAULT`) where the meter reports no Q (what a load at that
  power factor may draw at S: exact where the constraint binds);
- takes a chance margin of `z · σ` of the background off that rating (the fleet's own σ is
  in the HV/MV chance constraint), never more than `MAX_MARGIN_FRACTION` of it.

A station whose background has no measurement and no history (method "none") is planned as
before: the fleet alone against the rating at unity power factor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cloud_controller.live.station_load import StationBackground

__all__ = [
    "COS_PHI_DEFAULT",
    "MAX_MARGIN_FRACTION",
    "StationInputs",
    "household_background",
    "p_rating_kw",
    "station_inputs",
]

FloatArray = npt.NDArray[np.float64]
#: Power factor of a station's load where its meter reports no reactive power.
COS_PHI_DEFAULT = 0.95
#: The background's chance margin never takes more than this share of a station's rating.
MAX_MARGIN_FRACTION = 0.5


def p_rating_kw(rating_kva: float | FloatArray, q_kvar: float | FloatArray | None) -> FloatArray:
    """Active power a transformer of `rating_kva` carries at reactive power `q_kvar` (None: at cos φ)."""
    s = np.asarray(rating_kva, dtype=float)
    if q_kvar is None:
        return np.asarray(s * COS_PHI_DEFAULT, dtype=float)
    q = np.asarray(q_kvar, dtype=float)
    with np.errstate(invalid="ignore"):
        out = np.where(np.isfinite(s), np.sqrt(np.maximum(s * s - q * q, 0.0)), s)
    return np.asarray(out, dtype=float)


@dataclass(frozen=True)
class StationInputs:
    """The LP inputs the stations' backgrounds change, and the σ they add to the HV/MV total."""

    bus_fixed_kw: FloatArray  # (T, n_bus) each background's median at its station's bus
    rating_kw: FloatArray  # (T, K) the branch ratings, stations in active power less the margin
    sigma_kw: FloatArray  # (T,) σ of the backgrounds' sum (independent stations)

    @property
    def any(self) -> bool:
        """Whether any station has a background (else the LP runs as without meters)."""
        return bool(np.any(self.bus_fixed_kw != 0.0))


def station_inputs(
    rating_kw: FloatArray,
    column: Mapping[str, int],
    bus: Mapping[str, int],
    n_bus: int,
    backgrounds: Mapping[str, StationBackground],
    *,
    z: float,
) -> StationInputs:
    """Fixed loads and ratings for the planning LP; `column`/`bus`: each station's branch and bus there."""
    rating = np.array(rating_kw, dtype=float, copy=True)
    T = rating.shape[0]
    fixed = np.zeros((T, n_bus))
    var = np.zeros(T)
    for station, bg in backgrounds.items():
        if bg.method == "none" or station not in column:
            continue
        fixed[:, bus[station]] += bg.p50_kw
        var += bg.sigma_kw**2
        k = column[station]
        p_rating = p_rating_kw(rating[:, k], bg.q_kvar)
        margin = np.minimum(z * bg.sigma_kw, MAX_MARGIN_FRACTION * p_rating)
        rating[:, k] = np.where(np.isfinite(p_rating), np.maximum(p_rating - margin, 0.0), p_rating)
    return StationInputs(fixed, rating, np.sqrt(var))


def household_background(
    site_station: Sequence[str],
    fleet_households: Sequence[int],
    per_station_kw: Mapping[str, FloatArray],
) -> tuple[FloatArray, dict[str, int]]:
    """(T, households): each station's background spread evenly over its households outside the fleet.

    Households of a station without a background, and the fleet's, get 0. Also returns how
    many households took each station's background (0: it had none outside the fleet, and
    its background, losses or meter error, is not placed).
    """
    n = len(site_station)
    T = max((len(v) for v in per_station_kw.values()), default=1)
    out = np.zeros((T, n))
    fleet = set(int(h) for h in fleet_households)
    shared: dict[str, int] = {}
    for station, kw in per_station_kw.items():
        idx = [h for h in range(n) if site_station[h] == station and h not in fleet]
        shared[station] = len(idx)
        if idx:
            out[:, idx] = (np.asarray(kw, dtype=float) / len(idx))[:, None]
    return out, shared
