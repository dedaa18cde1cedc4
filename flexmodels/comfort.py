"""Adaptive comfort bands (the seed's refs. 28-29): EN 15251 (now EN 16798-1) and ASHRAE 55.

The band is a function of the running-mean outdoor temperature, as both standards say:

- EN 15251:2007 Annex A.2, free-running buildings: T_comf = 0.33 · θ_rm + 18.8 [°C],
  with θ_rm = (1 − α) · Σ α^(i−1) · θ_ed,i (α = 0.8; θ_ed,i the daily mean outdoor
  temperature i days ago) or its approximation
  θ_rm = (θ_ed−1 + 0.8 θ_ed−2 + 0.6 θ_ed−3 + 0.5 θ_ed−4 + 0.4 θ_ed−5 + 0.3 θ_ed−6 + 0.2 θ_ed−7) / 3.8.
  Bands: category I ±2 K, II ±3 K, III ±4 K. Upper limit valid for 10 < θ_rm < 30 °C,
  lower limit for 15 < θ_rm < 30 °C.
- ASHRAE 55-2013 §5.4: T_comf = 0.31 · t_pma(out) + 17.8 [°C], 80 % acceptability ±3.5 K,
  90 % ±2.5 K, valid for 10 ≤ t_pma(out) ≤ 33.5 °C.

Outside the validity range a band is still needed (a heated building in winter): this
module clamps the running mean to the range, which gives EN 15251 cat. II 19.1-25.1 °C at
θ_rm ≤ 10 °C, close to the standard's fixed heating-season range for cat. II (20-25 °C).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from flexmodels.errors import require

__all__ = ["ComfortBand", "adaptive_band", "running_mean_outdoor_c"]

Standard = Literal["en15251", "ashrae55"]

_EN_HALF_WIDTH_K = {"I": 2.0, "II": 3.0, "III": 4.0}
_ASHRAE_HALF_WIDTH_K = {"80": 3.5, "90": 2.5}
_EN_WEIGHTS = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2)


@dataclass(frozen=True)
class ComfortBand:
    """Indoor operative temperature limits [°C]."""

    t_min_c: float
    t_max_c: float

    def __post_init__(self) -> None:
        require(
            self.t_min_c < self.t_max_c,
            "t_min_c/t_max_c",
            f"need min < max, got {self.t_min_c}/{self.t_max_c}",
        )

    def contains(self, t_c: float) -> bool:
        """Whether `t_c` is inside the band (edges included)."""
        return self.t_min_c <= t_c <= self.t_max_c


def running_mean_outdoor_c(daily_means_c: Sequence[float], *, alpha: float = 0.8) -> float:
    """θ_rm from daily mean outdoor temperatures, most recent (yesterday) first.

    With exactly seven days and α = 0.8 this is EN 15251's approximation (weights /3.8);
    otherwise the exponential series, normalised over the days given.
    """
    require(len(daily_means_c) >= 1, "daily_means_c", "need at least one daily mean")
    require(0.0 <= alpha < 1.0, "alpha", f"must be in [0, 1), got {alpha}")
    if len(daily_means_c) == 7 and alpha == 0.8:
        return sum(w * t for w, t in zip(_EN_WEIGHTS, daily_means_c, strict=True)) / 3.8
    weights = [alpha**i for i in range(len(daily_means_c))]
    return sum(w * t for w, t in zip(weights, daily_means_c, strict=True)) / sum(weights)


def adaptive_band(
    t_running_mean_c: float, *, standard: Standard = "en15251", category: str = "II"
) -> ComfortBand:
    """The adaptive comfort band at running-mean outdoor temperature `t_running_mean_c`."""
    if standard == "en15251":
        require(
            category in _EN_HALF_WIDTH_K,
            "category",
            f"EN 15251 category must be I, II or III, got {category!r}",
        )
        t_rm = min(max(t_running_mean_c, 10.0), 30.0)
        centre = 0.33 * t_rm + 18.8
        half = _EN_HALF_WIDTH_K[category]
    else:
        require(
            category in _ASHRAE_HALF_WIDTH_K,
            "category",
            f"ASHRAE 55 acceptability must be 80 or 90, got {category!r}",
        )
        t_pma = min(max(t_running_mean_c, 10.0), 33.5)
        centre = 0.31 * t_pma + 17.8
        half = _ASHRAE_HALF_WIDTH_K[category]
    return ComfortBand(centre - half, centre + half)
