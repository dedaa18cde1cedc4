"""The comfort veto's decision (pure): is a zone still inside what a DR write may cost its occupants?

Seed 003 (O'Connell & Keane 2021 §3.1-3.2) plans DR inside two constraints: the zone's
temperature stays in its comfort band and CO2 stays below 1000 ppm (CIBSE Guide B2). The
cloud plans with them; the edge enforces them, because the plan is a forecast and the
room is not: a door left open, a meeting of twenty in a room for six. While a DR write
holds, `check` is asked every poll with the zone's latest readings; a `Veto` makes the
agent (`edge_agent.dr_writes`) relinquish the write so the BMS's own control takes over.

Hysteresis: after a veto the zone must be back inside the band by `t_hysteresis_k` and
CO2 at or below the limit minus `co2_hysteresis_ppm` (`cleared`) before the zone takes a
new DR write; the vetoed command itself is never re-applied. Without the margin a zone at
the edge of its band would flap between held and released every poll.

A configured point without a usable reading (none yet, or `bad`) counts as a veto too
("unreadable"): a DR write nobody can check is not held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge_agent.config import AssetConfig
from edge_agent.config_dr import ComfortConfig
from flexmodels import adaptive_band

__all__ = ["ComfortLimits", "Veto", "check", "cleared", "comfort_limits"]


@dataclass(frozen=True, slots=True)
class ComfortLimits:
    """What a zone's DR writes are held to; a point None is not checked."""

    t_min_c: float
    t_max_c: float
    co2_max_ppm: float
    t_point: str | None
    co2_point: str | None
    t_hysteresis_k: float = 0.5
    co2_hysteresis_ppm: float = 100.0

    @property
    def band_text(self) -> str:
        """The band as the reasons print it: "20–23 °C"."""
        return f"{self.t_min_c:g}–{self.t_max_c:g} °C"


@dataclass(frozen=True, slots=True)
class Veto:
    """Why a DR write must go: `cause` (comfort, co2, unreadable) and the reason the ack and event carry."""

    cause: Literal["comfort", "co2", "unreadable"]
    reason: str
    t_c: float | None = None
    co2_ppm: float | None = None


def comfort_limits(asset: AssetConfig) -> ComfortLimits:
    """The asset's limits: `comfort:` band, else `model.t_min_c/t_max_c`, else the adaptive band."""
    c = asset.comfort or ComfortConfig()
    if c.t_min_c is not None and c.t_max_c is not None:
        lo, hi = c.t_min_c, c.t_max_c
    elif asset.model.t_min_c is not None and asset.model.t_max_c is not None:
        lo, hi = asset.model.t_min_c, asset.model.t_max_c
    else:
        band = adaptive_band(c.running_mean_outdoor_c, standard=c.standard, category=c.category)
        lo, hi = round(band.t_min_c, 2), round(band.t_max_c, 2)
    names = {p.name for p in asset.points}
    return ComfortLimits(
        t_min_c=lo,
        t_max_c=hi,
        co2_max_ppm=c.co2_max_ppm,
        t_point=c.t_point if c.t_point in names else None,
        co2_point=c.co2_point if c.co2_point in names else None,
        t_hysteresis_k=c.t_hysteresis_k,
        co2_hysteresis_ppm=c.co2_hysteresis_ppm,
    )


def check(limits: ComfortLimits, t_c: float | None, co2_ppm: float | None) -> Veto | None:
    """The veto for these readings (None = the DR write may hold). Temperature is checked first."""
    if limits.t_point is not None:
        if t_c is None:
            return Veto("unreadable", f"comfort: no good reading of {limits.t_point}", None, co2_ppm)
        if t_c > limits.t_max_c:
            return Veto("comfort", f"comfort: zone {t_c:.1f} °C above band {limits.band_text}", t_c, co2_ppm)
        if t_c < limits.t_min_c:
            return Veto("comfort", f"comfort: zone {t_c:.1f} °C below band {limits.band_text}", t_c, co2_ppm)
    if limits.co2_point is not None:
        if co2_ppm is None:
            return Veto("unreadable", f"co2: no good reading of {limits.co2_point}", t_c, None)
        if co2_ppm >= limits.co2_max_ppm:
            return Veto("co2", f"co2: {co2_ppm:.0f} ppm ≥ {limits.co2_max_ppm:g}", t_c, co2_ppm)
    return None


def cleared(limits: ComfortLimits, t_c: float | None, co2_ppm: float | None) -> bool:
    """Whether a vetoed zone is back by the hysteresis margins (and readable), so it may take DR writes again."""
    if limits.t_point is not None:
        h = min(limits.t_hysteresis_k, (limits.t_max_c - limits.t_min_c) / 4)  # a narrow band still clears
        if t_c is None or not limits.t_min_c + h <= t_c <= limits.t_max_c - h:
            return False
    co2_back = co2_ppm is not None and co2_ppm <= limits.co2_max_ppm - limits.co2_hysteresis_ppm
    return limits.co2_point is None or co2_back
