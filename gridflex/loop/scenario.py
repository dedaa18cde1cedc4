"""The closed-loop scenario, computed before anything runs: fleet, placement, background, no-control twin.

Pure (no sockets): the demo and the end-to-end tests both start from a `LoopScenario`, so
the numbers they compare against (the no-control grid truth and the congested element's
rating) come from one place.

Two kinds of congestion (`LoopSettings.congestion`):

- `"station"` (the default): physical. The fleet sits below one MV/LV transformer
  (`congested_station`, T_idx_77, 0.40 MVA, 123 households), every other household of the
  region carries a background profile (`gridflex.loop.background`), and the element's
  own rating from the net is the limit the planner holds (its limits from the net,
  docs/grid.md "Limits"). No HV/MV threshold.
- `"threshold"`: the constructed one. The fleet spread over the region, households outside
  it at 0, and an HV/MV threshold set so that `overload_share` of the no-control intervals
  exceed it (the end-to-end relief tests, which the controller can meet without seeing
  the rest of the grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

import numpy as np

from cloud_controller import Region
from gridflex.loop.background import BackgroundLoad, BackgroundSettings, background_load
from gridflex.loop.grid_truth import GridTruth, TruthInterval, congestion_threshold_kw
from gridflex.loop.reference_run import ReferenceRun, demo_specs, run_reference
from simulators.fleet import SiteSpec

__all__ = [
    "CONGESTION_KINDS",
    "HISTORY_SEED_OFFSET",
    "MAX_HISTORY_DAYS",
    "LoopScenario",
    "LoopSettings",
    "build_scenario",
    "place_sites",
]

#: `LoopSettings.congestion`: the congested element's own rating, or the constructed HV/MV threshold.
CONGESTION_KINDS = ("station", "threshold")
#: The grid truth's power factor of every load (fleet and background).
COS_PHI = 0.97
#: The imported history's days before yesterday are drawn with `seed` + this (see `LoopSettings`).
HISTORY_SEED_OFFSET = 1_000
MAX_HISTORY_DAYS = 14


@dataclass(frozen=True)
class LoopSettings:
    """What the closed loop simulates. Times are simulated; `speed` is simulated s per wall s."""

    n_sites: int = 20
    seed: int = 1
    day: datetime = datetime(2030, 1, 15, tzinfo=UTC)  # a winter weekday
    start_h: float = 12.0
    end_h: float = 24.0
    speed: float = 240.0
    period_s: float = 900.0
    horizon_steps: int = 48
    margin_s: float = 300.0
    #: "station": a real MV/LV transformer overloaded by its rating; "threshold": the
    #: constructed HV/MV threshold (see the module docstring).
    congestion: str = "station"
    #: The MV/LV transformer (by name) the fleet sits below and protects ("station").
    congested_station: str = "T_idx_77"
    #: What the non-fleet households draw ("station"; the threshold kind has none).
    background: BackgroundSettings = field(default_factory=BackgroundSettings)
    #: Share of the no-control intervals the constructed threshold leaves overloaded.
    overload_share: float = 0.2
    #: The controller aims this much below the constructed threshold (forecast error, 15-min
    #: setpoints); with a physical congestion the planner's own chance margin applies.
    safety_pct: float = 8.0
    #: How the controller commands batteries (see cloud_controller.live.planner.MpcPlanner).
    battery_control: str = "setpoint"
    #: Standard deviations of the fleet forecast the controller plans above the median.
    forecast_z: float = 1.2816
    #: Scenarios of the controller's background congestion forecast after each plan (0 = off:
    #: the tests' accelerated loops; `gridflex demo` turns it on for the dashboard).
    congestion_scenarios: int = 0
    poll_s: float = 120.0
    physics_step_s: float = 30.0
    bacnet: bool = True
    #: Profile window from `profile_start`; the TestBed and the twin must use the same one
    #: (the profile generators draw their noise over the whole window).
    profile_days: float = 3.0
    #: Days of history imported before the demo window (meters and buildings), as a utility
    #: imports meter data on commissioning. 1: yesterday only; from 3 on, each station's
    #: background forecast has a mean and a σ per time of day (`forecast/multi_day.py`).
    #: Days before yesterday are other days of the same buildings and households, drawn
    #: with `seed + HISTORY_SEED_OFFSET` (so today's draws do not depend on this setting).
    history_days: int = 1

    def __post_init__(self) -> None:
        if self.day.tzinfo is None:
            raise ValueError("day must be timezone-aware (UTC)")
        if not 0 <= self.start_h < self.end_h <= 48:
            raise ValueError("need 0 <= start_h < end_h <= 48")
        if not 0 < self.overload_share < 1:
            raise ValueError("overload_share must be in (0, 1)")
        if self.period_s < 60:
            raise ValueError("period_s must be >= 60")
        if self.congestion not in CONGESTION_KINDS:
            raise ValueError(f"congestion must be one of {CONGESTION_KINDS}, got {self.congestion!r}")
        if not 0 <= self.safety_pct < 100:
            raise ValueError("safety_pct must be in [0, 100)")
        if not 1 <= self.history_days <= MAX_HISTORY_DAYS:
            raise ValueError(f"history_days must be in [1, {MAX_HISTORY_DAYS}], got {self.history_days}")

    @property
    def start(self) -> datetime:
        """Start of the demo window (`day` + `start_h`)."""
        return self.day + timedelta(hours=self.start_h)

    @property
    def end(self) -> datetime:
        """End of the demo window (`day` + `end_h`)."""
        return self.day + timedelta(hours=self.end_h)

    @property
    def profile_start(self) -> datetime:
        """Profiles begin a day early so that 'yesterday' (the imported history) exists."""
        return self.day - timedelta(days=1)

    @property
    def intervals(self) -> int:
        """Whole control periods in the demo window."""
        return int((self.end - self.start).total_seconds() // self.period_s)


@dataclass(frozen=True)
class LoopScenario:
    """A built demo scenario: fleet, region, grid truth, and the no-control runs it is judged against."""

    settings: LoopSettings
    specs: tuple[SiteSpec, ...]
    region: Region
    household_of_site: dict[str, int]
    truth: GridTruth
    no_control: ReferenceRun  # today, the owners' own behaviour
    yesterday: ReferenceRun  # imported as history
    no_control_times: list[datetime]
    no_control_truth: list[TruthInterval]
    #: The constructed HV/MV threshold ("threshold"); None for a physical congestion.
    threshold_kw: float | None
    #: Grid-truth import minus the sum of site powers at the no-control peak (losses, no-load).
    losses_kw: float
    #: The congested MV/LV transformer ("station"; None with the threshold) and its rating.
    element: str | None = None
    element_rating_kva: float = 0.0
    background: BackgroundLoad | None = None
    #: The imported days before yesterday (`LoopSettings.history_days` > 1): the buildings'
    #: physics and the background of those days; None with yesterday only.
    older: ReferenceRun | None = None
    older_background: BackgroundLoad | None = None

    @property
    def controller_limit_kw(self) -> float | None:
        """The HV/MV limit the controller plans against: threshold - losses - safety margin.

        None for a physical congestion: the controller plans against the element's rating.
        """
        if self.threshold_kw is None:
            return None
        return (self.threshold_kw - self.losses_kw) * (1.0 - self.settings.safety_pct / 100.0)

    @cached_property
    def yesterday_meters(self) -> tuple[list[datetime], list[TruthInterval]]:
        """Yesterday's grid truth per interval (incl. the background): what the substation meters read.

        Imported as the meters' history (`prior_history.prior_from_meters`); computed on first
        use (an AC power flow per interval of the day: seconds).
        """
        times, blocks = self.yesterday.interval_means_kw(self.settings.period_s)
        series = {site: blocks[:, j].tolist() for j, site in enumerate(self.yesterday.sites)}
        return times, self.truth.evaluate_series(series, starts=times)

    @cached_property
    def older_meters(self) -> tuple[list[datetime], list[TruthInterval]]:
        """The substation meters' readings on the days before yesterday (empty without them).

        An AC power flow per interval, as `yesterday_meters`, on the older days' background.
        """
        if self.older is None:
            return [], []
        truth = GridTruth(
            self.region, self.household_of_site, cos_phi=COS_PHI, background=self.older_background
        )
        times, blocks = self.older.interval_means_kw(self.settings.period_s)
        series = {site: blocks[:, j].tolist() for j, site in enumerate(self.older.sites)}
        return times, truth.evaluate_series(series, starts=times)

    def element_loading_pct(self, truth: list[TruthInterval] | None = None) -> list[float]:
        """The congested element's loading per interval (the no-control truth by default)."""
        if self.element is None:
            raise ValueError("the threshold scenario has no congested element")
        return [t.station_loading_pct[self.element] for t in (truth or self.no_control_truth)]


def place_sites(region: Region, sites: list[str], *, seed: int, station: str | None = None) -> dict[str, int]:
    """Each site on a distinct household of the region (seeded): spread over every station, or below `station`."""
    if station is None:
        pool = np.arange(region.n_sites)
    else:
        if station not in region.station_branch:
            raise ValueError(f"station {station!r} not in the region ({', '.join(region.station_branch)})")
        pool = np.array([k for k, s in enumerate(region.site_station) if s == station])
    if len(sites) > len(pool):
        where = f"below {station}" if station else "in the region"
        raise ValueError(f"{len(sites)} sites but {len(pool)} households {where}")
    rng = np.random.default_rng(seed)
    chosen = sorted(int(pool[c]) for c in rng.choice(len(pool), size=len(sites), replace=False))
    return dict(zip(sites, chosen, strict=True))


def build_scenario(settings: LoopSettings, region: Region) -> LoopScenario:
    """Fleet, placement, background, no-control twin today and yesterday, grid truth; threshold or element."""
    specs = demo_specs(settings.n_sites, seed=settings.seed)
    physical = settings.congestion == "station"
    station = settings.congested_station if physical else None
    household = place_sites(region, [s.site for s in specs], seed=settings.seed, station=station)
    background = (
        background_load(
            region.n_sites,
            list(household.values()),
            start=settings.profile_start,
            days=settings.profile_days,
            period_s=settings.period_s,
            seed=settings.seed,
            settings=settings.background,
        )
        if physical
        else None
    )
    truth = GridTruth(region, household, cos_phi=COS_PHI, background=background)
    common = {
        "profile_start": settings.profile_start,
        "seed": settings.seed,
        "dt_s": 60.0,
        "profile_days": settings.profile_days,
    }
    today = run_reference(specs, t_from=settings.start, t_to=settings.end, **common)  # type: ignore[arg-type]
    yesterday = run_reference(
        specs,
        t_from=settings.start - timedelta(days=1),
        t_to=settings.start,
        **common,  # type: ignore[arg-type]
    )
    older, older_background = _older_history(settings, region, specs, household, physical=physical)
    times, blocks = today.interval_means_kw(settings.period_s)
    series = {site: blocks[:, j].tolist() for j, site in enumerate(today.sites)}
    intervals = truth.evaluate_series(series, starts=times)
    root = [t.root_p_kw for t in intervals]
    threshold: float | None = None
    if not physical:
        # The threshold leaves `overload_share` of the no-control intervals above it: a
        # congestion episode of a known size that the fleet's flexibility can relieve.
        cut = float(np.quantile(root, 1.0 - settings.overload_share))
        threshold = congestion_threshold_kw(root, overload_kw=max(root) - cut)
    peak = int(np.argmax(root))
    losses = root[peak] - float(blocks[peak].sum())
    if physical:
        losses -= float(background.total_p_kw()[background.row(times[peak])]) if background else 0.0
    element = settings.congested_station if physical else None
    rating_kva = 0.0
    if element is not None:
        trafo = region.net.trafo
        row = trafo[trafo.name == element].iloc[0]
        rating_kva = float(row.sn_mva) * float(row.get("parallel", 1) or 1) * 1000.0
    return LoopScenario(
        settings=settings,
        specs=specs,
        region=region,
        household_of_site=household,
        truth=truth,
        no_control=today,
        yesterday=yesterday,
        no_control_times=times,
        no_control_truth=intervals,
        threshold_kw=threshold,
        losses_kw=losses,
        element=element,
        element_rating_kva=rating_kva,
        background=background,
        older=older,
        older_background=older_background,
    )


def _older_history(
    settings: LoopSettings,
    region: Region,
    specs: tuple[SiteSpec, ...],
    household: dict[str, int],
    *,
    physical: bool,
) -> tuple[ReferenceRun | None, BackgroundLoad | None]:
    """The imported days before yesterday: the same buildings and households on other days.

    From `history_days` days before the demo window's start to a day before it (where
    `yesterday` begins), drawn with `seed + HISTORY_SEED_OFFSET`.
    """
    n_older = settings.history_days - 1
    if n_older < 1:
        return None, None
    seed = settings.seed + HISTORY_SEED_OFFSET
    profile_start = settings.day - timedelta(days=settings.history_days)
    days = float(settings.history_days + 1)
    run = run_reference(
        specs,
        profile_start=profile_start,
        seed=seed,
        t_from=settings.start - timedelta(days=settings.history_days),
        t_to=settings.start - timedelta(days=1),
        dt_s=60.0,
        profile_days=days,
    )
    bg = (
        background_load(
            region.n_sites,
            list(household.values()),
            start=profile_start,
            days=days,
            period_s=settings.period_s,
            seed=settings.seed,
            settings=settings.background,
            noise_seed=seed,
        )
        if physical
        else None
    )
    return run, bg
