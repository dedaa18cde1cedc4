"""Heat pump COP as a function of ambient (source) temperature (the Schutterwald study's time-dependent COP)."""

from __future__ import annotations

import numpy as np

__all__ = ["CARNOT_GRADE", "hp_cop"]

CARNOT_GRADE = 0.45  # share of the Carnot COP a real air-source heat pump reaches


def hp_cop(ambient_t_c: np.ndarray | float, *, supply_t_c: float = 45.0) -> np.ndarray:
    """COP = grade · T_supply / (T_supply − T_ambient) in kelvin, clipped to [1.5, 6].

    Rises monotonically with ambient temperature (≈2.6 at −10 °C, ≈3.8 at 7 °C for 45 °C supply).
    """
    t_amb = np.asarray(ambient_t_c, dtype=float)
    t_sup_k = supply_t_c + 273.15
    lift_k = np.maximum(supply_t_c - t_amb, 1.0)
    out: np.ndarray = np.clip(CARNOT_GRADE * t_sup_k / lift_k, 1.5, 6.0)
    return out
