"""Units and the sign convention, written once.

Sign convention (the grid's view, everywhere in GridFlex): positive power is
consumption from the grid or charging (load); negative power is generation or
feed-in (discharging a battery into the house counts as negative load).
Names carry their unit as a suffix: `p_kw`, `e_kwh`, `soc_pct`, `t_c`, `dt_s`.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "HOURS_PER_SECOND",
    "SIGN_CONSUMPTION",
    "SIGN_GENERATION",
    "UNITS",
    "energy_kwh",
    "kw_to_w",
    "pct_to_fraction",
    "to_grid_sign",
    "w_to_kw",
]

SIGN_CONSUMPTION: Final = 1.0
SIGN_GENERATION: Final = -1.0
HOURS_PER_SECOND: Final = 1.0 / 3600.0

#: Units a sample may carry, mapped to a human name (the contract accepts any short string;
#: these are the ones GridFlex itself produces).
UNITS: Final[dict[str, str]] = {
    "kW": "kilowatt (active power, + = load)",
    "kvar": "kilovar (reactive power)",
    "kWh": "kilowatt-hour",
    "pct": "percent",
    "degC": "degree Celsius",
    "ppm": "parts per million (CO2)",
    "A": "ampere",
    "V": "volt",
    "Hz": "hertz",
    "bool": "0/1",
    "": "dimensionless",
}


def to_grid_sign(p_kw: float, *, is_generation: bool) -> float:
    """Map a magnitude reported by a device to the GridFlex sign convention.

    A PV inverter reports its output as a positive number; on the wire it is negative.
    """
    magnitude = abs(p_kw)
    return SIGN_GENERATION * magnitude if is_generation else SIGN_CONSUMPTION * magnitude


def w_to_kw(p_w: float) -> float:
    """Watts to kilowatts."""
    return p_w / 1000.0


def kw_to_w(p_kw: float) -> float:
    """Kilowatts to watts."""
    return p_kw * 1000.0


def energy_kwh(p_kw: float, dt_s: float) -> float:
    """Energy of constant power `p_kw` over `dt_s` seconds."""
    return p_kw * dt_s * HOURS_PER_SECOND


def pct_to_fraction(value_pct: float) -> float:
    """A percentage (0-100) as a fraction (0-1)."""
    return value_pct / 100.0
