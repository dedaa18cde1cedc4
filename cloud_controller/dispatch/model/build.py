"""Build a dispatch Problem from a region (grid + site→bus) and per-site assets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cloud_controller.dispatch.model.problem import FloatArray, Problem, Weights
from cloud_controller.grid.radial import RadialGrid


@dataclass(frozen=True)
class SiteAssets:
    """Per-site flexible assets (arrays of length n_sites; 0 means none)."""

    bat_e_kwh: FloatArray
    bat_p_kw: FloatArray
    hp_p_max_kw: FloatArray  # electric
    ts_e_kwh: FloatArray  # thermal store (only with a heat pump)

    @staticmethod
    def none(n_sites: int) -> SiteAssets:
        """No flexible assets at any of `n_sites` sites."""
        z = np.zeros(n_sites)
        return SiteAssets(z, z.copy(), z.copy(), z.copy())


def build_problem(
    grid: RadialGrid,
    site_bus: np.ndarray,
    assets: SiteAssets,
    *,
    horizon: int = 1,
    dt_h: float = 0.25,
    weights: Weights | None = None,
    bat_soc_min: float = 0.0,
    eta_c: float = 0.95,
    eta_d: float = 0.95,
    ts_loss_per_step: float = 0.0,
    enforce_voltage: bool = True,
    site_pv: np.ndarray | None = None,
) -> Problem:
    """One battery per site with bat_e_kwh > 0, one heat pump per site with hp_p_max_kw > 0."""
    bat = np.flatnonzero(assets.bat_e_kwh > 0)
    hp = np.flatnonzero(assets.hp_p_max_kw > 0)
    w = weights or Weights()
    w.check(eta_c=eta_c, eta_d=eta_d)
    return Problem(
        grid=grid,
        site_bus=np.asarray(site_bus, dtype=np.int64),
        horizon=horizon,
        dt_h=dt_h,
        bat_site=bat.astype(np.int64),
        bat_e_max_kwh=assets.bat_e_kwh[bat].astype(float),
        bat_e_min_kwh=assets.bat_e_kwh[bat] * bat_soc_min,
        bat_p_max_kw=assets.bat_p_kw[bat].astype(float),
        bat_eta_c=eta_c,
        bat_eta_d=eta_d,
        hp_site=hp.astype(np.int64),
        hp_p_max_kw=assets.hp_p_max_kw[hp].astype(float),
        ts_e_max_kwh=assets.ts_e_kwh[hp].astype(float),
        ts_loss_per_step=ts_loss_per_step,
        enforce_voltage=enforce_voltage,
        weights=w,
        site_pv=None if site_pv is None else np.asarray(site_pv, dtype=bool),
    )
