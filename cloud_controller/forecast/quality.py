"""Scores that say how good a quantile forecast is: pinball loss, band coverage, MAE/RMSE, skill.

Pure functions over arrays, so the worked examples in the tests pin them down by hand.
The backtest (`quality_backtest.py`) feeds them batches of forecasts (origins × horizon
steps); `StepScores` keeps only sums per horizon step, so a year of hourly forecasts for
hundreds of sites needs kilobytes, not gigabytes, and any bucket of steps (next hour,
1–6 h, 6–24 h, all) is scored from the same sums.

Conventions: `y` is what happened, `p10/p50/p90` the forecast quantiles, all in kW;
pinball loss of quantile τ is mean(max(τ·(y−q), (τ−1)·(y−q))) (kW; at τ = 0.5 it is half
the MAE); skill is 1 − loss / loss_reference (1 perfect, 0 as good as the reference,
negative worse). A point forecast (the persistence references) is scored as a
distribution with all its quantiles at the point, so its pinball losses are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "QUANTILES",
    "HorizonBucket",
    "StepScores",
    "band_coverage",
    "default_buckets",
    "mae",
    "pinball_loss",
    "rmse",
    "skill_score",
    "skills",
]

FloatArray = npt.NDArray[np.float64]
#: the quantiles the baseline forecasts (Baseline.p10, .p50, .p90)
QUANTILES = (0.1, 0.5, 0.9)
#: the band's nominal coverage: p10..p90 should hold 80 % of what happens
NOMINAL_COVERAGE = 0.8


def _arr(x: npt.ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def _pinball(y: FloatArray, q: FloatArray, tau: float) -> FloatArray:
    d = y - q
    out: FloatArray = np.maximum(tau * d, (tau - 1.0) * d)
    return out


def pinball_loss(y: npt.ArrayLike, q: npt.ArrayLike, tau: float) -> float:
    """Mean quantile (pinball) loss of forecast `q` for quantile `tau` against actuals `y`.

    Under-forecasting costs tau per kW, over-forecasting 1 − tau: the loss is smallest, in
    expectation, when q is the true tau-quantile, which is why it scores quantiles.
    """
    if not 0.0 < tau < 1.0:
        raise ValueError(f"tau must be in (0, 1), got {tau}")
    ya, qa = np.broadcast_arrays(_arr(y), _arr(q))
    if ya.size == 0:
        raise ValueError("no values to score")
    return float(_pinball(ya, qa, tau).mean())


def band_coverage(y: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike) -> float:
    """Share of actuals inside [lo, hi] (both ends included); ideal for p10..p90 is 0.8."""
    ya, la, ha = np.broadcast_arrays(_arr(y), _arr(lo), _arr(hi))
    if ya.size == 0:
        raise ValueError("no values to score")
    return float(((ya >= la) & (ya <= ha)).mean())


def mae(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Mean absolute error, kW."""
    ya, pa = np.broadcast_arrays(_arr(y), _arr(p))
    if ya.size == 0:
        raise ValueError("no values to score")
    return float(np.abs(ya - pa).mean())


def rmse(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Root mean squared error, kW."""
    ya, pa = np.broadcast_arrays(_arr(y), _arr(p))
    if ya.size == 0:
        raise ValueError("no values to score")
    return float(np.sqrt(((ya - pa) ** 2).mean()))


def skill_score(loss: float, loss_reference: float) -> float | None:
    """1 − loss / loss_reference; None where the reference is perfect (its loss is 0), so undefined."""
    if loss_reference <= 0.0:
        return None
    return 1.0 - loss / loss_reference


@dataclass(frozen=True)
class HorizonBucket:
    """Horizon steps [start_step, stop_step) scored together (step 0 is the period starting now)."""

    name: str
    start_step: int
    stop_step: int


def default_buckets(period_s: float, horizon: int) -> tuple[HorizonBucket, ...]:
    """Next hour, 1–6 h, 6–24 h (cut to the horizon) and the whole horizon, in steps of period_s."""
    edges_h = ((0.0, 1.0, "0-1 h"), (1.0, 6.0, "1-6 h"), (6.0, 24.0, "6-24 h"))
    out = []
    for a_h, b_h, name in edges_h:
        a, b = round(a_h * 3600 / period_s), min(horizon, round(b_h * 3600 / period_s))
        if a < b:
            out.append(HorizonBucket(name, a, b))
    out.append(HorizonBucket("all", 0, horizon))
    return tuple(out)


@dataclass
class StepScores:
    """Running sums per horizon step of one forecast's errors; `metrics` turns a step range into scores."""

    horizon: int
    n: FloatArray = field(init=False)
    pinball: FloatArray = field(init=False)  # (len(QUANTILES), horizon)
    inside: FloatArray = field(init=False)
    abs_err: FloatArray = field(init=False)
    sq_err: FloatArray = field(init=False)
    width: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError("horizon must be >= 1")
        h = self.horizon
        self.n = np.zeros(h)
        self.pinball = np.zeros((len(QUANTILES), h))
        self.inside = np.zeros(h)
        self.abs_err = np.zeros(h)
        self.sq_err = np.zeros(h)
        self.width = np.zeros(h)

    def add(self, y: npt.ArrayLike, p10: npt.ArrayLike, p50: npt.ArrayLike, p90: npt.ArrayLike) -> None:
        """Add forecasts of shape (origins, horizon) (or (horizon,)); NaN actuals are skipped."""
        ya = np.atleast_2d(_arr(y))
        qs = [np.broadcast_to(np.atleast_2d(_arr(q)), ya.shape) for q in (p10, p50, p90)]
        if ya.shape[1] != self.horizon:
            raise ValueError(f"expected {self.horizon} horizon steps, got {ya.shape[1]}")
        ok = np.isfinite(ya) & np.all([np.isfinite(q) for q in qs], axis=0)
        yz = np.where(ok, ya, 0.0)
        q10, q50, q90 = (np.where(ok, q, 0.0) for q in qs)
        self.n += ok.sum(axis=0)
        for i, (tau, q) in enumerate(zip(QUANTILES, (q10, q50, q90), strict=True)):
            self.pinball[i] += _pinball(yz, q, tau).sum(axis=0)
        self.inside += (ok & (yz >= q10) & (yz <= q90)).sum(axis=0)
        self.abs_err += np.abs(yz - q50).sum(axis=0)
        self.sq_err += ((yz - q50) ** 2).sum(axis=0)
        self.width += (q90 - q10).sum(axis=0)

    def add_point(self, y: npt.ArrayLike, p: npt.ArrayLike) -> None:
        """Add a point forecast, scored with every quantile at the point (a band of zero width)."""
        self.add(y, p, p, p)

    def metrics(self, start_step: int = 0, stop_step: int | None = None) -> dict[str, float | int | None]:
        """Scores over steps [start_step, stop_step): per-quantile pinball, its mean, coverage, MAE, RMSE, width."""
        sl = slice(start_step, self.horizon if stop_step is None else stop_step)
        n = float(self.n[sl].sum())
        if n == 0:
            return {"n": 0}
        pin = self.pinball[:, sl].sum(axis=1) / n
        out: dict[str, float | int | None] = {"n": int(n)}
        for tau, v in zip(QUANTILES, pin, strict=True):
            out[f"pinball_p{round(tau * 100)}_kw"] = float(v)
        out["pinball_mean_kw"] = float(pin.mean())
        out["coverage_p10_p90"] = float(self.inside[sl].sum() / n)
        out["mae_p50_kw"] = float(self.abs_err[sl].sum() / n)
        out["rmse_p50_kw"] = float(np.sqrt(self.sq_err[sl].sum() / n))
        out["band_width_kw"] = float(self.width[sl].sum() / n)
        return out

    def per_step(self) -> dict[str, list[float | None]]:
        """Pinball mean, coverage and MAE at every horizon step (None where nothing was scored)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            pin = self.pinball.mean(axis=0) / self.n
            cov = self.inside / self.n
            err = self.abs_err / self.n

        def clean(a: FloatArray) -> list[float | None]:
            return [float(v) if np.isfinite(v) else None for v in a]

        return {"pinball_mean_kw": clean(pin), "coverage_p10_p90": clean(cov), "mae_p50_kw": clean(err)}


def skills(forecast: dict[str, Any], reference: dict[str, Any]) -> dict[str, float | None]:
    """Skill of `forecast` vs `reference` on every loss both have (pinball per quantile and mean, MAE, RMSE)."""
    keys = [k for k in forecast if k.endswith("_kw") and k != "band_width_kw" and k in reference]
    return {k: skill_score(float(forecast[k]), float(reference[k])) for k in keys}
