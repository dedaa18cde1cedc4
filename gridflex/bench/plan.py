"""The live planner's time per control period for a fleet of battery sites (100, 1,000, ...).

Each site gets its own load level and phase: a fleet of identical sites makes a
degenerate LP (every battery interchangeable) that no real fleet is, and its first solve
took minutes; the figure would measure the degeneracy, not the planner.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from protocols.assets import BATTERY, METER, Points

if TYPE_CHECKING:
    from cloud_controller import MpcPlanner, SiteSnapshot

__all__ = ["T0", "FleetPlanner", "PlanTimeFigures", "fleet_planner", "plan_time_figures"]

T0 = datetime(2030, 1, 15, 12, tzinfo=UTC)


@dataclass(frozen=True)
class PlanTimeFigures:
    """What one fleet planner costs: build, first and warm plan times, memory."""

    n_sites: int
    by_area: bool
    build_s: float  # planner construction (region model, per-site forecasts)
    first_ms: float  # first plan (the cold HiGHS solve)
    warm_ms: float  # median of the following plans
    solve_ms: float  # the planner's own figure of the last plan, forecasts included
    rss_mb: float  # peak of this process


class _SineHistory:
    """Meter history of every site: a sine of its own level and phase, 15-min steps."""

    def __init__(self, scale: dict[str, float], phase: dict[str, float]) -> None:
        self.scale, self.phase = scale, phase

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        if asset != METER:
            return []
        return [
            (start + timedelta(minutes=15 * k), self.scale[site] * (1.0 + np.sin(k / 8 + self.phase[site])))
            for k in range(int((end - start).total_seconds() // 900))
        ]


@dataclass(frozen=True)
class FleetPlanner:
    """A built planner with its sites' snapshots and history, and how long the build took."""

    planner: MpcPlanner
    snapshots: dict[str, SiteSnapshot]
    history: _SineHistory
    by_area: bool
    build_s: float


def fleet_planner(n_sites: int, *, by_area: bool = False) -> FleetPlanner:
    """The planner for `n_sites` battery sites on the Schutterwald region.

    More sites than households: several sites share a household's bus; a registry check
    that refuses that raises here (the caller decides whether that is a finding).
    """
    from cloud_controller import AssetRef, SiteRef, SiteSnapshot, build_planner, build_schutterwald_region

    region = build_schutterwald_region()
    rng = np.random.default_rng(0)
    households = rng.choice(region.n_sites, size=min(n_sites, region.n_sites), replace=False)
    sites = [
        SiteRef(
            f"b{i:04d}",
            int(households[i % len(households)]),
            (AssetRef(METER, "meter"), AssetRef(BATTERY, "battery", 5.0, 13.5)),
        )
        for i in range(n_sites)
    ]
    scale = {s.site: float(v) for s, v in zip(sites, rng.uniform(0.5, 1.5, n_sites), strict=True)}
    phase = {s.site: float(v) for s, v in zip(sites, rng.uniform(0.0, 2 * np.pi, n_sites), strict=True)}
    t0 = time.perf_counter()
    planner = build_planner(
        region,
        sites,
        period_s=900,
        horizon_steps=96,
        margin_s=120,
        station_limit_kw=0.4 * n_sites,
        by_area=by_area,
    )
    build_s = time.perf_counter() - t0
    snapshots = {
        s.site: SiteSnapshot(site=s.site, mode="online", points={str(Points.BATTERY_SOC_PCT): 50.0})
        for s in sites
    }
    return FleetPlanner(planner, snapshots, _SineHistory(scale, phase), by_area, build_s)


def plan_time_figures(fleet: FleetPlanner, *, plans: int = 4) -> PlanTimeFigures:
    """Plan `plans` consecutive periods with `fleet`'s planner; time each."""
    times = []
    solve_ms = float("nan")
    for k in range(plans):
        t = time.perf_counter()
        plan = fleet.planner.plan(T0 + timedelta(minutes=15 * k), fleet.snapshots, fleet.history)
        times.append(time.perf_counter() - t)
        solve_ms = plan.solve_ms
    return PlanTimeFigures(
        n_sites=len(fleet.snapshots),
        by_area=fleet.by_area,
        build_s=fleet.build_s,
        first_ms=times[0] * 1000,
        warm_ms=float(np.median(times[1:])) * 1000 if len(times) > 1 else float("nan"),
        solve_ms=solve_ms,
        rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
