"""Each MV/LV station's load outside the fleet ("background"): measured now and forecast (pure).

Why: a station's rating is held against everything its transformer carries, and the fleet
is only part of it; the households outside the fleet are invisible to the fleet's meters.
A secondary-substation meter (site `sub-<station>`, `protocols.assets.substation_site_id`)
sees the whole station, so

    background_kw = station meter P − Σ fleet sites below the station (their own meters)

is what the fleet does not account for (the other households, and the LV lines' losses).

- Now (`measure_background`): the meter's newest sample minus the fleet sites' newest
  readings. A meter that is offline, has no reading, or whose sample is older than
  `METER_MAX_AGE_S` gives no measurement (status says which). A fleet site without a
  reading is subtracted at its `fallback_kw` (the planner's forecast) when given, else
  left in the background and named in `fleet_unmeasured`.
- Ahead (`forecast_background`): the background's own history (the meter's stored series
  minus the fleet sites' stored series, per period: `background_rows`, the last
  `BACKGROUND_HISTORY_DAYS`). With at least `forecast.multi_day.MIN_DAYS` days of it: the
  same-time-of-day mean over those days and σ per time of day from their spread
  (`forecast/multi_day.py`; method "multi-day"). Why not yesterday alone: a station's
  evening background moves by 70-120 kW from one day to the next in the demo's region (EV
  arrivals), its night by 15 kW, and one band for the whole day is far too narrow in the
  evening for the planner's chance margin to pre-charge anything. With one or two days:
  forecast like a site baseline (`forecast/baseline.py`: same period yesterday plus a
  smoothed level shift, σ from the history's "yesterday" errors; method "seasonal"). Either
  way the latest measured background rules the first period and fades over
  `MEASUREMENT_FADE_H` as in `live/site_forecast.py`. Without a day of history: persistence of the latest value, σ the history's period-to-period spread or at
  least `PERSISTENCE_SIGMA_FRACTION` of the value (an assumption, not a measured figure),
  growing from 0 as the measurement fades. Without a meter reading and any history: 0 with a
  warning, the fleet-only view the controller had before station meters.
- Reactive power: the meter's latest Q held over the horizon (None without a Q reading; the
  planner then takes the loads' power factor, see `station_plan.py`).

`SharedReads` lets the background and the fleet forecast read each site's series once a plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cloud_controller.forecast.baseline import seasonal_naive_smoothing
from cloud_controller.forecast.multi_day import multi_day_profile
from cloud_controller.live.site_forecast import MEASUREMENT_FADE_H, Z_80, period_start
from cloud_controller.live.types import History, SiteSnapshot
from protocols.assets import Points

__all__ = [
    "BACKGROUND_HISTORY_DAYS",
    "GUARD_SMOOTHING_S",
    "HISTORY_DAYS",
    "METER_MAX_AGE_S",
    "PERSISTENCE_SIGMA_FRACTION",
    "BackgroundMeasurement",
    "SharedReads",
    "StationBackground",
    "background_rows",
    "forecast_background",
    "measure_background",
    "period_means",
    "read_background_rows",
    "smoothed",
]

FloatArray = npt.NDArray[np.float64]
#: A station meter's sample older than this is no measurement of "now" (a meter polls every few s).
METER_MAX_AGE_S = 600.0
#: σ of a persisted background without a history to take it from, as a fraction of its value.
PERSISTENCE_SIGMA_FRACTION = 0.2
#: Time constant of the guard's smoothed background (`smoothed`), s.
GUARD_SMOOTHING_S = 300.0
HISTORY_DAYS = 2  # what the site baselines read (`live/site_forecast.py`)
#: Days of a station's background history its forecast reads (a week: every weekday once).
BACKGROUND_HISTORY_DAYS = 7

MeasurementStatus = Literal["measured", "stale", "offline", "no_reading", "no_meter"]
ForecastMethod = Literal["multi-day", "seasonal", "persistence", "none"]


@dataclass(frozen=True)
class BackgroundMeasurement:
    """A station's background now, or why there is none (`background_kw` None)."""

    station: str
    status: MeasurementStatus
    background_kw: float | None = None
    meter_kw: float | None = None  # the station meter's P (load-positive: into the LV network)
    q_kvar: float | None = None  # its Q, where it reports one
    fleet_kw: float = 0.0  # what was subtracted for the fleet's sites below the station
    fleet_unmeasured: tuple[str, ...] = ()  # fleet sites without a reading (see fallback_kw)
    at: datetime | None = None  # the meter sample's time


@dataclass(frozen=True)
class StationBackground:
    """A station's background over the horizon: median, σ, reactive power, and how it was made."""

    station: str
    p50_kw: FloatArray  # (T,)
    sigma_kw: FloatArray  # (T,)
    q_kvar: FloatArray | None  # (T,) the meter's Q held; None: no Q reading
    method: ForecastMethod
    measured: BackgroundMeasurement
    warning: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape the API and the summary show."""
        m = self.measured
        return {
            "station": self.station,
            "method": self.method,
            "status": m.status,
            "measured_kw": None if m.background_kw is None else round(m.background_kw, 3),
            "meter_kw": None if m.meter_kw is None else round(m.meter_kw, 3),
            "fleet_kw": round(m.fleet_kw, 3),
            "fleet_unmeasured": list(m.fleet_unmeasured),
            "p50_kw": [round(float(v), 3) for v in self.p50_kw],
            "sigma_kw": [round(float(v), 3) for v in self.sigma_kw],
            "warning": self.warning,
        }


def measure_background(
    station: str,
    meter: SiteSnapshot | None,
    fleet_sites: Sequence[str],
    snapshots: Mapping[str, SiteSnapshot],
    now: datetime,
    *,
    fallback_kw: Mapping[str, float] | None = None,
    max_age_s: float = METER_MAX_AGE_S,
) -> BackgroundMeasurement:
    """The station meter's newest P minus the fleet sites' newest readings below it."""
    if meter is None:
        return BackgroundMeasurement(station, "no_meter")
    p_kw = meter.points.get(str(Points.METER_P_KW), meter.p_net_kw)
    if p_kw is None or not math.isfinite(p_kw):
        return BackgroundMeasurement(station, "no_reading")
    at = meter.measured_at or meter.last_seen
    q = meter.points.get(str(Points.METER_Q_KVAR))
    if meter.mode == "offline":
        return BackgroundMeasurement(station, "offline", meter_kw=p_kw, q_kvar=q, at=at)
    if at is None or (now - at).total_seconds() > max_age_s:
        return BackgroundMeasurement(station, "stale", meter_kw=p_kw, q_kvar=q, at=at)
    fleet_kw = 0.0
    unmeasured: list[str] = []
    for site in fleet_sites:
        snap = snapshots.get(site)
        if snap is not None and snap.p_net_kw is not None:
            fleet_kw += snap.p_net_kw
        elif fallback_kw is not None and site in fallback_kw:
            fleet_kw += fallback_kw[site]
            unmeasured.append(site)
        else:
            unmeasured.append(site)
    return BackgroundMeasurement(
        station, "measured", p_kw - fleet_kw, p_kw, q, fleet_kw, tuple(sorted(unmeasured)), at
    )


def period_means(
    rows: Sequence[tuple[datetime, float]], start: datetime, period_s: float, n: int
) -> FloatArray:
    """`forecast.baseline.resample_mean` without its per-bin loop: the same means, held into empty bins.

    Each bin's mean of its samples; an empty bin holds the last sample before it (NaN before
    any). Vectorised: a plan makes the background of every fleet site's two-day series.
    """
    if not rows or n <= 0:
        return np.full(max(n, 0), np.nan)
    t = np.fromiter((r[0].timestamp() for r in rows), dtype=float, count=len(rows))
    v = np.fromiter((r[1] for r in rows), dtype=float, count=len(rows))
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    t0 = start.timestamp()
    k = np.floor((t - t0) / period_s).astype(np.int64)
    inside = (k >= 0) & (k < n)
    sums = np.bincount(k[inside], weights=v[inside], minlength=n)
    counts = np.bincount(k[inside], minlength=n)
    last = np.searchsorted(t, t0 + period_s * np.arange(1, n + 1), side="left") - 1
    held = np.where(last >= 0, v[np.maximum(last, 0)], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(counts > 0, sums / np.maximum(counts, 1), held), dtype=float)


def smoothed(
    prev: tuple[datetime, float] | None, m: BackgroundMeasurement, *, tau_s: float = GUARD_SMOOTHING_S
) -> tuple[datetime, float] | None:
    """The guard's background: each new meter sample moves it by 1 − exp(−Δt/τ) of the way.

    Why: the meter and the fleet's meters are not sampled at the same instant, so their
    difference jumps when an EV switches or a battery answers a command between the two
    samples (seen by one meter, not yet by the other); the guard would act on those jumps.
    A sustained change outside the fleet comes through within a few τ. Returns (sample time,
    value); None without a measurement.
    """
    if m.background_kw is None or m.at is None:
        return None
    if prev is None or m.at < prev[0]:
        return (m.at, m.background_kw)
    dt_s = (m.at - prev[0]).total_seconds()
    return (m.at, prev[1] + (1.0 - math.exp(-dt_s / tau_s)) * (m.background_kw - prev[1]))


def background_rows(
    meter_rows: Sequence[tuple[datetime, float]],
    fleet_rows: Sequence[Sequence[tuple[datetime, float]]],
    start: datetime,
    period_s: float,
    n: int,
) -> list[tuple[datetime, float]]:
    """Per-period background history: the meter's period mean minus the fleet sites' (n bins from `start`).

    A period without a meter value, or without a value of every fleet site, is left out.
    """
    bg = period_means(meter_rows, start, period_s, n)
    for rows in fleet_rows:
        bg = bg - period_means(rows, start, period_s, n)
    return [
        (start + timedelta(seconds=k * period_s), float(v))
        for k, v in enumerate(bg.tolist())
        if math.isfinite(v)
    ]


def read_background_rows(
    history: History,
    meter_site: str,
    fleet_sites: Sequence[str],
    now: datetime,
    *,
    period_s: float,
) -> list[tuple[datetime, float]]:
    """The background history of the last `BACKGROUND_HISTORY_DAYS` from the stored meter and site series."""
    start = now - timedelta(days=BACKGROUND_HISTORY_DAYS)
    asset, point = Points.METER_P_KW
    meter = history.read_series(meter_site, asset, point, start, now)
    if not meter:
        return []
    fleet = [history.read_series(s, asset, point, start, now) for s in fleet_sites]
    first = period_start(start, period_s)
    n = math.ceil((now - first).total_seconds() / period_s)
    return background_rows(meter, fleet, first, period_s, n)


def forecast_background(
    measured: BackgroundMeasurement,
    rows: Sequence[tuple[datetime, float]],
    now: datetime,
    *,
    period_s: float,
    horizon: int,
) -> StationBackground:
    """The background over `horizon` periods from `now`: its history's baseline, the latest measurement blended in."""
    station = measured.station
    start = period_start(now, period_s)
    k = np.arange(horizon)
    hist = [r for r in rows if r[0] < start]
    live = measured.background_kw
    method: ForecastMethod
    warning = None
    profile = (
        multi_day_profile(hist, now=start, period_s=period_s, horizon=horizon, days=BACKGROUND_HISTORY_DAYS)
        if hist
        else None
    )
    if profile is not None:
        p50, sigma, method = profile.p50, profile.sigma, "multi-day"
    elif hist:
        b = seasonal_naive_smoothing(hist, now=start, period_s=period_s, horizon=horizon)
        p50 = np.asarray(b.p50, dtype=float)
        method = "seasonal" if b.method == "seasonal+smoothing" else "persistence"
        sigma = np.maximum(np.asarray(b.p90) - np.asarray(b.p10), 0.0) / Z_80
        if method == "persistence":  # no day-old history: σ from its period-to-period change
            values = np.asarray([v for _, v in hist], dtype=float)
            spread = float(np.std(np.diff(values))) if values.size >= 4 else 0.0
            floor = PERSISTENCE_SIGMA_FRACTION * abs(float(values[-1]))
            sigma = np.maximum(sigma, max(spread, floor))
    elif live is not None:
        p50 = np.full(horizon, live)
        sigma = np.full(horizon, PERSISTENCE_SIGMA_FRACTION * abs(live))
        method = "persistence"
    else:
        p50, sigma, method = np.zeros(horizon), np.zeros(horizon), "none"
        warning = f"station {station}: no meter reading ({measured.status}) and no history: background 0"
    if live is not None and method != "none":
        weight = np.exp(-k * period_s / (MEASUREMENT_FADE_H * 3600.0))
        p50 = p50 + weight * (live - p50[0])
        if method == "persistence":  # the measurement rules the first periods: its σ grows as it fades
            sigma = sigma * (1.0 - weight)
    elif method != "none":
        warning = f"station {station}: meter {measured.status}: background from its history only"
    q = None if measured.q_kvar is None or live is None else np.full(horizon, float(measured.q_kvar))
    return StationBackground(station, p50, sigma, q, method, measured, warning)


class SharedReads:
    """A history reader that serves repeated `read_series` calls (same arguments) from the first read.

    One per plan: the fleet's baselines and the stations' backgrounds read the same site series.
    Other attributes (e.g. `read_envelopes`) are the wrapped reader's.
    """

    def __init__(self, history: History) -> None:
        self._history = history
        self._rows: dict[tuple[str, str, str, datetime, datetime], list[tuple[datetime, float]]] = {}

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """Stored samples of one point in [start, end), oldest first (read once)."""
        key = (site, asset, point, start, end)
        if key not in self._rows:
            self._rows[key] = self._history.read_series(site, asset, point, start, end)
        return self._rows[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._history, name)
