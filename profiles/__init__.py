"""Pure, vectorised, seeded, offline profile generators shared by the simulators and the study.

Importable without sockets. Default step 15 min; every function takes a UTC
`pd.DatetimeIndex` (see `time_index`) and returns numpy arrays, one row per step.
"""

from __future__ import annotations

from profiles.ev import EvFleet, EvSession, ev_demand, ev_sessions
from profiles.load import h0_kw_per_kwh, heat_demand_kw, household_load_kw
from profiles.pv import (
    ZHOU_250WP,
    ZhouModule,
    clear_sky_index,
    module_power_w,
    module_temperature_c,
    poa_irradiance,
    pv_kw_per_kwp,
)
from profiles.thermal import hp_cop
from profiles.weather import ambient_temperature_c, time_index

__all__ = [
    "ZHOU_250WP",
    "EvFleet",
    "EvSession",
    "ZhouModule",
    "ambient_temperature_c",
    "clear_sky_index",
    "ev_demand",
    "ev_sessions",
    "h0_kw_per_kwh",
    "heat_demand_kw",
    "household_load_kw",
    "hp_cop",
    "module_power_w",
    "module_temperature_c",
    "poa_irradiance",
    "pv_kw_per_kwp",
    "time_index",
]
