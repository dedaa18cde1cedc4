"""The fleet guard as the live planner sets it up: when one exists, and the station elements it watches.

Why a module of its own: which limits the guard keeps (the HV/MV limit of the whole fleet, each
MV/LV station with the fleet's sites below it, its rating or a DSO envelope in force now) is read
from the grid's limits and the planning network, not from the LP; the planner renews the
elements at every plan and their measured backgrounds between plans (live/stations.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from cloud_controller.grid.limits import GridLimits
from cloud_controller.live.guard import FleetGuard, GuardElement
from cloud_controller.live.types import SiteRef

__all__ = ["guard_needed", "new_guard", "station_elements"]


def new_guard(
    sites: Sequence[SiteRef],
    *,
    limit_kw: float,
    period_s: float,
    battery_control: str,
    fleet_name: str,
    market_only_sites: Collection[str],
) -> FleetGuard:
    """A guard over the planner's sites; the market-only sites are excluded from the start (before any plan)."""
    guard = FleetGuard(
        sites, limit_kw=limit_kw, period_s=period_s, battery_control=battery_control, fleet_name=fleet_name
    )
    guard.excluded = set(market_only_sites)
    return guard


def guard_needed(limits: GridLimits, *, has_meters: bool) -> bool:
    """A guard exists once any limit can bind beyond the net's own: a config override, a DSO envelope, a meter."""
    return bool(limits.envelopes) or any(b.source != "net" for b in limits.branches.values()) or has_meters


def station_elements(
    limits: GridLimits, station_sites: Mapping[str, frozenset[str]], now: datetime, period_s: float
) -> tuple[list[GuardElement], dict[str, str]]:
    """Each MV/LV station the limits know, with the fleet's sites below it and its limit over this period.

    Also station "<table>:<index>" → element name (what the stations' backgrounds are keyed by).
    """
    end = now + timedelta(seconds=period_s)
    elements = [
        GuardElement(limits.name_of_ref(ref), fleet, limits.rating_kw(ref, now, end))
        for ref, fleet in station_sites.items()
        if limits.name_of_ref(ref) in limits.branches
    ]
    return elements, {ref: limits.name_of_ref(ref) for ref in station_sites}
