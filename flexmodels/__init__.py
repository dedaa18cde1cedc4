"""Building flexibility models (O'Connell & Keane 2021 §3): pure functions, one implementation for both sides.

The edge agent's envelope and the cloud's DR selection both ask "how much can this asset
give over this event?"; they ask this package, a leaf (it imports only `protocols`,
numpy and the standard library), so the answer is the same on both sides.
Modules: `battery` (eqs. 10-16), `ventilation` (AHU fan ↔ CO2, eqs. 1-2), `thermal`
(heat pump via the RC zone and COP, eqs. 7-9), `comfort` (adaptive bands, EN 15251 /
ASHRAE 55), `pv` (eqs. 5-6). Flexibility is a magnitude per direction: `reduce` lowers
the site's load, `increase` raises it (the sign convention of `protocols.units`).
"""

from __future__ import annotations

from flexmodels.battery import (
    BatteryFlexState,
    EfficiencyCurve,
    charge_kw,
    discharge_kw,
    energy_at_start_kwh,
    overstatement_pct,
)
from flexmodels.comfort import ComfortBand, adaptive_band, running_mean_outdoor_c
from flexmodels.errors import FlexModelError
from flexmodels.pv import PvModule, pv_array_kw, pv_module_w
from flexmodels.thermal import (
    HeatPumpFlex,
    RcZone,
    cop_from_table,
    heat_for_end_temperature_kw,
    heat_to_hold_kw,
    heatpump_flex_kw,
    zone_temperature_after_c,
)
from flexmodels.ventilation import (
    CO2_LIMIT_PPM,
    FanZone,
    co2_after_ppm,
    co2_peak_ppm,
    fan_power_kw,
    fan_reduce_kw,
    min_fan_fraction,
    steady_co2_ppm,
)

__all__ = [
    "CO2_LIMIT_PPM",
    "BatteryFlexState",
    "ComfortBand",
    "EfficiencyCurve",
    "FanZone",
    "FlexModelError",
    "HeatPumpFlex",
    "PvModule",
    "RcZone",
    "adaptive_band",
    "charge_kw",
    "co2_after_ppm",
    "co2_peak_ppm",
    "cop_from_table",
    "discharge_kw",
    "energy_at_start_kwh",
    "fan_power_kw",
    "fan_reduce_kw",
    "heat_for_end_temperature_kw",
    "heat_to_hold_kw",
    "heatpump_flex_kw",
    "min_fan_fraction",
    "overstatement_pct",
    "pv_array_kw",
    "pv_module_w",
    "running_mean_outdoor_c",
    "steady_co2_ppm",
    "zone_temperature_after_c",
]
