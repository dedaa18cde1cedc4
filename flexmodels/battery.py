"""Battery flexibility (O'Connell & Keane 2021 §3.4, eqs. 10-16), with its active state and limits.

The seed's copy lost its fraction bars, its Δ and its minus signs; reconstructed here:

- (10) general form   f_B = C · SOC · η / Δt_j                        [kW]
- (11) charging       f_B = C · (SOC_max − SOC) / (η_e · Δt_j)
- (12) discharging    f_B = C · (SOC − SOC_min) · η_c / Δt_j
- (13)-(16) active state: between the measurement t_0 and the event's start t_i the battery
  keeps its present power, so the cells' energy at t_i is
  E(t_i) = C · SOC + P_ch · (t_i − t_0) · η_e   (charging), or
  E(t_i) = C · SOC − P_d · (t_i − t_0) / η_c    (discharging),
  and (11)/(12) are applied to E(t_i). The seed writes "(t_0 t_i)" (the minus sign lost:
  t_i − t_0 ≥ 0, the lead time) and adds the correction outside the fraction; it is an
  energy, so it is divided by Δt_j like the rest (kWh / h = kW).

Where this differs from a literal reading of the seed, it follows the physics that
`simulators/devices/battery.py` runs (cells gain P·η_e while charging and lose P/η_c while
discharging): the seed's (11) writes η_e in the numerator, which would be the power that
reaches the cells, not the AC power the grid sees; and (15)/(16) multiply the discharge
correction by η_c where the cells lose P_d/η_c. The unit test runs the simulator through
the lead time and the event at the power computed here and finds it ends on the bound.

Power limits cap f_B (P_d,max, P_c,max). SOC_min is the floor (the seed: "above a set
limit such as 5 %"). Efficiency may be a curve of power (`EfficiencyCurve`): Sakti et al.
found constant efficiencies overstate flexibility by ~10 %; a piecewise-linear η(P) in the
spirit of Gonzalez-Castellanos et al. captures that (the rated η holds at low power, less
at full power), and `discharge_kw`/`charge_kw` solve f = η(f) · E / Δt for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from flexmodels.errors import require

__all__ = [
    "BatteryFlexState",
    "EfficiencyCurve",
    "charge_kw",
    "discharge_kw",
    "energy_at_start_kwh",
    "overstatement_pct",
]

ActiveState = Literal["idle", "charging", "discharging"]


@dataclass(frozen=True)
class EfficiencyCurve:
    """η(P): piecewise linear through (p_kw, eta) points, constant beyond the ends."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        require(len(self.points) >= 1, "points", "need at least one (p_kw, eta) point")
        ps = [p for p, _ in self.points]
        require(all(b > a for a, b in pairwise(ps)), "points", "p_kw must increase")
        require(all(0.0 < e <= 1.0 for _, e in self.points), "points", "every eta must be in (0, 1]")

    @classmethod
    def constant(cls, eta: float) -> EfficiencyCurve:
        """The seed's constant efficiency."""
        return cls(((0.0, eta),))

    def at(self, p_kw: float) -> float:
        """η at AC power `p_kw` (magnitude)."""
        p = abs(p_kw)
        pts = self.points
        if p <= pts[0][0]:
            return pts[0][1]
        for (p0, e0), (p1, e1) in pairwise(pts):
            if p <= p1:
                return e0 + (e1 - e0) * (p - p0) / (p1 - p0)
        return pts[-1][1]


@dataclass(frozen=True)
class BatteryFlexState:
    """What the model needs about one battery at the measurement t_0."""

    capacity_kwh: float
    soc_pct: float
    soc_min_pct: float = 5.0
    soc_max_pct: float = 100.0
    eta_charge: float | EfficiencyCurve = 0.95  # η_e (energy efficiency while charging)
    eta_discharge: float | EfficiencyCurve = 0.95  # η_c (coulombic efficiency while discharging)
    p_charge_max_kw: float = float("inf")
    p_discharge_max_kw: float = float("inf")
    active: ActiveState = "idle"
    p_active_kw: float = 0.0  # magnitude of the present charging or discharging power

    def __post_init__(self) -> None:
        require(self.capacity_kwh > 0.0, "capacity_kwh", f"must be > 0, got {self.capacity_kwh}")
        require(
            0.0 <= self.soc_min_pct <= self.soc_max_pct <= 100.0,
            "soc_min_pct/soc_max_pct",
            f"need 0 <= min <= max <= 100, got {self.soc_min_pct}/{self.soc_max_pct}",
        )
        require(0.0 <= self.soc_pct <= 100.0, "soc_pct", f"must be in [0, 100], got {self.soc_pct}")
        require(self.p_active_kw >= 0.0, "p_active_kw", "is a magnitude, must be >= 0")
        for name, eta in (("eta_charge", self.eta_charge), ("eta_discharge", self.eta_discharge)):
            if isinstance(eta, float | int):
                require(0.0 < eta <= 1.0, name, f"must be in (0, 1], got {eta}")
        require(self.p_charge_max_kw >= 0.0, "p_charge_max_kw", "must be >= 0")
        require(self.p_discharge_max_kw >= 0.0, "p_discharge_max_kw", "must be >= 0")

    def curve(self, which: Literal["charge", "discharge"]) -> EfficiencyCurve:
        """The efficiency of one direction as a curve (a constant is a one-point curve)."""
        eta = self.eta_charge if which == "charge" else self.eta_discharge
        return eta if isinstance(eta, EfficiencyCurve) else EfficiencyCurve.constant(float(eta))


def energy_at_start_kwh(state: BatteryFlexState, lead_h: float) -> float:
    """Cells' energy at the event start t_i = t_0 + lead_h (eqs. 13-16's correction), clipped to [0, C]."""
    require(lead_h >= 0.0, "lead_h", f"t_i - t_0 must be >= 0, got {lead_h}")
    e = state.capacity_kwh * state.soc_pct / 100.0
    p = state.p_active_kw
    if state.active == "charging" and p > 0.0:
        e_max = state.capacity_kwh * state.soc_max_pct / 100.0
        if e < e_max:
            e = min(e_max, e + p * lead_h * state.curve("charge").at(p))
    elif state.active == "discharging" and p > 0.0:
        e_min = state.capacity_kwh * state.soc_min_pct / 100.0
        if e > e_min:
            e = max(e_min, e - p * lead_h / state.curve("discharge").at(p))
    return min(max(e, 0.0), state.capacity_kwh)


def _solve_fixed_point(
    energy_kwh: float, duration_h: float, curve: EfficiencyCurve, *, divide: bool
) -> float:
    """The AC power f with f = η(f)·E/Δt (discharge) or f = E/(η(f)·Δt) (charge), by bisection.

    g(f) = f − E·η(f)/Δt is increasing when η falls with power (the physical case) and for a
    constant η, so bisection on [0, E/(η_min·Δt)] finds its one root.
    """
    if energy_kwh <= 0.0:
        return 0.0

    def target(f: float) -> float:
        eta = curve.at(f)
        return energy_kwh / (eta * duration_h) if divide else energy_kwh * eta / duration_h

    lo, hi = 0.0, energy_kwh / (min(e for _, e in curve.points) * duration_h) + 1e-9
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if mid < target(mid):
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def discharge_kw(state: BatteryFlexState, duration_h: float, *, lead_h: float = 0.0) -> float:
    """Eq. (12) with (13)/(15): the constant AC discharge power the battery holds for `duration_h`.

    This is flexibility to reduce load (the seed's "negative flexibility"), as a magnitude.
    """
    require(duration_h > 0.0, "duration_h", f"Δt_j must be > 0, got {duration_h}")
    e_min = state.capacity_kwh * state.soc_min_pct / 100.0
    available = max(0.0, energy_at_start_kwh(state, lead_h) - e_min)
    f = _solve_fixed_point(available, duration_h, state.curve("discharge"), divide=False)
    return min(f, state.p_discharge_max_kw)


def charge_kw(state: BatteryFlexState, duration_h: float, *, lead_h: float = 0.0) -> float:
    """Eq. (11) with (14)/(16): the constant AC charge power the battery absorbs for `duration_h`.

    This is flexibility to increase load (the seed's "positive flexibility"), as a magnitude.
    """
    require(duration_h > 0.0, "duration_h", f"Δt_j must be > 0, got {duration_h}")
    e_max = state.capacity_kwh * state.soc_max_pct / 100.0
    room = max(0.0, e_max - energy_at_start_kwh(state, lead_h))
    f = _solve_fixed_point(room, duration_h, state.curve("charge"), divide=True)
    return min(f, state.p_charge_max_kw)


def overstatement_pct(constant_kw: float, curve_kw: float) -> float:
    """How much a constant-efficiency answer overstates the curve's, in percent of the curve's."""
    return 100.0 * (constant_kw - curve_kw) / curve_kw if curve_kw > 0 else float("inf")
