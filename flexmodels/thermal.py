"""Heat pump flexibility through the zone's grey-box RC model and COP (O'Connell & Keane 2021 §3.2).

The control variable is the indoor setpoint (the seed's recommendation). The zone is the
1R1C model `simulators/devices/zone.py` runs (the simplest of Bacher & Madsen's grey-box
family, the seed's ref. 45):

    C dT/dt = (T_out − T)/R + Q_hp + Q_gains

whose exact solution for heat held constant over Δt is

    T(Δt) = T_eq + (T_0 − T_eq) · a,   a = exp(−Δt/τ),  τ = R·C,  T_eq = T_out + R·(Q_hp + Q_gains).

The seed's eqs. (7)-(9), their fraction bars lost in the copy: COP = Q / P, and the
thermal flexibility f_T = x · P = ΔQ / COP — the change of heat the setpoint change
causes, turned into electric power by the COP. Here ΔQ is the difference between the
heat that holds the present setpoint (Q_base = (T_0 − T_out)/R − Q_gains) and the heat
that puts the zone exactly on the comfort band's edge at the event's end (solving the
exact solution for Q_hp; inside the band all along, since the path is monotone). The
COP comes from a lookup table over outdoor temperature (the seed: "power curves in
lookup table format"), `cop_from_table`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from flexmodels.comfort import ComfortBand
from flexmodels.errors import require

__all__ = [
    "HeatPumpFlex",
    "RcZone",
    "cop_from_table",
    "heat_for_end_temperature_kw",
    "heat_to_hold_kw",
    "heatpump_flex_kw",
    "zone_temperature_after_c",
]


@dataclass(frozen=True)
class RcZone:
    """A 1R1C zone: R [K/kW], C [kWh/K], internal/solar gains [kW]."""

    r_k_per_kw: float
    c_kwh_per_k: float
    gains_kw: float = 0.0

    def __post_init__(self) -> None:
        require(self.r_k_per_kw > 0.0, "r_k_per_kw", "must be > 0")
        require(self.c_kwh_per_k > 0.0, "c_kwh_per_k", "must be > 0")

    @property
    def tau_h(self) -> float:
        """Time constant R·C [h]."""
        return self.r_k_per_kw * self.c_kwh_per_k

    def decay(self, duration_h: float) -> float:
        """The decay factor a = exp(−Δt/τ) over `duration_h`."""
        return math.exp(-duration_h / self.tau_h)


def zone_temperature_after_c(
    zone: RcZone, t_now_c: float, t_out_c: float, q_hp_kw: float, duration_h: float
) -> float:
    """T(Δt) with the heat pump's heat `q_hp_kw` held over `duration_h`."""
    t_eq = t_out_c + zone.r_k_per_kw * (q_hp_kw + zone.gains_kw)
    return t_eq + (t_now_c - t_eq) * zone.decay(duration_h)


def heat_to_hold_kw(zone: RcZone, t_c: float, t_out_c: float) -> float:
    """Heat that keeps the zone at `t_c` (the steady state): (T − T_out)/R − gains, not below 0."""
    return max(0.0, (t_c - t_out_c) / zone.r_k_per_kw - zone.gains_kw)


def heat_for_end_temperature_kw(
    zone: RcZone, t_now_c: float, t_out_c: float, t_end_c: float, duration_h: float
) -> float:
    """The constant heat that brings the zone from `t_now_c` to `t_end_c` in `duration_h` (may be < 0)."""
    require(duration_h > 0.0, "duration_h", "must be > 0")
    a = zone.decay(duration_h)
    t_eq = (t_end_c - t_now_c * a) / (1.0 - a)
    return (t_eq - t_out_c) / zone.r_k_per_kw - zone.gains_kw


def cop_from_table(t_out_c: float, table: Sequence[tuple[float, float]]) -> float:
    """COP at `t_out_c` by linear interpolation in (t_out_c, cop) rows (constant beyond the ends)."""
    require(len(table) >= 1, "table", "need at least one (t_out_c, cop) row")
    rows = sorted(table)
    require(all(cop > 0.0 for _, cop in rows), "table", "every COP must be > 0")
    if t_out_c <= rows[0][0]:
        return rows[0][1]
    for (t0, c0), (t1, c1) in pairwise(rows):
        if t_out_c <= t1:
            return c0 + (c1 - c0) * (t_out_c - t0) / (t1 - t0)
    return rows[-1][1]


@dataclass(frozen=True)
class HeatPumpFlex:
    """What the heat pump can give over the event: electric kW reduce/increase against its base."""

    p_base_kw: float
    reduce_kw: float
    increase_kw: float
    q_base_kw: float


def heatpump_flex_kw(
    zone: RcZone,
    *,
    t_now_c: float,
    t_out_c: float,
    cop: float,
    p_max_kw: float,
    band: ComfortBand,
    duration_h: float,
) -> HeatPumpFlex:
    """f_T = ΔQ / COP both ways for an event of `duration_h`, the zone at its setpoint `t_now_c`.

    Reduce: the setpoint drops to the band's lower edge; the heat pump may give up heat
    down to what ends the event on that edge (or switch off if the zone coasts above it).
    Increase: the setpoint rises to the upper edge, the extra heat capped by the rating.
    """
    require(cop > 0.0, "cop", f"must be > 0, got {cop}")
    require(p_max_kw >= 0.0, "p_max_kw", "must be >= 0")
    q_max = p_max_kw * cop
    q_base = min(q_max, heat_to_hold_kw(zone, t_now_c, t_out_c))
    if band.contains(t_now_c):
        q_low = max(0.0, heat_for_end_temperature_kw(zone, t_now_c, t_out_c, band.t_min_c, duration_h))
        q_high = min(q_max, heat_for_end_temperature_kw(zone, t_now_c, t_out_c, band.t_max_c, duration_h))
        reduce_kw = max(0.0, q_base - q_low) / cop
        increase_kw = max(0.0, q_high - q_base) / cop
    else:
        reduce_kw = increase_kw = 0.0  # outside the band already: no flexibility offered
    return HeatPumpFlex(
        p_base_kw=q_base / cop, reduce_kw=reduce_kw, increase_kw=increase_kw, q_base_kw=q_base
    )
