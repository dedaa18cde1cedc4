"""The fleet guard's data: what a step decided, the elements it watches, the energy and devices it tracks.

Split from guard.py (the loop itself) so that the planner, the stations and the tests name these
without the loop's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["FlexibleDevice", "GuardChanges", "GuardElement", "IntervalEnergy"]


@dataclass
class GuardChanges:
    """What a step decided: caps added/removed, and batteries with a new value."""

    capped: set[tuple[str, str]] = field(default_factory=set)
    released: set[tuple[str, str]] = field(default_factory=set)
    battery_kw: dict[str, float] = field(default_factory=dict)  # site -> new setpoint or grid target
    over: dict[str, float] = field(default_factory=dict)  # element name -> projected excess, kW
    dr_overrides: set[str] = field(default_factory=set)  # reserved batteries moved off their DR setpoint

    def __bool__(self) -> bool:
        return bool(self.capped or self.released or self.battery_kw)


@dataclass(frozen=True)
class GuardElement:
    """A grid element the guard keeps under its limit: its name, the fleet's sites below it, its limit."""

    name: str
    sites: frozenset[str]
    limit_kw: float
    background_kw: float = 0.0  # load below it outside the fleet, measured (station meter); 0 without


@dataclass
class IntervalEnergy:
    """Energy one element's sites drew since the interval began (held last value between measurements)."""

    interval_start: datetime | None = None
    energy_kwh: float = 0.0
    last: tuple[datetime, float] | None = None

    def integrate(self, now: datetime, kw: float, period_s: float) -> None:
        """Add the held last power up to `now` (restarting at each interval's start), then hold `kw`."""
        start = datetime.fromtimestamp(now.timestamp() - now.timestamp() % period_s, tz=now.tzinfo)
        if self.interval_start != start:
            self.interval_start, self.energy_kwh = start, 0.0
            if self.last is not None:
                self.last = (start, self.last[1])
        if self.last is not None:
            dt_h = max(0.0, (now - self.last[0]).total_seconds()) / 3600.0
            self.energy_kwh += self.last[1] * dt_h
        self.last = (now, kw)


@dataclass
class FlexibleDevice:
    """An EV charger or heat pump the guard may cap: its rating and its guaranteed minimum (§14a EnWG)."""

    site: str
    asset: str
    kind: str  # "ev" or "hp"
    nominal_kw: float
    floor_kw: float

    @property
    def key(self) -> tuple[str, str]:
        """(site, asset), as the guard's caps are keyed."""
        return (self.site, self.asset)
