"""Aggregator demand response (seed 003): programmes and contracts, their store, the multi-building selection.

`contracts` checks a request against each site's contract (pure); `store` keeps contracts
and accepted events on SQLite; `selection` picks sources × steps with a MILP in HiGHS
(pyomo statement). The building models themselves live in the `flexmodels` leaf, shared
with the edge agent. docs/dr.md has the formulas.
"""

from __future__ import annotations

from cloud_controller.dr.contracts import (
    RULES,
    Contract,
    Direction,
    Eligibility,
    Refusal,
    check_request,
    eligible_sites,
)
from cloud_controller.dr.delivery import hold_mean
from cloud_controller.dr.problem import (
    OBJECTIVES,
    BatteryPhysics,
    Feeder,
    Objective,
    Selection,
    SelectionError,
    SelectionRequest,
    SiteLimit,
    Source,
    ZonePhysics,
)
from cloud_controller.dr.selection import SelectionOptions, select
from cloud_controller.dr.sources import battery_source, fan_source, heatpump_source, pv_source, site_limit
from cloud_controller.dr.store import DrStore

__all__ = [
    "OBJECTIVES",
    "RULES",
    "BatteryPhysics",
    "Contract",
    "Direction",
    "DrStore",
    "Eligibility",
    "Feeder",
    "Objective",
    "Refusal",
    "Selection",
    "SelectionError",
    "SelectionOptions",
    "SelectionRequest",
    "SiteLimit",
    "Source",
    "ZonePhysics",
    "battery_source",
    "check_request",
    "eligible_sites",
    "fan_source",
    "heatpump_source",
    "hold_mean",
    "pv_source",
    "select",
    "site_limit",
]
