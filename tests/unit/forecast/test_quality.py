"""The forecast-quality scores on worked examples, numbers computed by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cloud_controller.forecast.quality import (
    HorizonBucket,
    StepScores,
    band_coverage,
    default_buckets,
    mae,
    pinball_loss,
    rmse,
    skill_score,
    skills,
)


@pytest.mark.parametrize(
    ("y", "q", "tau", "loss"),
    [
        # under-forecast by 2 costs tau·2: 0.9·2 = 1.8; over-forecast by 2 costs (1−tau)·2 = 0.2
        ([10.0], [8.0], 0.9, 1.8),
        ([10.0], [12.0], 0.9, 0.2),
        ([10.0, 10.0], [8.0, 12.0], 0.9, 1.0),  # (1.8 + 0.2) / 2
        ([10.0, 10.0], [8.0, 12.0], 0.1, 1.0),  # (0.2 + 1.8) / 2
        ([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], 0.5, 1.0 / 3.0),  # 0.5·(1 + 0 + 1) / 3 = MAE / 2
        ([5.0], [5.0], 0.1, 0.0),
    ],
    ids=["under-p90", "over-p90", "both-p90", "both-p10", "median-is-half-mae", "exact"],
)
def test_pinball_loss_of_known_quantiles(y: list[float], q: list[float], tau: float, loss: float) -> None:
    assert pinball_loss(y, q, tau) == pytest.approx(loss)


def test_pinball_loss_is_least_at_the_true_quantile() -> None:
    y = np.arange(100.0)  # 0..99: the 0.9-quantile is ~89.1
    losses = {q: pinball_loss(y, q, 0.9) for q in (70.0, 80.0, 89.0, 95.0, 99.0)}
    assert min(losses, key=losses.__getitem__) == 89.0


def test_pinball_loss_refuses_a_quantile_outside_0_1_and_nothing_to_score() -> None:
    with pytest.raises(ValueError, match="tau"):
        pinball_loss([1.0], [1.0], 1.0)
    with pytest.raises(ValueError, match="no values"):
        pinball_loss([], [], 0.5)


def test_band_coverage_counts_actuals_inside_including_the_ends() -> None:
    # 2, 3 and 4 are inside [2, 4]: 3 of 5
    assert band_coverage([1.0, 2.0, 3.0, 4.0, 5.0], 2.0, 4.0) == pytest.approx(0.6)
    assert band_coverage([1.0, 2.0], [0.0, 3.0], [2.0, 4.0]) == pytest.approx(0.5)


def test_mae_and_rmse_of_known_errors() -> None:
    y, p = [0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 3.0, -3.0]
    assert mae(y, p) == pytest.approx(2.0)  # (1 + 1 + 3 + 3) / 4
    assert rmse(y, p) == pytest.approx(math.sqrt(5.0))  # sqrt((1 + 1 + 9 + 9) / 4)


def test_skill_is_zero_against_itself_half_for_half_the_loss_and_undefined_on_a_perfect_reference() -> None:
    assert skill_score(0.5, 1.0) == pytest.approx(0.5)
    assert skill_score(2.0, 1.0) == pytest.approx(-1.0)
    assert skill_score(0.0, 0.0) is None
    persistence = StepScores(2)
    persistence.add_point([[1.0, 2.0], [3.0, 5.0]], [[2.0, 2.0], [3.0, 3.0]])
    m = persistence.metrics()
    assert skills(m, m) == {
        "pinball_p10_kw": 0.0,
        "pinball_p50_kw": 0.0,
        "pinball_p90_kw": 0.0,
        "pinball_mean_kw": 0.0,
        "mae_p50_kw": 0.0,
        "rmse_p50_kw": 0.0,
    }


def test_step_scores_sum_per_step_and_score_a_bucket_like_the_pure_functions() -> None:
    y = np.array([[10.0, 4.0], [6.0, 0.0]])  # two origins, two horizon steps
    p10 = np.array([[8.0, 5.0], [5.0, -1.0]])
    p50 = np.array([[9.0, 6.0], [7.0, 1.0]])
    p90 = np.array([[12.0, 7.0], [8.0, 2.0]])
    s = StepScores(2)
    s.add(y, p10, p50, p90)
    step1 = s.metrics(1, 2)
    # step 1: y = 4, 0; inside [5, 7]? no; [-1, 2]? yes: coverage 1/2
    assert step1["n"] == 2 and step1["coverage_p10_p90"] == pytest.approx(0.5)
    # p50 errors at step 1: 4 − 6 = −2, 0 − 1 = −1: MAE 1.5, RMSE sqrt(2.5)
    assert step1["mae_p50_kw"] == pytest.approx(1.5)
    assert step1["rmse_p50_kw"] == pytest.approx(math.sqrt(2.5))
    # p10 at step 1: y − q = −1 (0.9·1 = 0.9), 1 (0.1·1 = 0.1): mean 0.5
    assert step1["pinball_p10_kw"] == pytest.approx(0.5)
    assert step1["band_width_kw"] == pytest.approx(2.5)  # (2 + 3) / 2
    both = s.metrics()
    assert both["n"] == 4
    assert both["pinball_p90_kw"] == pytest.approx(pinball_loss(y, p90, 0.9))
    assert both["coverage_p10_p90"] == pytest.approx(band_coverage(y, p10, p90))  # 3 of 4
    assert both["mae_p50_kw"] == pytest.approx(mae(y, p50))
    assert both["pinball_mean_kw"] == pytest.approx(
        np.mean([pinball_loss(y, q, t) for q, t in ((p10, 0.1), (p50, 0.5), (p90, 0.9))])
    )
    assert s.per_step()["coverage_p10_p90"] == [pytest.approx(1.0), pytest.approx(0.5)]


def test_step_scores_skip_missing_actuals_and_refuse_another_horizon() -> None:
    s = StepScores(2)
    s.add_point([[1.0, np.nan]], [[0.0, 0.0]])
    assert s.metrics(0, 1) == {
        "n": 1,
        "pinball_p10_kw": pytest.approx(0.1),
        "pinball_p50_kw": pytest.approx(0.5),
        "pinball_p90_kw": pytest.approx(0.9),
        "pinball_mean_kw": pytest.approx(0.5),
        "coverage_p10_p90": 0.0,
        "mae_p50_kw": 1.0,
        "rmse_p50_kw": 1.0,
        "band_width_kw": 0.0,
    }
    assert s.metrics(1, 2) == {"n": 0}
    assert s.per_step()["mae_p50_kw"] == [1.0, None]
    with pytest.raises(ValueError, match="expected 2 horizon steps, got 3"):
        s.add_point([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]])


@pytest.mark.parametrize(
    ("horizon", "buckets"),
    [
        (
            96,
            [("0-1 h", 0, 4), ("1-6 h", 4, 24), ("6-24 h", 24, 96), ("all", 0, 96)],
        ),
        (8, [("0-1 h", 0, 4), ("1-6 h", 4, 8), ("all", 0, 8)]),
    ],
    ids=["a-day", "two-hours"],
)
def test_default_buckets_cut_the_horizon_into_next_hour_1_6_h_and_6_24_h(
    horizon: int, buckets: list[tuple[str, int, int]]
) -> None:
    assert default_buckets(900.0, horizon) == tuple(HorizonBucket(*b) for b in buckets)
