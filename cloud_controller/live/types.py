"""Data the live controller passes between ingest, forecast, planner and API (no I/O here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cloud_controller.grid.limits_check import LimitViolation
from protocols.messages import Command, FlexEnvelope

if TYPE_CHECKING:  # station_load imports this module
    from cloud_controller.live.station_load import StationBackground

__all__ = [
    "AssetKindName",
    "AssetRef",
    "CongestionInterval",
    "GridMeterRef",
    "History",
    "Plan",
    "Planner",
    "SiteLimitShortfall",
    "SiteMode",
    "SiteRef",
    "SiteSnapshot",
]

#: "degraded": the agent runs and obeys commands but its own storage is failing (it says why in an event).
SiteMode = Literal["online", "offline", "fallback", "degraded", "unknown"]
#: The values of `protocols.assets.Role` (a Literal, so the dataclasses type-check).
AssetKindName = Literal["meter", "pv", "battery", "ev", "hp", "hvac"]


@dataclass(frozen=True)
class AssetRef:
    """One asset of a registered site, with the ratings the planner needs."""

    asset: str  # asset id as in the site YAML (simulated sites: protocols.assets.STANDARD_ASSET_ID)
    kind: AssetKindName
    p_nominal_kw: float | None = None  # pv inverter kW, battery charge kW, ev max kW, hp max electric kW
    capacity_kwh: float | None = None  # battery kWh, hp thermal tank kWh
    p_guaranteed_min_kw: float = 0.0  # §14a EnWG floor for ev/hp (4.2 kW); never command below it


@dataclass(frozen=True)
class SiteRef:
    """A registered site: its id, the household of the region it stands for, and its assets."""

    site: str
    region_site: int  # index into Region.site_names: the household (bus) this site stands for
    assets: tuple[AssetRef, ...]
    #: The site's grid connection (registry `grid_connection`), None = not stated there; the
    #: agent's own `limit_*` telemetry and a DSO cap are merged with it (live/site_limits.py).
    import_max_kw: float | None = None
    export_max_kw: float | None = None

    def asset_of(self, kind: str) -> AssetRef | None:
        """The site's first asset of kind `kind`, or None if it has none."""
        return next((a for a in self.assets if a.kind == kind), None)


@dataclass(frozen=True)
class GridMeterRef:
    """A registered grid meter: a site that measures a grid element and is never load nor commanded.

    Its agent publishes telemetry like any site's (stored, watermarked, kept as a snapshot),
    but it is never load, never a site of the plan or the guard, nor counted in the fleet
    totals. Its readings are the station's total: the planner and the guard hold the station
    against them (live/stations.py), and the state estimate (`GET /grid/state`) takes them as
    the station's transformer flow and busbar voltage.
    """

    site: str  # e.g. protocols.assets.substation_site_id(station): "sub-<station>"
    station: str  # the MV/LV station (Region.station_branch key) whose transformer it measures


@dataclass
class SiteSnapshot:
    """What the service knows about one site now (maintained by ingest)."""

    site: str
    mode: SiteMode
    p_net_kw: float | None = None  # latest meter p_kw (load-positive)
    points: dict[str, float] = field(default_factory=dict)  # latest good value per "asset/point"
    flex: FlexEnvelope | None = None
    uncontrollable: bool = False  # failed/missing acks last period -> fixed at forecast
    last_seen: datetime | None = None
    #: Time of the newest telemetry sample (the poll it came from): what the fleet guard
    #: compares its commands against (state and ack messages move `last_seen`, not this).
    measured_at: datetime | None = None
    #: Registered assets that never reported (registry/check.py): the planner never commands them.
    missing_assets: frozenset[str] = frozenset()


class History(Protocol):
    """Read access to stored telemetry (the store implements it)."""

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """Stored samples of one point in [start, end), oldest first."""
        ...


@dataclass(frozen=True)
class CongestionInterval:
    """One forecast interval of an element: expected loading and probability of exceeding its limit."""

    start: datetime
    element: str  # "hvmv" or a station name
    loading_pct: float  # expected (deterministic) loading, % of the limit
    p_exceed: float  # probability of exceeding the limit (0..1) from sampled scenarios


@dataclass(frozen=True)
class SiteLimitShortfall:
    """Where a site's plan stays over its connection limit: its battery cannot cover it.

    One per site and side over the horizon: the limit, the largest excess, how many
    intervals and the first of them, and which limit binds (registry, telemetry, DSO cap).
    The edge holds the limit with the rest of its devices (EV/HP down to their §14a minimum).
    """

    site: str
    side: Literal["import", "export"]
    limit_kw: float
    max_excess_kw: float
    intervals: int
    first_start: datetime
    source: str


@dataclass
class Plan:
    """One period's plan: its commands, the forecast with and without control, and congestion ahead."""

    at: datetime
    period_s: float
    commands: list[Command]
    root_baseline_kw: list[float]  # forecast load at the constrained element without control
    root_planned_kw: list[float]  # the same with the plan
    station_limit_kw: float
    congestion: list[CongestionInterval]
    site_setpoints: dict[str, dict[str, float]]  # site -> asset -> planned kW for the first period
    solve_ms: float
    excluded_sites: list[str]  # offline / fallback / uncontrollable: fixed at forecast
    #: (T, n_sites) per-site median forecast and its standard deviation, registry order (for the
    #: probabilistic congestion forecast); None from planners that do not forecast per site.
    site_forecast_kw: Any = None
    site_sigma_kw: Any = None
    #: Elements the plan leaves over a limit in force (grid/limits.py), by name and interval:
    #: what the fleet's flexibility cannot relieve (GET /grid/limits shows them).
    violations: list[LimitViolation] = field(default_factory=list)
    #: Sites whose planned grid power stays over their connection limit (live/site_limits.py).
    site_limit_shortfalls: list[SiteLimitShortfall] = field(default_factory=list)
    #: Each metered MV/LV station's load outside the fleet (live/station_load.py), by station:
    #: measured now and forecast over the horizon; planned as a fixed load at its bus.
    station_background: dict[str, StationBackground] = field(default_factory=dict)


class Planner(Protocol):
    """What the service needs of a planner: a plan per period and corrections in between."""

    def plan(self, now: datetime, sites: Mapping[str, SiteSnapshot], history: History) -> Plan:
        """The plan for the period starting `now`, from the sites' snapshots and stored history."""
        ...

    def correct(self, now: datetime, sites: Mapping[str, SiteSnapshot]) -> list[Command]:
        """Corrections between plans from the latest measurements (may be none)."""
        ...
