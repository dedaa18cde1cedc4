"""Backtest the site baselines over a simulated year, the way the planner calls them.

Each site's history is its 2030 net load without control (household load + EV charging
+ heat pump making heat as needed − rooftop PV), from the study's seeded population and
`profiles` generators (`cloud_controller.study`), so the backtest sees the same
households as `gridflex study`. The batteries are left out: the planner forecasts the
meter minus the battery, which is this net load.

At every forecast origin (every `origin_every_steps` periods of the scored days) the
backtest does what `MpcPlanner.forecast` does: it hands `seasonal_naive_smoothing` the
last two days of the site's 15-min history and forecasts `horizon_steps` periods from the
period that starts now. It scores that (`baseline`), the same forecast blended with the
last measured period as the planner blends its latest snapshot (`planner`), and three
point references: the last period held (`persistence_last`), the same period yesterday
(`persistence_day`, the headline reference) and the same period last week
(`persistence_week`).
"""

from __future__ import annotations

import dataclasses
import functools
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cloud_controller.forecast.baseline import DAY_S, seasonal_naive_smoothing
from cloud_controller.forecast.quality import NOMINAL_COVERAGE, StepScores, default_buckets, skills

if TYPE_CHECKING:
    from cloud_controller.study.population import Population

__all__ = [
    "FORECASTS",
    "REFERENCES",
    "REGION_HOUSEHOLDS",
    "BacktestConfig",
    "BacktestResult",
    "region_sample",
    "run_backtest",
    "scored_days",
    "synthetic_net_load",
]

FloatArray = npt.NDArray[np.float64]
#: households of the study's 319-household region (the population is drawn for all of them)
REGION_HOUSEHOLDS = 319
#: what is scored: the baseline as the planner receives it, and as it plans on it
FORECASTS = ("baseline", "planner")
#: point references, the first the headline one
REFERENCES = ("persistence_day", "persistence_week", "persistence_last")
#: the days of history a forecast needs before the first origin (last week's value)
WARMUP_DAYS = 7
#: the planner's MEASUREMENT_FADE_H: the last measurement rules now and fades over this (h);
#: tests/unit/forecast/test_quality_backtest.py checks they agree
PLANNER_MEASUREMENT_FADE_H = 1.0


@dataclass(frozen=True)
class BacktestConfig:
    """What to backtest: how many sites, which days, how often a forecast is made."""

    sites: int = 10
    days: int = 14  # scored days, spread evenly over the year; 0 = every day that can be scored
    seed: int = 2030  # the study's default seed (population and profiles)
    year: int = 2030
    period_s: float = 900.0  # the control period (cloud.yaml control.period_s)
    horizon_steps: int = 96  # the planner's default horizon (control.horizon_steps), 24 h
    origin_every_steps: int = 4  # a forecast every hour; 1 = every period, as the planner does
    fade_h: float | None = (
        None  # a what-if: the baseline's level fade (h); None = its default, as the planner
    )

    def __post_init__(self) -> None:
        if not 1 <= self.sites <= REGION_HOUSEHOLDS:
            raise ValueError(f"sites must be 1..{REGION_HOUSEHOLDS}, got {self.sites}")
        if self.days < 0:
            raise ValueError(f"days must be >= 0 (0 = the whole year), got {self.days}")
        if self.period_s != 900.0:
            raise ValueError("the study's profiles are 15-min: period_s must be 900")
        if not 1 <= self.horizon_steps <= 96:
            raise ValueError(f"horizon_steps must be 1..96 (a day), got {self.horizon_steps}")
        if not 1 <= self.origin_every_steps <= 96:
            raise ValueError(f"origin_every_steps must be 1..96, got {self.origin_every_steps}")
        if self.fade_h is not None and not self.fade_h > 0:
            raise ValueError(f"fade_h must be > 0 hours, got {self.fade_h}")


@dataclass
class BacktestResult:
    """The scores per forecast and reference (sums per horizon step) and what was run."""

    config: BacktestConfig
    scores: dict[str, StepScores]
    days: list[str]  # the scored days (ISO dates)
    households: dict[str, int]  # the sites' assets (counts)
    origins: int  # forecasts made per forecast kind
    wall_s: float

    def to_json(self) -> dict[str, Any]:
        """Everything the report, the plot and `GET /forecast/quality` show, JSON-ready."""
        cfg = self.config
        buckets = []
        for b in default_buckets(cfg.period_s, cfg.horizon_steps):
            metrics = {name: s.metrics(b.start_step, b.stop_step) for name, s in self.scores.items()}
            buckets.append(
                {
                    "bucket": b.name,
                    "steps": [b.start_step, b.stop_step],
                    "metrics": metrics,
                    "skill": {f: {r: skills(metrics[f], metrics[r]) for r in REFERENCES} for f in FORECASTS},
                }
            )
        return {
            "kind": "gridflex.forecast_quality",
            "version": 1,
            "config": dataclasses.asdict(cfg),
            "method": {
                "forecast": "cloud_controller.forecast.baseline.seasonal_naive_smoothing, last 2 days of history",
                "planner": f"baseline + last measured period, fading over {PLANNER_MEASUREMENT_FADE_H} h",
                "target": "2030 net load without control per site (load + EV + heat pump - PV), kW",
                "headline_reference": REFERENCES[0],
                "nominal_coverage": NOMINAL_COVERAGE,
                "point_references": "scored with all quantiles at the point (a zero-width band)",
            },
            "days": self.days,
            "households": self.households,
            "origins": self.origins,
            "wall_s": round(self.wall_s, 2),
            "machine": {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "cpus": _cpus(),
            },
            "buckets": buckets,
            "per_step": {name: s.per_step() for name, s in self.scores.items()},
        }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.lru_cache(maxsize=2)
def synthetic_net_load(
    *, sites: int, seed: int, year: int
) -> tuple[tuple[datetime, ...], FloatArray, dict[str, int]]:
    """(times, (T, sites) net load kW, asset counts) of `sites` households spread over the region.

    The population is drawn for all 319 households (stations in turn), so household i has
    the same assets whatever `sites` is; profiles are generated for the chosen ones only.
    Cached (the arrays are read-only): a report and its tests rerun on the same year.
    """
    from cloud_controller.study.config import StudyConfig
    from cloud_controller.study.population import draw_population
    from cloud_controller.study.profiles import build_profiles

    cfg = StudyConfig(seed=seed, year=year)
    stations = tuple(cfg.stations[i % len(cfg.stations)] for i in range(REGION_HOUSEHOLDS))
    full = draw_population(cfg, stations)
    pick = region_sample(sites)
    counts = _sliced(full, pick).counts()
    pop = _sliced(full, pick)
    prof = build_profiles(cfg, pop)
    net = prof.load_kw.copy()
    np.add.at(net.T, prof.ev_site, prof.ev_kw.T)
    np.add.at(net.T, prof.hp_site, (prof.heat_kw / prof.cop[:, None]).T)
    kwp = np.where(pop.pv_2030, cfg.sizes.pv_2030_kwp, 0.0)
    net -= prof.pv_kw_per_kwp[:, None] * kwp[None, :]
    counts.pop("pv_2024", None)
    times = tuple(t.to_pydatetime() for t in prof.index)
    out = np.ascontiguousarray(net[:, :sites])
    out.setflags(write=False)
    return times, out, counts


def _sliced(full: Population, pick: npt.NDArray[np.int64]) -> Population:
    """The households `pick` of `full`, in that order."""
    return dataclasses.replace(
        full,
        **{f.name: getattr(full, f.name)[pick] for f in dataclasses.fields(full) if f.name != "station"},
        station=tuple(full.station[i] for i in pick),
    )


def region_sample(sites: int) -> npt.NDArray[np.int64]:
    """Households i·319/sites (i < sites): spread evenly over the region, every station in turn."""
    return (np.arange(sites) * REGION_HOUSEHOLDS // sites).astype(np.int64)


def scored_days(n_steps: int, steps_per_day: int, days: int) -> list[int]:
    """Day numbers to score: `days` spread evenly over those with a week of history and a horizon after."""
    first, last = WARMUP_DAYS, n_steps // steps_per_day - 2
    if last < first:
        raise ValueError("the history is too short for a week of warm-up and a day of horizon")
    every = list(range(first, last + 1))
    if days == 0 or days >= len(every):
        return every
    picks = np.linspace(first, last, days).round().astype(int)
    return sorted({int(d) for d in picks})


def run_backtest(
    cfg: BacktestConfig, *, on_progress: Callable[[int, int], None] | None = None
) -> BacktestResult:
    """Roll through the scored days site by site, forecasting at every origin and scoring the horizon."""
    t0 = time.perf_counter()
    times, net, counts = synthetic_net_load(sites=cfg.sites, seed=cfg.seed, year=cfg.year)
    per_day = round(DAY_S / cfg.period_s)
    h = cfg.horizon_steps
    days = scored_days(len(times), per_day, cfg.days)
    origins = [d * per_day + j for d in days for j in range(0, per_day, cfg.origin_every_steps)]
    scores = {name: StepScores(h) for name in (*FORECASTS, *REFERENCES)}
    k = np.arange(h)
    blend = np.exp(-k * cfg.period_s / (PLANNER_MEASUREMENT_FADE_H * 3600.0))
    hist_n = 2 * per_day
    options = {} if cfg.fade_h is None else {"fade_h": cfg.fade_h}
    per_day_origins = len(range(0, per_day, cfg.origin_every_steps))
    total, done = cfg.sites * len(days), 0
    for s in range(cfg.sites):
        col = net[:, s]
        vals = col.tolist()
        n_o = len(origins)
        y = np.empty((n_o, h))
        p10, p50, p90 = np.empty((n_o, h)), np.empty((n_o, h)), np.empty((n_o, h))
        for i, o in enumerate(origins):
            rows = list(zip(times[o - hist_n : o], vals[o - hist_n : o], strict=True))
            b = seasonal_naive_smoothing(rows, now=times[o], period_s=cfg.period_s, horizon=h, **options)
            y[i], p10[i], p50[i], p90[i] = col[o : o + h], b.p10, b.p50, b.p90
            if on_progress is not None and (i + 1) % per_day_origins == 0:
                done += 1
                on_progress(done, total)
        o_arr = np.asarray(origins)
        scores["baseline"].add(y, p10, p50, p90)
        shift = (col[o_arr - 1] - p50[:, 0])[:, None] * blend[None, :]
        scores["planner"].add(y, p10 + shift, p50 + shift, p90 + shift)
        steps = o_arr[:, None] + k[None, :]
        scores["persistence_day"].add_point(y, col[steps - per_day])
        scores["persistence_week"].add_point(y, col[steps - 7 * per_day])
        scores["persistence_last"].add_point(y, np.repeat(col[o_arr - 1][:, None], h, axis=1))
    return BacktestResult(
        config=cfg,
        scores=scores,
        days=[times[d * per_day].date().isoformat() for d in days],
        households=dict(counts),
        origins=len(origins) * cfg.sites,
        wall_s=time.perf_counter() - t0,
    )
