"""The selection's data: sources × steps with their limits, the request, the feeders, the answer.

Sign convention (`protocols.units`): `increase` raises the site's load (charge, curtail
PV, raise a heat pump's setpoint), `reduce` lowers it (discharge, lower the setpoint,
slow the fan). A source's caps are per step and per direction, as magnitudes, computed
by `flexmodels` (see `cloud_controller.dr.sources`); a battery adds its energy (the SOC
floor and ceiling hold every step) and a heat pump its zone (the comfort band holds every
step, through the RC model), so their caps are only power limits and the physics binds
inside the MILP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from protocols.errors import GridflexError

__all__ = [
    "OBJECTIVES",
    "BatteryPhysics",
    "Feeder",
    "FloatArray",
    "Objective",
    "Selection",
    "SelectionError",
    "SelectionRequest",
    "SiteLimit",
    "Source",
    "ZonePhysics",
]

FloatArray = NDArray[np.float64]
Objective = Literal["flexibility", "financial", "bid_length", "power_peak", "min_cost"]
OBJECTIVES: tuple[Objective, ...] = ("flexibility", "financial", "bid_length", "power_peak", "min_cost")
SourceKind = Literal["battery", "heatpump", "fan", "pv", "load"]


class SelectionError(GridflexError):
    """The selection's input is inconsistent (shapes, signs, unknown sites); names the field."""


def _vec(values: Sequence[float] | FloatArray | float, n: int, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise SelectionError(f"{name}: expected {n} values (one per step), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise SelectionError(f"{name}: values must be finite")
    return arr


@dataclass(frozen=True)
class BatteryPhysics:
    """A battery's energy at the event start (after its active state, `flexmodels.energy_at_start_kwh`)."""

    e_start_kwh: float
    e_min_kwh: float  # the SOC floor, C · SOC_min
    e_max_kwh: float
    eta_charge: float  # η_e
    eta_discharge: float  # η_c


@dataclass(frozen=True)
class ZonePhysics:
    """A heat pump's zone: RC model, COP per step, the zone's baseline path and its comfort band."""

    r_k_per_kw: float
    c_kwh_per_k: float
    cop: Sequence[float] | FloatArray  # per step
    t_base_c: Sequence[float] | FloatArray  # baseline zone temperature at the end of each step
    t_min_c: float
    t_max_c: float


@dataclass(frozen=True)
class Source:
    """One flexible asset of one site: per-step caps [kW] and, where it has them, its physics."""

    site: str
    asset: str
    kind: SourceKind
    reduce_max_kw: Sequence[float] | FloatArray
    increase_max_kw: Sequence[float] | FloatArray
    cost_eur_per_kwh: float = 0.0  # what the site is paid per kWh it delivers (its contract's price)
    partial: bool = True  # False: on/off, the seed's binary Res(t, r) times its full E(t, r)
    battery: BatteryPhysics | None = None
    zone: ZonePhysics | None = None


@dataclass(frozen=True)
class SiteLimit:
    """A contract's cap on one site: total activated kW per step."""

    site: str
    p_max_kw: float


@dataclass(frozen=True)
class Feeder:
    """A group of sites under one grid element, with the kW it can take per step each way.

    `increase_headroom_kw[t]` is how much more load the element carries before its limit
    (0 when it is already overloaded), `reduce_headroom_kw[t]` how much less (reverse flow
    under PV); they come from the congestion forecast. The selection's net activation on
    the feeder's sites stays inside them every step.
    """

    name: str
    sites: frozenset[str]
    increase_headroom_kw: Sequence[float] | FloatArray
    reduce_headroom_kw: Sequence[float] | FloatArray


@dataclass(frozen=True)
class SelectionRequest:
    """What the programme asks: signed kW per step (+ = more load, − = less), and how to choose.

    `value_per_kwh` is the request's price (€/kWh) or the seed's weight W(t) ∈ [0, 2.5]
    per step (`value_is_weight`); `bid_min_kw` is the seed's P_min for `bid_length`;
    `loss_price_eur_per_kwh` values the batteries' charge/discharge losses in `min_cost`.
    """

    target_kw: Sequence[float] | FloatArray
    dt_h: float
    objective: Objective = "flexibility"
    value_per_kwh: Sequence[float] | FloatArray | float = 0.0
    value_is_weight: bool = False
    bid_min_kw: float = 0.0
    loss_price_eur_per_kwh: float = 0.0

    @property
    def n_steps(self) -> int:
        """Steps of the request."""
        return int(np.asarray(self.target_kw).size)


@dataclass(frozen=True)
class Selection:
    """The answer: per source and step the activated kW (signed), delivered and unmet kW per step.

    `status` is `full` when every step's request is met, else `partial` with `unmet_kw`
    saying by how much, per step — never a silent fallback.
    """

    status: Literal["full", "partial"]
    objective: Objective
    objective_value: float
    delivered_kw: FloatArray  # in the request's direction, per step
    unmet_kw: FloatArray
    flex_kw: dict[tuple[str, str], FloatArray]  # (site, asset) -> signed kW per step (+ = more load)
    mip_gap: float
    build_s: float
    solve_s: float
    builder: str
    route: str = "milp"  # `lp`, `lp-certified`, `milp`, `blocks-certified`, `prices-certified`, `lp-warm(-certified)` (docs/dr.md §3)
    notes: tuple[str, ...] = field(default_factory=tuple)
    fallbacks: int = 0  # decompositions tried and not certified (then the whole LP answered, `notes` say why)

    @property
    def sites(self) -> list[str]:
        """Sites with any source activated."""
        return sorted({site for (site, _), kw in self.flex_kw.items() if np.any(np.abs(kw) > 1e-6)})


def validate(
    request: SelectionRequest,
    sources: Sequence[Source],
    limits: Sequence[SiteLimit],
    feeders: Sequence[Feeder],
) -> None:
    """Raise `SelectionError` naming the field when the input is inconsistent."""
    n = _validate_request(request)
    seen: set[tuple[str, str]] = set()
    for s in sources:
        if (s.site, s.asset) in seen:
            raise SelectionError(f"source {s.site}/{s.asset}: listed twice")
        seen.add((s.site, s.asset))
        _validate_source(s, n)
    sites = {s.site for s in sources}
    for lim in limits:
        if lim.site not in sites:
            raise SelectionError(f"site limit {lim.site}: no source at that site")
    for f in feeders:
        _vec(f.increase_headroom_kw, n, f"feeder {f.name}.increase_headroom_kw")
        _vec(f.reduce_headroom_kw, n, f"feeder {f.name}.reduce_headroom_kw")


def _validate_request(request: SelectionRequest) -> int:
    n = request.n_steps
    if n < 1:
        raise SelectionError("target_kw: need at least one step")
    _vec(request.target_kw, n, "target_kw")
    if request.dt_h <= 0:
        raise SelectionError(f"dt_h: must be > 0, got {request.dt_h}")
    values = _vec(request.value_per_kwh, n, "value_per_kwh")
    if request.value_is_weight and (np.any(values < 0) or np.any(values > 2.5)):
        raise SelectionError("value_per_kwh: weights W(t) must be in [0, 2.5]")
    if request.objective not in OBJECTIVES:
        raise SelectionError(f"objective: {request.objective!r} is not one of {OBJECTIVES}")
    return n


def _validate_source(s: Source, n: int) -> None:
    where = f"source {s.site}/{s.asset}"
    for name, caps in (("reduce_max_kw", s.reduce_max_kw), ("increase_max_kw", s.increase_max_kw)):
        if np.any(_vec(caps, n, f"{where}.{name}") < 0):
            raise SelectionError(f"{where}.{name}: caps are magnitudes, must be >= 0")
    if s.zone is not None:
        if np.any(_vec(s.zone.cop, n, f"{where}.zone.cop") <= 0):
            raise SelectionError(f"{where}.zone.cop: must be > 0")
        _vec(s.zone.t_base_c, n, f"{where}.zone.t_base_c")
    if s.battery is not None and not (0 < s.battery.eta_charge <= 1 and 0 < s.battery.eta_discharge <= 1):
        raise SelectionError(f"{where}.battery: efficiencies must be in (0, 1]")
