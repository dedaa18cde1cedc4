"""The region's other households: seeded load profiles for every household that is not a simulated building.

Why: a transformer is loaded by everyone below it, not only by the buildings GridFlex
controls. The demo's grid truth and its no-control evaluation give every non-fleet
household of the region a load from the `profiles` package, so that a station's physical
rating (not a constructed threshold) is what the fleet's flexibility must protect:

- household load: BDEW H0 (`household_load_kw`), `annual_kwh` drawn per household;
- a stated share with a heat pump that follows its heat demand directly (no tank, no
  control): `heat_demand_kw / hp_cop(ambient)`, capped at `hp_kw`;
- a stated share with an EV charging uncontrolled at `ev_kw` on arrival (`ev_demand`);
- Q = P · tan(arccos(cos_phi)) (inductive, load-positive).

The weather is the fleet's (`ambient_temperature_c` with the scenario's seed), so the
heat pumps of both follow the same cold evening. Pure numpy: one (T, H) array per
quantity at the control period; the same object serves the control and the no-control
runs, so both see the same background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from profiles import ambient_temperature_c, ev_demand, heat_demand_kw, household_load_kw, hp_cop

__all__ = ["BackgroundLoad", "BackgroundSettings", "background_load"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BackgroundSettings:
    """What the non-fleet households are assumed to own and draw (see the module docstring)."""

    #: Share of the households with a heat pump (an electrified 2030 winter).
    hp_share: float = 0.8
    #: Share of the households with an EV charging at home, uncontrolled.
    ev_share: float = 0.7
    ev_kw: float = 11.0
    hp_kw: float = 6.0
    annual_kwh: tuple[float, float] = (3000.0, 6000.0)  # household electricity, uniform
    #: Space heat + hot water, uniform: the region's older single-family houses (~120–170 m²
    #: at 100–130 kWh/m²a), not the fleet's newer ones (8,000–14,000 kWh/a).
    heat_annual_kwh: tuple[float, float] = (12000.0, 22000.0)
    cos_phi: float = 0.97

    def __post_init__(self) -> None:
        for name in ("hp_share", "ev_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if not 0.0 < self.cos_phi <= 1.0:
            raise ValueError("cos_phi must be in (0, 1]")
        if self.ev_kw <= 0 or self.hp_kw <= 0:
            raise ValueError("ev_kw and hp_kw must be > 0")
        for name in ("annual_kwh", "heat_annual_kwh"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high")


@dataclass(frozen=True)
class BackgroundLoad:
    """Per interval (rows, from `start` every `period_s`) and household (columns): P and Q."""

    start: datetime
    period_s: float
    households: npt.NDArray[np.int64]  # region household indices, ascending
    p_kw: FloatArray  # (T, H), load-positive
    q_kvar: FloatArray  # (T, H)
    has_hp: npt.NDArray[np.bool_]  # (H,)
    has_ev: npt.NDArray[np.bool_]  # (H,)

    @property
    def intervals(self) -> int:
        """Number of intervals (rows)."""
        return int(self.p_kw.shape[0])

    def row(self, at: datetime) -> int:
        """The interval that contains `at`; outside the window is an error (never a silent 0)."""
        k = int((at - self.start).total_seconds() // self.period_s)
        if not 0 <= k < self.intervals:
            end = self.start.timestamp() + self.intervals * self.period_s
            raise ValueError(
                f"background load: {at.isoformat()} outside its window "
                f"{self.start.isoformat()} .. {datetime.fromtimestamp(end, tz=UTC).isoformat()}"
            )
        return k

    def total_p_kw(self, households: Sequence[int] | None = None) -> FloatArray:
        """(T,) summed P of all households, or of those of `households` that carry background."""
        if households is None:
            return np.asarray(self.p_kw.sum(axis=1), dtype=float)
        mask = np.isin(self.households, np.asarray(households, dtype=np.int64))
        return np.asarray(self.p_kw[:, mask].sum(axis=1), dtype=float)


def background_load(
    n_households: int,
    fleet_households: Sequence[int],
    *,
    start: datetime,
    days: float,
    period_s: float,
    seed: int,
    settings: BackgroundSettings | None = None,
    noise_seed: int | None = None,
) -> BackgroundLoad:
    """Profiles for every household in `range(n_households)` not in `fleet_households` (seeded).

    Seeds are offset from the fleet's (`seed` + 11, …) so the background households are not
    copies of the fleet's buildings; the weather uses `seed` itself, as the fleet does.
    `noise_seed` (default `seed`) draws the days — load noise, heat demand, EV arrivals and
    the weather — while `seed` alone draws who the households are (annual energy, heat
    pump, EV): other days of the same households (the demo's imported history).
    """
    s = settings or BackgroundSettings()
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC)")
    if period_s <= 0 or days <= 0:
        raise ValueError("period_s and days must be > 0")
    fleet = set(int(h) for h in fleet_households)
    if n_households < 1:
        raise ValueError("n_households must be >= 1")
    if any(not 0 <= h < n_households for h in fleet):
        raise ValueError(f"fleet households must be in [0, {n_households})")
    households = np.array([h for h in range(n_households) if h not in fleet], dtype=np.int64)
    # Every household of the region is drawn, then the fleet's columns dropped: a household's
    # background does not depend on where the fleet is placed (nor on its size).
    t0 = pd.Timestamp(start).tz_convert(UTC)
    index = pd.date_range(t0, periods=max(2, round(days * 86400.0 / period_s)), freq=f"{round(period_s)}s")
    rng = np.random.default_rng(seed + 11)
    annual = rng.uniform(*s.annual_kwh, size=n_households)
    heat_annual = rng.uniform(*s.heat_annual_kwh, size=n_households)
    has_hp = rng.random(n_households) < s.hp_share
    has_ev = rng.random(n_households) < s.ev_share
    days_seed = seed if noise_seed is None else noise_seed
    p = household_load_kw(index, annual_kwh=annual, seed=days_seed + 13)
    t_amb = ambient_temperature_c(index, seed=days_seed)
    if has_hp.any():
        heat = heat_demand_kw(index, ambient_t_c=t_amb, annual_kwh=heat_annual[has_hp], seed=days_seed + 17)
        p[:, has_hp] += np.minimum(heat / hp_cop(t_amb)[:, None], s.hp_kw)
    if has_ev.any():
        ev = ev_demand(index, n_ev=int(has_ev.sum()), seed=days_seed + 19, p_max_kw=s.ev_kw)
        p[:, has_ev] += ev.uncontrolled_kw
    p, has_hp, has_ev = p[:, households], has_hp[households], has_ev[households]
    q = p * float(np.tan(np.arccos(s.cos_phi)))
    return BackgroundLoad(
        start=t0.to_pydatetime(),
        period_s=float(period_s),
        households=households,
        p_kw=np.ascontiguousarray(p, dtype=float),
        q_kvar=np.ascontiguousarray(q, dtype=float),
        has_hp=has_hp,
        has_ev=has_ev,
    )
