"""The planner's view of its MV/LV stations' meters: which meter is whose, and each station's background.

The service hands the planner the grid meters' snapshots (`observe`, before every plan and
guard step; `registry.grid_meters` says which station each measures). From them and the
fleet's snapshots and history this makes each metered station's background now
(`measured`, for the fleet guard) and over the horizon (`forecast`, for the LP and the
forecasts), with `station_load.py` doing the arithmetic. Stations without a registered
meter have no background here: the planner holds them against the fleet alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np
import numpy.typing as npt

from cloud_controller.grid import Region
from cloud_controller.grid.radial import RadialGrid
from cloud_controller.live.guard import GuardElement
from cloud_controller.live.station_load import (
    BackgroundMeasurement,
    StationBackground,
    forecast_background,
    measure_background,
    read_background_rows,
    smoothed,
)
from cloud_controller.live.station_plan import (
    StationInputs,
    household_background,
    p_rating_kw,
    station_inputs,
)
from cloud_controller.live.types import GridMeterRef, History, SiteRef, SiteSnapshot

__all__ = ["StationMeters"]

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]


class StationMeters:
    """Each station's meter, its fleet sites and its place in the planning network."""

    def __init__(
        self, region: Region, sites: Sequence[SiteRef], planning_branches: Sequence[str], *, period_s: float
    ) -> None:
        self.region = region
        self.period_s = period_s
        self.fleet_households = [s.region_site for s in sites]
        names = list(planning_branches)
        #: station -> its branch column in the planning network (its bus there is that branch's child)
        self.column: dict[str, int] = {}
        #: station -> "<table>:<index>" of its transformer (how the limits and the guard name it)
        self.ref: dict[str, str] = {}
        for station, k in region.station_branch.items():
            ref = region.grid.branch_names[k]
            self.ref[station] = ref
            if ref in names:
                self.column[station] = names.index(ref)
        self.fleet_sites: dict[str, tuple[str, ...]] = {
            st: tuple(s.site for s in sites if region.site_station[s.region_site] == st)
            for st in region.station_branch
        }
        self.meters: dict[str, str] = {}  # station -> meter site
        self.snapshots: Mapping[str, SiteSnapshot] = {}
        self.warned: set[str] = set()  # stations whose background warning was logged
        self._smooth: dict[str, tuple[datetime, float] | None] = {}  # the guard's background per station

    def observe(self, meters: Sequence[GridMeterRef], snapshots: Mapping[str, SiteSnapshot]) -> None:
        """The registered grid meters and their snapshots now (unknown stations are ignored)."""
        self.meters = {m.station: m.site for m in meters if m.station in self.region.station_branch}
        self.snapshots = snapshots

    def measured(
        self,
        now: datetime,
        sites: Mapping[str, SiteSnapshot],
        fallback_kw: Mapping[str, float] | None = None,
    ) -> dict[str, BackgroundMeasurement]:
        """Each metered station's background now (status says why where there is none)."""
        return {
            st: measure_background(
                st, self.snapshots.get(site), self.fleet_sites[st], sites, now, fallback_kw=fallback_kw
            )
            for st, site in self.meters.items()
        }

    def forecast(
        self,
        now: datetime,
        sites: Mapping[str, SiteSnapshot],
        history: History,
        fallback_kw: Mapping[str, float],
        *,
        period_s: float,
        horizon: int,
    ) -> dict[str, StationBackground]:
        """Each metered station's background over the horizon; warnings are logged once per station."""
        out: dict[str, StationBackground] = {}
        for st, m in self.measured(now, sites, fallback_kw).items():
            rows = read_background_rows(
                history, self.meters[st], self.fleet_sites[st], now, period_s=period_s
            )
            bg = forecast_background(m, rows, now, period_s=period_s, horizon=horizon)
            if bg.warning and st not in self.warned:
                log.warning("%s", bg.warning)
                self.warned.add(st)
            elif not bg.warning:
                self.warned.discard(st)
            out[st] = bg
        return out

    def plan_inputs(
        self,
        now: datetime,
        sites: Mapping[str, SiteSnapshot],
        history: History,
        fallback_kw: Mapping[str, float],
        rating_kw: FloatArray,
        grid: RadialGrid,
        *,
        z: float,
        horizon: int,
    ) -> tuple[dict[str, StationBackground], StationInputs]:
        """The backgrounds over the horizon and what they change in the planning LP on `grid`."""
        period_s = self.period_s
        backgrounds = self.forecast(now, sites, history, fallback_kw, period_s=period_s, horizon=horizon)
        bus = {st: int(grid.child[k]) for st, k in self.column.items()}
        return backgrounds, station_inputs(rating_kw, self.column, bus, grid.n_bus, backgrounds, z=z)

    def guard_elements(
        self,
        elements: Sequence[GuardElement],
        measured: Mapping[str, BackgroundMeasurement],
        name_of_ref: Mapping[str, str],
    ) -> list[GuardElement]:
        """The guard's station elements with each metered station's measured background and P limit.

        A station with a measured background is watched on its measured total (background,
        smoothed over the meter's samples (`station_load.smoothed`), + the fleet's sites), its
        limit its rating in active power at the meter's Q (`p_rating_kw`); the rest on the
        fleet's sum. The fleet's HV/MV element is not given the backgrounds: the station
        meters' samples lag the fleet's own, and on the threshold, where the fleet's
        flexibility is tight, the guard acted on the lag (docs/grid.md).
        """
        by_name: dict[str, BackgroundMeasurement] = {}
        for st, m in measured.items():  # smoothed: the meters are not sampled with the fleet's
            sm = self._smooth[st] = smoothed(self._smooth.get(st), m)
            name = name_of_ref.get(self.ref[st], self.ref[st])
            by_name[name] = replace(m, background_kw=None if sm is None else sm[1])
        out = []
        for el in elements:
            seen = by_name.get(el.name)
            if seen is None or seen.background_kw is None:
                out.append(el)
                continue
            limit = float(p_rating_kw(el.limit_kw, seen.q_kvar))
            out.append(replace(el, limit_kw=limit, background_kw=seen.background_kw))
        return out

    def households_kw(self, backgrounds: Mapping[str, StationBackground]) -> FloatArray | None:
        """(T, households) the non-fleet households' load from the backgrounds (None: no background)."""
        per = {st: bg.p50_kw for st, bg in backgrounds.items() if bg.method != "none"}
        if not per:
            return None
        out, shared = household_background(self.region.site_station, self.fleet_households, per)
        for st, n in shared.items():
            if n == 0:
                log.debug("station %s: background with no household outside the fleet, not placed", st)
        return out
