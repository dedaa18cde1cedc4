"""A station's background (meter P − the fleet's sites below it): measured now, forecast, planned against."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud_controller.forecast.baseline import resample_mean
from cloud_controller.live.station_load import (
    BACKGROUND_HISTORY_DAYS,
    PERSISTENCE_SIGMA_FRACTION,
    BackgroundMeasurement,
    SharedReads,
    StationBackground,
    background_rows,
    forecast_background,
    measure_background,
    period_means,
    read_background_rows,
    smoothed,
)
from cloud_controller.live.station_plan import (
    COS_PHI_DEFAULT,
    household_background,
    p_rating_kw,
    station_inputs,
)
from cloud_controller.live.types import SiteSnapshot

NOW = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
PERIOD_S = 900.0


def _snap(
    site: str, p_kw: float | None, *, at: datetime = NOW, mode: str = "online", **points: float
) -> SiteSnapshot:
    pts = {k.replace("__", "/"): v for k, v in points.items()}
    if p_kw is not None:
        pts["meter/p_kw"] = p_kw
    return SiteSnapshot(site=site, mode=mode, p_net_kw=p_kw, points=pts, last_seen=at, measured_at=at)  # type: ignore[arg-type]


def test_the_background_is_the_meter_minus_the_fleet_sites_below_it() -> None:
    meter = _snap("sub-s1", 50.0, meter__q_kvar=12.0)
    snaps = {"a": _snap("a", 10.0), "b": _snap("b", 5.0), "z": _snap("z", 99.0)}  # z: another station's
    m = measure_background("S1", meter, ["a", "b"], snaps, NOW + timedelta(seconds=30))
    assert (m.status, m.background_kw, m.meter_kw, m.q_kvar, m.fleet_kw) == (
        "measured",
        35.0,
        50.0,
        12.0,
        15.0,
    )
    assert m.fleet_unmeasured == ()


def test_a_fleet_site_without_a_reading_is_subtracted_at_its_fallback_or_named() -> None:
    meter = _snap("sub-s1", 50.0)
    snaps = {"a": _snap("a", 10.0), "b": _snap("b", None)}
    with_fallback = measure_background("S1", meter, ["a", "b"], snaps, NOW, fallback_kw={"b": 4.0})
    assert with_fallback.background_kw == 36.0 and with_fallback.fleet_unmeasured == ("b",)
    without = measure_background("S1", meter, ["a", "b"], snaps, NOW)
    assert without.background_kw == 40.0 and without.fleet_unmeasured == ("b",)  # b's load stays in it


@pytest.mark.parametrize(
    ("meter", "status"),
    [
        (None, "no_meter"),
        (_snap("sub-s1", None), "no_reading"),
        (_snap("sub-s1", 50.0, mode="offline"), "offline"),
        (_snap("sub-s1", 50.0, at=NOW - timedelta(minutes=11)), "stale"),  # older than 600 s
    ],
)
def test_no_usable_meter_reading_is_no_measurement_and_says_why(
    meter: SiteSnapshot | None, status: str
) -> None:
    m = measure_background("S1", meter, ["a"], {"a": _snap("a", 10.0)}, NOW)
    assert m.status == status and m.background_kw is None


def _rows(start: datetime, n: int, f: object, step_s: float = PERIOD_S) -> list[tuple[datetime, float]]:
    fn = f if callable(f) else (lambda _k: float(f))  # type: ignore[arg-type]
    return [(start + timedelta(seconds=k * step_s), float(fn(k))) for k in range(n)]


def test_background_rows_are_the_meter_period_means_minus_each_fleet_site() -> None:
    start = NOW - timedelta(hours=1)
    meter = _rows(start, 4 * 15, lambda k: 40.0 + (k // 15), step_s=60.0)  # 40, 41, 42, 43 kW per quarter
    site = _rows(start, 4 * 15, lambda _k: 10.0, step_s=60.0)
    rows = background_rows(meter, [site, site], start, PERIOD_S, 4)
    assert rows == [(start + timedelta(minutes=15 * k), 20.0 + k) for k in range(4)]
    # the meter's last sample holds into later periods (sample-and-hold); none at all: no rows
    assert [v for _, v in background_rows(meter[:30], [site], start, PERIOD_S, 4)] == [30.0, 31.0, 31.0, 31.0]
    assert background_rows([], [site], start, PERIOD_S, 4) == []


def _daily(k: int) -> float:
    """A background with a daily shape: 30 kW ± 10 kW over the day."""
    return 30.0 + 10.0 * math.sin(2 * math.pi * k / 96)


def test_the_forecast_is_yesterday_with_the_latest_measurement_ruling_the_first_period() -> None:
    start = NOW - timedelta(days=2)
    hist = _rows(start, 2 * 96, _daily)
    measured = BackgroundMeasurement("S1", "measured", background_kw=_daily(2 * 96) + 6.0, q_kvar=9.0)
    bg = forecast_background(measured, hist, NOW, period_s=PERIOD_S, horizon=96)
    assert bg.method == "seasonal" and bg.warning is None
    assert bg.p50_kw[0] == pytest.approx(measured.background_kw)  # the measurement rules the first period
    # and fades: a day ahead the forecast is yesterday's shape (the same every day here)
    assert bg.p50_kw[-1] == pytest.approx(_daily(2 * 96 + 95), abs=0.1)
    assert np.all(bg.sigma_kw >= 0.0) and bg.sigma_kw.shape == (96,)
    assert bg.q_kvar is not None and np.all(bg.q_kvar == 9.0)  # the meter's Q held


def test_a_week_of_history_gives_the_same_time_mean_and_a_sigma_per_time_of_day() -> None:
    # seven days of the daily shape; at 17:00-17:15 the days differ by 0, 20, ..., 120 kW (EVs)
    start = NOW - timedelta(days=BACKGROUND_HISTORY_DAYS)

    def value(k: int) -> float:
        t = start + timedelta(seconds=k * PERIOD_S)
        return _daily(k) + (20.0 * (k // 96) if (t.hour, t.minute) == (17, 0) else 0.0)

    hist = _rows(start, BACKGROUND_HISTORY_DAYS * 96, value)
    measured = BackgroundMeasurement("S1", "measured", background_kw=_daily(0) + 4.0)
    bg = forecast_background(measured, hist, NOW, period_s=PERIOD_S, horizon=8)
    assert bg.method == "multi-day" and bg.warning is None
    assert bg.p50_kw[0] == pytest.approx(measured.background_kw)  # the measurement rules "now" (17:00)
    evening_sd = float(np.std(20.0 * np.arange(7), ddof=1))  # 0..120 kW over 7 days: 43.2 kW
    assert bg.sigma_kw[0] == pytest.approx(evening_sd / math.sqrt(5.0))  # pooled over ±2 periods
    assert bg.sigma_kw[3] == pytest.approx(0.0, abs=1e-9)  # 17:45: every day alike
    # with two days only the one-day method stays
    two = [r for r in hist if r[0] >= NOW - timedelta(days=2)]
    assert forecast_background(measured, two, NOW, period_s=PERIOD_S, horizon=8).method == "seasonal"


def test_without_a_day_of_history_the_forecast_persists_the_latest_value() -> None:
    hist = _rows(NOW - timedelta(hours=3), 12, lambda _k: 25.0)
    measured = BackgroundMeasurement("S1", "measured", background_kw=28.0)
    bg = forecast_background(measured, hist, NOW, period_s=PERIOD_S, horizon=8)
    assert bg.method == "persistence"
    assert bg.p50_kw[0] == pytest.approx(28.0) and bg.p50_kw[-1] == pytest.approx(
        25.0 + 3.0 * math.exp(-7 / 4)
    )
    fade = 1.0 - np.exp(-np.arange(8) / 4)  # the measurement's weight fades over an hour
    assert bg.sigma_kw == pytest.approx(PERSISTENCE_SIGMA_FRACTION * 25.0 * fade)
    only_now = forecast_background(measured, [], NOW, period_s=PERIOD_S, horizon=8)
    assert only_now.method == "persistence" and only_now.p50_kw == pytest.approx(np.full(8, 28.0))
    assert only_now.sigma_kw == pytest.approx(PERSISTENCE_SIGMA_FRACTION * 28.0 * fade)
    assert only_now.sigma_kw[0] == 0.0  # the first period is the measurement's


def test_a_stale_meter_with_history_forecasts_from_history_and_warns() -> None:
    hist = _rows(NOW - timedelta(days=2), 2 * 96, _daily)
    bg = forecast_background(BackgroundMeasurement("S1", "stale"), hist, NOW, period_s=PERIOD_S, horizon=4)
    assert bg.method == "seasonal" and bg.warning is not None and "stale" in bg.warning
    assert bg.p50_kw[0] == pytest.approx(_daily(2 * 96), abs=0.1)
    assert bg.q_kvar is None


def test_no_meter_reading_and_no_history_is_a_background_of_zero_with_a_warning() -> None:
    bg = forecast_background(BackgroundMeasurement("S1", "offline"), [], NOW, period_s=PERIOD_S, horizon=4)
    assert bg.method == "none" and np.all(bg.p50_kw == 0.0) and np.all(bg.sigma_kw == 0.0)
    assert bg.warning == "station S1: no meter reading (offline) and no history: background 0"
    assert bg.as_dict()["status"] == "offline"


class _CountingHistory:
    def __init__(self, series: dict[str, list[tuple[datetime, float]]]) -> None:
        self.series = series
        self.reads = 0

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        self.reads += 1
        return [r for r in self.series.get(site, []) if start <= r[0] < end]

    def read_envelopes(self, at: float) -> str:
        return "[]"


def test_the_background_history_is_read_from_the_stored_series_once_a_plan() -> None:
    start = NOW - timedelta(days=2)
    store = _CountingHistory(
        {"sub-s1": _rows(start, 192, lambda _k: 50.0), "a": _rows(start, 192, lambda _k: 8.0)}
    )
    shared = SharedReads(store)
    rows = read_background_rows(shared, "sub-s1", ["a"], NOW, period_s=PERIOD_S)
    assert len(rows) == 192 and {v for _, v in rows} == {42.0}
    read_background_rows(shared, "sub-s1", ["a"], NOW, period_s=PERIOD_S)
    assert store.reads == 2  # the meter and a, once each
    assert shared.read_envelopes(0.0) == "[]"  # other readers' methods pass through


def test_the_active_power_rating_takes_the_measured_q_or_the_default_power_factor() -> None:
    assert float(p_rating_kw(400.0, 240.0)) == pytest.approx(320.0)  # 400 kVA at 240 kvar
    assert float(p_rating_kw(400.0, None)) == pytest.approx(400.0 * COS_PHI_DEFAULT)
    assert float(p_rating_kw(400.0, 500.0)) == 0.0  # Q alone over the rating: no room for P
    assert math.isinf(float(p_rating_kw(math.inf, 10.0)))


def _bg(p50: float, sigma: float, q: float | None, method: str = "seasonal") -> StationBackground:
    m = BackgroundMeasurement("S1", "measured", background_kw=p50)
    q_arr = None if q is None else np.full(2, q)
    return StationBackground("S1", np.full(2, p50), np.full(2, sigma), q_arr, method, m)  # type: ignore[arg-type]


def test_the_lp_gets_the_background_at_the_station_bus_and_an_active_power_rating_less_the_margin() -> None:
    rating = np.array([[25000.0, 400.0, 630.0]] * 2)  # HV/MV, S1, S2
    out = station_inputs(
        rating, {"S1": 1, "S2": 2}, {"S1": 2, "S2": 3}, 4, {"S1": _bg(100.0, 10.0, 240.0)}, z=1.28
    )
    assert out.any
    assert out.bus_fixed_kw[:, 2] == pytest.approx(
        [100.0, 100.0]
    ) and out.bus_fixed_kw.sum() == pytest.approx(200.0)
    assert out.rating_kw[:, 1] == pytest.approx([320.0 - 12.8] * 2)  # sqrt(400² − 240²) − z·σ
    assert out.rating_kw[:, [0, 2]] == pytest.approx(rating[:, [0, 2]])  # the others as they were
    assert out.sigma_kw == pytest.approx([10.0, 10.0])
    wide = station_inputs(rating, {"S1": 1}, {"S1": 2}, 4, {"S1": _bg(100.0, 1000.0, 0.0)}, z=1.28)
    assert wide.rating_kw[:, 1] == pytest.approx([200.0, 200.0])  # the margin takes at most half
    none = station_inputs(rating, {"S1": 1}, {"S1": 2}, 4, {"S1": _bg(0.0, 0.0, None, "none")}, z=1.28)
    assert not none.any and none.rating_kw == pytest.approx(rating)  # no background: as before


def test_a_station_background_is_spread_over_its_households_outside_the_fleet() -> None:
    stations = ["S1", "S1", "S1", "S2", "S2"]
    out, shared = household_background(
        stations, [0], {"S1": np.array([30.0, 10.0]), "S2": np.array([4.0, 4.0])}
    )
    assert out.shape == (2, 5)
    assert out[:, 0] == pytest.approx([0.0, 0.0])  # the fleet's household
    assert out[:, 1] == pytest.approx([15.0, 5.0]) and out[:, 2] == pytest.approx([15.0, 5.0])
    assert out[:, 3] == pytest.approx([2.0, 2.0])
    assert shared == {"S1": 2, "S2": 2}


def test_period_means_are_resample_mean_without_its_loop() -> None:
    rng = np.random.default_rng(3)
    start = NOW - timedelta(hours=6)
    # irregular samples (deadband reporting), gaps of several periods, samples before the start
    ts = np.sort(rng.uniform(-3600.0, 6 * 3600.0, 300))
    ts = ts[(ts < 3600.0) | (ts > 3 * 3600.0)]
    rows = [
        (start + timedelta(seconds=float(t)), float(v))
        for t, v in zip(ts, rng.normal(5.0, 2.0, ts.size), strict=True)
    ]
    n = 24
    assert period_means(rows, start, PERIOD_S, n) == pytest.approx(
        resample_mean(rows, start, PERIOD_S, n), nan_ok=True
    )
    late = [r for r in rows if r[0] > start + timedelta(hours=2)]  # NaN before the first sample
    assert period_means(late, start, PERIOD_S, n) == pytest.approx(
        resample_mean(late, start, PERIOD_S, n), nan_ok=True
    )
    assert np.isnan(period_means([], start, PERIOD_S, 4)).all()


def test_the_guard_background_follows_new_meter_samples_with_a_time_constant() -> None:
    m0 = BackgroundMeasurement("S1", "measured", background_kw=100.0, at=NOW)
    first = smoothed(None, m0)
    assert first == (NOW, 100.0)  # the first sample as it is
    jump = BackgroundMeasurement("S1", "measured", background_kw=130.0, at=NOW + timedelta(seconds=300))
    moved = smoothed(first, jump, tau_s=300.0)
    assert moved is not None and moved[1] == pytest.approx(100.0 + 30.0 * (1 - math.exp(-1.0)))
    assert smoothed(moved, jump, tau_s=300.0) == moved  # the same sample again: no move
    assert smoothed(moved, BackgroundMeasurement("S1", "stale"), tau_s=300.0) is None
