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
from cloud_controller.dr.store import DrStore

__all__ = [
    "RULES",
    "Contract",
    "Direction",
    "DrStore",
    "Eligibility",
    "Refusal",
    "check_request",
    "eligible_sites",
]
