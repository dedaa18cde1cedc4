"""A tiny backtest of the site baselines (3 sites, 2 days): its shape and numbers that make sense."""

from __future__ import annotations

import numpy as np
import pytest

# the profile generators' own imports (pvlib, demandlib) at collection, not inside a test
import cloud_controller.study.profiles  # noqa: F401
from cloud_controller.forecast.quality import StepScores
from cloud_controller.forecast.quality_backtest import (
    FORECASTS,
    PLANNER_MEASUREMENT_FADE_H,
    REFERENCES,
    BacktestConfig,
    BacktestResult,
    region_sample,
    run_backtest,
    scored_days,
    synthetic_net_load,
)

TINY = BacktestConfig(sites=3, days=2, origin_every_steps=8)


@pytest.fixture(scope="module")
def tiny() -> BacktestResult:
    return run_backtest(TINY)


def test_tiny_backtest_scores_every_bucket_forecast_and_reference(tiny: BacktestResult) -> None:
    data = tiny.to_json()
    # the first and last day with a week before and a day after
    assert data["days"] == ["2030-01-08", "2030-12-30"]
    assert tiny.origins == 3 * 2 * 12  # 3 sites × 2 days × a forecast every 2 h
    assert [b["bucket"] for b in data["buckets"]] == ["0-1 h", "1-6 h", "6-24 h", "all"]
    n_steps = {"0-1 h": 4, "1-6 h": 20, "6-24 h": 72, "all": 96}
    for b in data["buckets"]:
        assert set(b["metrics"]) == {*FORECASTS, *REFERENCES}
        for name, m in b["metrics"].items():
            assert m["n"] == 72 * n_steps[b["bucket"]], (b["bucket"], name)
            assert 0.0 <= m["coverage_p10_p90"] <= 1.0
            assert m["pinball_mean_kw"] > 0 and m["mae_p50_kw"] <= m["rmse_p50_kw"]
        base = b["metrics"]["baseline"]
        assert 0.2 < base["coverage_p10_p90"] < 1.0 and base["band_width_kw"] > 0
        # a point reference has a band of zero width: it covers only exact hits
        assert b["metrics"]["persistence_day"]["band_width_kw"] == 0.0
        assert set(b["skill"]["baseline"]) == set(REFERENCES)
    assert len(data["per_step"]["baseline"]["mae_p50_kw"]) == 96


def test_baseline_p50_beats_silly_forecasts_of_the_same_periods(tiny: BacktestResult) -> None:
    times, net, _ = synthetic_net_load(sites=TINY.sites, seed=TINY.seed, year=TINY.year)
    origins = [d * 96 + j for d in scored_days(len(times), 96, TINY.days) for j in range(0, 96, 8)]
    y = np.stack([net[o : o + 96, s] for s in range(TINY.sites) for o in origins])
    silly = {"zero": 0.0, "always 3 kW": 3.0, "the mean of the year": float(net.mean())}
    base_mae = tiny.scores["baseline"].metrics()["mae_p50_kw"]
    assert base_mae is not None
    for name, kw in silly.items():
        s = StepScores(96)
        s.add_point(y, np.full_like(y, kw))
        assert s.metrics()["n"] == tiny.scores["baseline"].metrics()["n"]
        silly_mae = s.metrics()["mae_p50_kw"]
        assert silly_mae is not None and base_mae < silly_mae, name


def test_planner_forecast_starts_at_the_last_measurement(tiny: BacktestResult) -> None:
    planner = tiny.scores["planner"].per_step()["mae_p50_kw"]
    last = tiny.scores["persistence_last"].per_step()["mae_p50_kw"]
    assert planner[0] == pytest.approx(last[0])
    assert planner[0] != pytest.approx(tiny.scores["baseline"].per_step()["mae_p50_kw"][0])


def test_planner_fade_is_the_planners_own_constant() -> None:
    """The backtest blends as the planner's `with_measurements` does (live/site_forecast.py)."""
    from cloud_controller.live.site_forecast import MEASUREMENT_FADE_H

    assert MEASUREMENT_FADE_H == PLANNER_MEASUREMENT_FADE_H


def test_sites_spread_over_the_region_and_days_over_the_year() -> None:
    assert region_sample(3).tolist() == [0, 106, 212]
    assert len(region_sample(319)) == 319 and len(set(region_sample(319).tolist())) == 319
    assert scored_days(365 * 96, 96, 0) == list(range(7, 364))  # a full year: 357 days
    assert scored_days(365 * 96, 96, 3) == [7, 185, 363]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sites": 0}, "sites must be 1..319"),
        ({"sites": 320}, "sites must be 1..319"),
        ({"days": -1}, "days must be >= 0"),
        ({"horizon_steps": 97}, "horizon_steps must be 1..96"),
        ({"origin_every_steps": 0}, "origin_every_steps must be 1..96"),
        ({"period_s": 300.0}, "15-min"),
        ({"fade_h": 0.0}, "fade_h must be > 0 hours"),
    ],
    ids=["no-sites", "beyond-region", "negative-days", "beyond-a-day", "no-stride", "not-15-min", "no-fade"],
)
def test_backtest_config_refuses_what_it_cannot_run(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BacktestConfig(**kwargs)  # type: ignore[arg-type]
