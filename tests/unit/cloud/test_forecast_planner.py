"""Forecast numbers and the planner on a constructed evening peak (pure: no sockets)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud_controller.dispatch import DecomposedEngine
from cloud_controller.forecast.baseline import resample_mean, seasonal_naive_smoothing
from cloud_controller.grid import build_schutterwald_region
from cloud_controller.grid.region import Region
from cloud_controller.live.planner import build_planner
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
from protocols.signing import verify

NOW = datetime(2030, 1, 15, 12, tzinfo=UTC)
PERIOD_S = 900.0


def _rows(
    fn: Callable[[datetime], float], start: datetime, end: datetime, step_s: float = 300.0
) -> list[tuple[datetime, float]]:
    out, t = [], start
    while t < end:
        out.append((t, fn(t)))
        t += timedelta(seconds=step_s)
    return out


def _daily(t: datetime) -> float:
    h = t.hour + t.minute / 60
    return float(2.0 + 1.5 * np.sin(2 * np.pi * h / 24))


def test_resample_holds_values_reported_on_change() -> None:
    rows = [(NOW, 1.0), (NOW + timedelta(minutes=40), 3.0)]
    out = resample_mean(rows, NOW, PERIOD_S, 4)
    assert out.tolist() == [1.0, 1.0, 3.0, 3.0]


def test_seasonal_naive_repeats_a_repeated_day_exactly() -> None:
    rows = _rows(_daily, NOW - timedelta(days=2), NOW)
    fc = seasonal_naive_smoothing(rows, now=NOW, period_s=PERIOD_S, horizon=96)
    truth = resample_mean(_rows(_daily, NOW, NOW + timedelta(days=1)), NOW, PERIOD_S, 96)
    assert fc.method == "seasonal+smoothing"
    assert np.max(np.abs(fc.p50 - truth)) < 1e-9
    assert np.all(fc.p10 <= fc.p50) and np.all(fc.p90 >= fc.p50)


def test_noise_quantiles_cover_about_80_percent() -> None:
    rng = np.random.default_rng(3)
    noisy = [
        (t, v + rng.normal(0, 0.5))
        for t, v in _rows(_daily, NOW - timedelta(days=2), NOW + timedelta(days=1), 900.0)
    ]
    hist = [r for r in noisy if r[0] < NOW]
    fut = resample_mean([r for r in noisy if r[0] >= NOW], NOW, PERIOD_S, 96)
    fc = seasonal_naive_smoothing(hist, now=NOW, period_s=PERIOD_S, horizon=96)
    inside = np.mean((fut >= fc.p10) & (fut <= fc.p90))
    assert 0.6 <= inside <= 0.95


def test_no_history_is_flagged() -> None:
    assert seasonal_naive_smoothing([], now=NOW, period_s=PERIOD_S, horizon=4).method == "zero"


@pytest.fixture(scope="module")
def region() -> Region:
    return build_schutterwald_region()


class _History:
    """Yesterday: flat 2 kW per site, 8 kW per site from 17:00 to 19:00 (the evening peak)."""

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        if (asset, point) != ("meter", "p_kw"):
            return []

        def p(t: datetime) -> float:
            return 8.0 if 17 <= t.hour < 19 else 2.0

        return _rows(p, start, end)


def _sites(n: int) -> list[SiteRef]:
    return [
        SiteRef(
            site=f"b{i:03d}",
            region_site=10 * i,
            assets=(
                AssetRef("meter", "meter"),
                AssetRef("bat1", "battery", p_nominal_kw=5.0, capacity_kwh=13.5),
                AssetRef("ev1", "ev", p_nominal_kw=11.0, p_guaranteed_min_kw=4.2),
            ),
        )
        for i in range(1, n + 1)
    ]


def test_planner_shaves_a_forecast_evening_peak(region: Region) -> None:
    sites = _sites(6)
    keys = {"b001": bytes(32)}
    planner = build_planner(
        region,
        sites,
        period_s=PERIOD_S,
        horizon_steps=48,
        margin_s=120,
        station_limit_kw=30.0,
        signing_keys=keys,
    )
    snaps = {s.site: SiteSnapshot(site=s.site, mode="online", points={"bat1/soc_pct": 30.0}) for s in sites}
    snaps["b006"].mode = "offline"
    plan = planner.plan(NOW, snaps, _History())
    base, planned = np.array(plan.root_baseline_kw), np.array(plan.root_planned_kw)
    peak = slice(20, 28)  # 17:00-19:00 from a 12:00 start
    assert base[peak].max() == pytest.approx(48.0, abs=0.5)  # 6 sites x 8 kW
    assert planned[peak].max() <= 30.0 + 0.5 or planned[peak].max() < base[peak].max() - 15.0
    assert planned[:20].sum() > base[:20].sum()  # batteries pre-charge before the peak
    assert plan.excluded_sites == ["b006"]
    assert {c.site for c in plan.commands} == {f"b00{i}" for i in range(1, 6)}
    assert all(verify(c, keys["b001"]) for c in plan.commands if c.site == "b001")
    for c in plan.commands:
        assert c.valid_until - c.valid_from == timedelta(seconds=PERIOD_S + 120)
        if c.asset == "bat1":
            assert -5.0 <= float(c.value) <= 5.0
        if c.asset == "ev1":
            assert float(c.value) >= 4.2
    assert len(plan.congestion) == 48 and plan.congestion[22].p_exceed > 0.5 > plan.congestion[0].p_exceed


def test_measured_overload_caps_running_ev_at_guaranteed_minimum(region: Region) -> None:
    sites = _sites(3)
    planner = build_planner(
        region, sites, period_s=PERIOD_S, horizon_steps=8, margin_s=0, station_limit_kw=10.0
    )
    snaps = {
        s.site: SiteSnapshot(
            site=s.site, mode="online", p_net_kw=12.0, points={"bat1/soc_pct": 5.0, "ev1/p_kw": 11.0}
        )
        for s in sites
    }
    plan = planner.plan(NOW, snaps, _History())
    ev = {c.site: float(c.value) for c in plan.commands if c.asset == "ev1"}
    assert sorted(ev.values())[0] == pytest.approx(4.2)


def test_grid_target_mode_commands_the_site_exchange_on_the_meter(region: Region) -> None:
    sites = _sites(4)
    common = {"period_s": PERIOD_S, "horizon_steps": 48, "margin_s": 120, "station_limit_kw": 20.0}
    snaps = {s.site: SiteSnapshot(site=s.site, mode="online", points={"bat1/soc_pct": 60.0}) for s in sites}
    by_power = build_planner(region, sites, **common).plan(NOW, snaps, _History())  # type: ignore[arg-type]
    by_target = build_planner(region, sites, battery_control="grid_target", **common).plan(  # type: ignore[arg-type]
        NOW, snaps, _History()
    )
    assert {c.asset for c in by_power.commands} == {"bat1", "ev1"}
    assert {c.asset for c in by_target.commands} == {"meter", "ev1"}
    for c in by_target.commands:
        if c.asset == "meter":
            assert c.kind == "p_setpoint_kw"
            # the planned site exchange = forecast net load + the battery's planned power
            assert float(c.value) == pytest.approx(by_target.site_setpoints[c.site]["meter"], abs=1e-3)
    # the same plan either way: only the way the battery is told differs
    np.testing.assert_allclose(by_power.root_planned_kw, by_target.root_planned_kw, atol=1e-6)
    with pytest.raises(ValueError, match="battery_control"):
        build_planner(region, sites, battery_control="magic", **common)  # type: ignore[arg-type]


def test_the_flex_envelope_sets_battery_state_and_reserve(region: Region) -> None:
    """An agent that reports its battery at 12 kWh with an owner's reserve of 10 kWh: the plan
    starts from 12 kWh and never draws it below 10, however large the evening peak."""
    from protocols.messages import AssetFlex, FlexEnvelope

    sites = _sites(2)
    planner = build_planner(
        region, sites, period_s=PERIOD_S, horizon_steps=48, margin_s=120, station_limit_kw=5.0
    )
    snaps = {s.site: SiteSnapshot(site=s.site, mode="online", points={"bat1/soc_pct": 90.0}) for s in sites}
    snaps["b001"].flex = FlexEnvelope(
        site="b001",
        ts=NOW,
        assets=[AssetFlex(asset="bat1", kind="battery", e_now_kwh=12.0, e_min_kwh=10.0, e_max_kwh=13.0)],
    )
    planner.plan(NOW, snaps, _History())
    schedule = planner.last_schedule
    assert schedule is not None
    k1, k2 = planner.bat_index[0], planner.bat_index[1]
    assert schedule.e_bat_kwh[:, k1].min() >= 10.0 - 1e-6
    assert schedule.e_bat_kwh[:, k1].max() <= 13.0 + 1e-6
    # the peak makes both discharge; the site without an envelope goes down to its SOC floor
    assert schedule.e_bat_kwh[:, k2].min() < 5.0
    assert schedule.e_bat_kwh[:, k1].min() == pytest.approx(10.0, abs=0.05)


@pytest.mark.parametrize("limit_kw", [None, 30.0])
def test_planning_by_area_gives_the_whole_lps_optimum(region: Region, limit_kw: float | None) -> None:
    """One LP per station where the HV/MV threshold idles, the whole LP where it binds:
    the same optimum either way (schedules may differ where batteries tie)."""
    sites = _sites(12)  # region sites 10..120: spread over the three stations
    snaps = {s.site: SiteSnapshot(site=s.site, mode="online", points={"bat1/soc_pct": 30.0}) for s in sites}
    common = {
        "period_s": PERIOD_S,
        "horizon_steps": 48,
        "margin_s": 120,
        "station_limit_kw": limit_kw,
    }
    whole = build_planner(region, sites, **common)  # type: ignore[arg-type]
    by_area = build_planner(region, sites, by_area=True, **common)  # type: ignore[arg-type]
    plan_whole = whole.plan(NOW, snaps, _History())
    plan_by_area = by_area.plan(NOW, snaps, _History())
    assert whole.last_schedule is not None and by_area.last_schedule is not None
    assert by_area.last_schedule.objective == pytest.approx(whole.last_schedule.objective, rel=1e-8)
    engine = by_area.engine
    assert isinstance(engine, DecomposedEngine) and engine.n_areas == len(
        {region.site_station[s.region_site] for s in sites}
    )
    # without a threshold the areas answer; with the evening peak over 30 kW the whole LP does
    assert engine.last_by_area == (limit_kw is None)
    # ... started from the areas' joined bases (lazy grid rows)
    assert engine.stats.full_from_areas == (limit_kw is not None)
    if limit_kw is not None:
        assert max(plan_by_area.root_planned_kw[20:28]) <= max(plan_whole.root_planned_kw[20:28]) + 1e-6
