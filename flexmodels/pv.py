"""PV output and its only flexibility, curtailment (O'Connell & Keane 2021 §3.3, Zhou et al. 2007).

The seed's eqs. (5)-(6), their fraction bars and minus signs lost in the copy,
reconstructed from Zhou, Yang & Fang, *Applied Energy* 84 (2007) 1187 (the seed's ref. 47):

    f_PV = P_A = N_s · N_p · P_M

    P_M = FF · V_oc · I_sc, with
      FF   = (v_oc − ln(v_oc + 0.72)) / (1 + v_oc) · (1 − R_s / (V_oc / I_sc))
      V_oc = V_oc0 / (1 + β · ln(G0 / G)) · (T0 / T)^γ
      I_sc = I_sc0 · (G / G0)^α
      v_oc = V_oc / (n_MPP · N_cells · k T / q)      (normalised to the thermal voltage)

(the fill factor is Green's empirical one). Parameters from the seed: α = 1.21,
β = 0.058, γ = 1.15, n_MPP = 1.17, R_s = 0.012 Ω; the Solarworld SW 250 datasheet:
V_oc0 = 37.8 V, I_sc0 = 8.28 A, G0 = 1000 W/m², T0 = 25 °C, 60 cells in series, 250 Wp.
Temperatures enter in kelvin. The model gives 254 W at standard conditions (1.7 % over
the nameplate: the fit is Zhou's, not the module's). N_cells is not in the seed's
formula; with v_oc per module (no N_cells) the fill factor would be 0.99, which no module
has, so the per-cell thermal voltage is meant.

PV is not controllable except by curtailment: it can give up to P_A of load increase
(less feed-in) and nothing to reduce load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flexmodels.errors import require

__all__ = ["PvModule", "pv_array_kw", "pv_module_w"]

K_BOLTZMANN = 1.380649e-23
Q_ELECTRON = 1.602176634e-19
KELVIN = 273.15


@dataclass(frozen=True)
class PvModule:
    """Module parameters; defaults are the seed's (Zhou's fit, Solarworld SW 250 datasheet)."""

    v_oc0_v: float = 37.8
    i_sc0_a: float = 8.28
    g0_w_m2: float = 1000.0
    t0_c: float = 25.0
    alpha: float = 1.21
    beta: float = 0.058
    gamma: float = 1.15
    n_mpp: float = 1.17
    r_s_ohm: float = 0.012
    cells_in_series: int = 60


def pv_module_w(module: PvModule, g_w_m2: float, t_module_c: float) -> float:
    """P_M [W] at irradiance G [W/m²] in the module's plane and module temperature [°C]."""
    require(g_w_m2 >= 0.0, "g_w_m2", f"must be >= 0, got {g_w_m2}")
    require(t_module_c > -KELVIN, "t_module_c", "below absolute zero")
    if g_w_m2 <= 0.0:
        return 0.0
    t_k = t_module_c + KELVIN
    t0_k = module.t0_c + KELVIN
    v_oc = (
        module.v_oc0_v
        / (1.0 + module.beta * math.log(module.g0_w_m2 / g_w_m2))
        * (t0_k / t_k) ** module.gamma
    )
    i_sc = module.i_sc0_a * (g_w_m2 / module.g0_w_m2) ** module.alpha
    if v_oc <= 0.0 or i_sc <= 0.0:
        return 0.0
    v_t = module.n_mpp * module.cells_in_series * K_BOLTZMANN * t_k / Q_ELECTRON
    voc_n = v_oc / v_t
    ff0 = (voc_n - math.log(voc_n + 0.72)) / (1.0 + voc_n)
    ff = ff0 * (1.0 - module.r_s_ohm / (v_oc / i_sc))
    return max(0.0, float(ff * v_oc * i_sc))


def pv_array_kw(
    module: PvModule, g_w_m2: float, t_module_c: float, *, n_series: int, n_parallel: int
) -> float:
    """P_A = N_s · N_p · P_M, in kW (as a magnitude; on the grid it is negative load)."""
    require(n_series >= 1 and n_parallel >= 1, "n_series/n_parallel", "must be >= 1")
    return n_series * n_parallel * pv_module_w(module, g_w_m2, t_module_c) / 1000.0
