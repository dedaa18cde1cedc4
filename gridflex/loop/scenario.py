"""The closed-loop scenario, computed before anything runs: fleet, placement, no-control twin, threshold.

Pure (no sockets): the demo and the end-to-end tests both start from a `LoopScenario`, so
the numbers they compare against (the no-control grid truth and the constructed
congestion threshold) come from one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from cloud_controller import Region
from gridflex.loop.grid_truth import GridTruth, TruthInterval, congestion_threshold_kw
from gridflex.loop.reference_run import ReferenceRun, demo_specs, run_reference
from simulators.fleet import SiteSpec

__all__ = ["LoopScenario", "LoopSettings", "build_scenario", "place_sites"]


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
    #: Share of the no-control intervals the constructed threshold leaves overloaded.
    overload_share: float = 0.2
    #: The controller aims this much below the threshold (forecast error, 15-min setpoints).
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

    def __post_init__(self) -> None:
        if self.day.tzinfo is None:
            raise ValueError("day must be timezone-aware (UTC)")
        if not 0 <= self.start_h < self.end_h <= 48:
            raise ValueError("need 0 <= start_h < end_h <= 48")
        if not 0 < self.overload_share < 1:
            raise ValueError("overload_share must be in (0, 1)")
        if self.period_s < 60:
            raise ValueError("period_s must be >= 60")

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
    threshold_kw: float
    #: Grid-truth import minus the sum of site powers at the no-control peak (losses, no-load).
    losses_kw: float

    @property
    def controller_limit_kw(self) -> float:
        """The HV/MV limit the controller plans against: threshold - losses - safety margin."""
        return (self.threshold_kw - self.losses_kw) * (1.0 - self.settings.safety_pct / 100.0)


def place_sites(region: Region, sites: list[str], *, seed: int) -> dict[str, int]:
    """Each site on a distinct household of the region, spread over every station (seeded)."""
    if len(sites) > region.n_sites:
        raise ValueError(f"{len(sites)} sites but the region has {region.n_sites} households")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(region.n_sites, size=len(sites), replace=False).tolist())
    return dict(zip(sites, (int(c) for c in chosen), strict=True))


def build_scenario(settings: LoopSettings, region: Region) -> LoopScenario:
    """Fleet, placement, no-control twin today and yesterday, grid truth and threshold."""
    specs = demo_specs(settings.n_sites, seed=settings.seed)
    household = place_sites(region, [s.site for s in specs], seed=settings.seed)
    truth = GridTruth(region, household)
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
    times, blocks = today.interval_means_kw(settings.period_s)
    series = {site: blocks[:, j].tolist() for j, site in enumerate(today.sites)}
    intervals = truth.evaluate_series(series)
    root = [t.root_p_kw for t in intervals]
    # The threshold leaves `overload_share` of the no-control intervals above it: a
    # congestion episode of a known size that the fleet's flexibility can relieve.
    cut = float(np.quantile(root, 1.0 - settings.overload_share))
    threshold = congestion_threshold_kw(root, overload_kw=max(root) - cut)
    peak = int(np.argmax(root))
    losses = root[peak] - float(blocks[peak].sum())
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
    )
