"""The three congestion indicators' statistics over scenarios: expected, quantiles, P(exceed), CDF, alerts.

Seed 002 (the FlexiGrid guide for DSOs) names the indicators — node voltage deviation, branch
overload, transformer load — and asks for their cumulative probability per element. Each
indicator here is a float32 block (element, interval, scenario); the statistics are per
element and interval, the CDF per element over the horizon's worst interval of each scenario
(what a DSO reads as "how likely is this element to go past x at all in the horizon").

Pure: arrays in, arrays out (the forecast module assembles them; nothing here knows the grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CDF_LEVELS", "QUANTILES", "Alert", "BlockStats", "episodes", "quantiles_of_sorted"]

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

QUANTILES = (0.1, 0.5, 0.9)
#: Probabilities at which the per-element CDF is sampled (21 points: every 5 %).
CDF_LEVELS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(21))


def quantiles_of_sorted(values: F32, probs: Sequence[float]) -> FloatArray:
    """Quantiles (linear interpolation, numpy's default) along the last axis of sorted values."""
    s = values.shape[-1]
    out = np.empty((len(probs), *values.shape[:-1]))
    for j, p in enumerate(probs):
        pos = p * (s - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, s - 1)
        w = pos - lo
        out[j] = (1.0 - w) * values[..., lo] + w * values[..., hi]
    return out


@dataclass
class BlockStats:
    """Statistics of one indicator, filled interval block by interval block.

    `expected`, `quantiles`, `p_exceed` are (E, T); `worst` (E, S) is each scenario's worst
    value over the horizon so far (max, or the largest deviation for voltages), for the CDF.
    """

    expected: FloatArray
    quantiles: FloatArray  # (len(QUANTILES), E, T)
    p_exceed: FloatArray
    worst: FloatArray

    @classmethod
    def empty(cls, n_elements: int, n_intervals: int, n_scenarios: int) -> BlockStats:
        """Statistics to be filled (NaN until a block covers them)."""
        et = (n_elements, n_intervals)
        return cls(
            np.full(et, np.nan),
            np.full((len(QUANTILES), *et), np.nan),
            np.full(et, np.nan),
            np.full((n_elements, n_scenarios), -np.inf),
        )

    def add(
        self, t_idx: npt.NDArray[np.int64], values: F32, n_exceed: npt.NDArray[np.int64], worst: F32
    ) -> None:
        """One block: `values` (E, Tb, S), sorted here in place; `n_exceed` (E, Tb) scenarios past the limit.

        `worst` (E, S): each scenario's worst value over the block's intervals (taken before sorting).
        """
        s = values.shape[-1]
        self.expected[:, t_idx] = values.mean(axis=-1)
        self.p_exceed[:, t_idx] = n_exceed / s
        np.maximum(self.worst, worst, out=self.worst)
        values.sort(axis=-1)
        self.quantiles[:, :, t_idx] = quantiles_of_sorted(values, QUANTILES)

    def cdf(self) -> FloatArray:
        """(E, len(CDF_LEVELS)): the horizon-worst value reached with each probability (empirical CDF)."""
        return quantiles_of_sorted(np.sort(self.worst, axis=-1), CDF_LEVELS).T


@dataclass(frozen=True)
class Alert:
    """Consecutive intervals where an element's P(exceed) is at or above the alert level."""

    element: str
    kind: str  # "transformer", "line", "bus", "fleet_limit"
    first: int  # first interval index of the episode
    last: int  # last interval index
    peak: int  # interval of the highest P(exceed)
    p_exceed: float  # the highest P(exceed) in the episode
    expected: float  # expected value at `peak` (% loading, or pu for a bus)
    p90: float  # p90 at `peak`
    limit: str  # what is exceeded, e.g. "100 %" or "0.95-1.05 pu"


def episodes(above: BoolArray) -> list[tuple[int, int, int]]:
    """Runs of True in each row of `above` (E, T) as (row, first, last), rows in order."""
    out: list[tuple[int, int, int]] = []
    padded = np.zeros((above.shape[0], above.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = above
    d = np.diff(padded, axis=1)
    rows_s, starts = np.nonzero(d == 1)
    _, ends = np.nonzero(d == -1)
    for e, a, b in zip(rows_s, starts, ends, strict=True):
        out.append((int(e), int(a), int(b) - 1))
    return out
