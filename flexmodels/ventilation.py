"""AHU fan ↔ CO2 flexibility (O'Connell & Keane 2021 §3.1, eqs. 1-2), with a dynamic zone CO2 balance.

The seed (its minus sign lost in the copy, reconstructed):

- (1) f_F = P_c − P_p     fan flexibility [kW]: power at the current speed minus the
  predicted power at the event's speed;
- (2) P_p = f(CO2) · s    predicted fan power as a function of CO2 and the speed setpoint s.

Here f(CO2) is physical rather than fitted: the zone's CO2 balance (well-mixed zone, the
same one `simulators/devices/zone.py` runs)

    V dC/dt = G · 10⁶ − Q(s) · (C − C_out),   Q(s) = Q_max · s

with V the zone volume [m³], G the occupants' CO2 generation [m³/h], Q the fan's outdoor-air
flow [m³/h]. For a speed held over the event its exact solution is

    C(t) = C_eq + (C_0 − C_eq) · exp(−Q t / V),   C_eq = C_out + G · 10⁶ / Q,

monotone from C_0 towards C_eq, so the highest CO2 in the window is max(C_0, C(Δt)).
A short event may therefore go far below the steady-state speed (which only asks
C_eq ≤ limit): the zone's air is a CO2 store. Fan power follows the affinity law
P = P_max · s³. The constraint is CO2 ≤ 1000 ppm (CIBSE Guide B2), the default `limit_ppm`.
Less reduction than the maximum always means more flow and less CO2, so any share of
the maximum is safe too (a partial source in the selection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flexmodels.errors import require

__all__ = [
    "CO2_LIMIT_PPM",
    "CO2_OUT_PPM",
    "FanZone",
    "co2_after_ppm",
    "co2_peak_ppm",
    "fan_power_kw",
    "fan_reduce_kw",
    "min_fan_fraction",
    "steady_co2_ppm",
]

CO2_LIMIT_PPM = 1000.0  # CIBSE Guide B2 (the seed's ref. 30)
CO2_OUT_PPM = 420.0


@dataclass(frozen=True)
class FanZone:
    """One zone and its AHU fan, as the model sees them."""

    volume_m3: float
    co2_gen_m3_h: float  # occupants' CO2 generation (people × ~0.018 m³/h)
    fan_flow_max_m3_h: float
    fan_p_max_kw: float
    co2_out_ppm: float = CO2_OUT_PPM

    def __post_init__(self) -> None:
        require(self.volume_m3 > 0.0, "volume_m3", "must be > 0")
        require(self.co2_gen_m3_h >= 0.0, "co2_gen_m3_h", "must be >= 0")
        require(self.fan_flow_max_m3_h > 0.0, "fan_flow_max_m3_h", "must be > 0")
        require(self.fan_p_max_kw >= 0.0, "fan_p_max_kw", "must be >= 0")


def fan_power_kw(zone: FanZone, s: float) -> float:
    """Affinity law: P = P_max · s³ (s the speed as a fraction of full)."""
    require(0.0 <= s <= 1.0, "s", f"fan speed fraction must be in [0, 1], got {s}")
    return zone.fan_p_max_kw * s**3


def steady_co2_ppm(zone: FanZone, s: float) -> float:
    """C_eq at speed s (infinite with the fan off and people inside)."""
    flow = zone.fan_flow_max_m3_h * s
    if flow <= 0.0:
        return math.inf if zone.co2_gen_m3_h > 0.0 else zone.co2_out_ppm
    return zone.co2_out_ppm + zone.co2_gen_m3_h * 1e6 / flow


def co2_after_ppm(zone: FanZone, co2_now_ppm: float, s: float, duration_h: float) -> float:
    """C(Δt) for the speed s held over `duration_h` (the exact solution above)."""
    require(duration_h >= 0.0, "duration_h", "must be >= 0")
    flow = zone.fan_flow_max_m3_h * s
    if flow <= 1e-12:
        return co2_now_ppm + zone.co2_gen_m3_h * 1e6 / zone.volume_m3 * duration_h
    c_eq = steady_co2_ppm(zone, s)
    return c_eq + (co2_now_ppm - c_eq) * math.exp(-flow * duration_h / zone.volume_m3)


def co2_peak_ppm(zone: FanZone, co2_now_ppm: float, s: float, duration_h: float) -> float:
    """Highest CO2 over the window: the path is monotone, so max(C_0, C(Δt))."""
    return max(co2_now_ppm, co2_after_ppm(zone, co2_now_ppm, s, duration_h))


def min_fan_fraction(
    zone: FanZone,
    co2_now_ppm: float,
    s_now: float,
    duration_h: float,
    *,
    limit_ppm: float = CO2_LIMIT_PPM,
    s_min: float = 0.0,
) -> float:
    """The lowest speed in [s_min, s_now] that keeps CO2 ≤ limit over the whole event.

    C(Δt) falls as s rises, so bisection finds it. If even s_now breaks the limit (the
    zone is already above it) the fan keeps s_now: no reduction is offered.
    """
    require(
        0.0 <= s_min <= s_now <= 1.0, "s_min/s_now", f"need 0 <= s_min <= s_now <= 1, got {s_min}/{s_now}"
    )
    require(duration_h > 0.0, "duration_h", "must be > 0")
    if co2_peak_ppm(zone, co2_now_ppm, s_min, duration_h) <= limit_ppm:
        return s_min
    if co2_peak_ppm(zone, co2_now_ppm, s_now, duration_h) > limit_ppm:
        return s_now
    lo, hi = s_min, s_now  # lo breaks the limit, hi keeps it
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if co2_peak_ppm(zone, co2_now_ppm, mid, duration_h) <= limit_ppm:
            hi = mid
        else:
            lo = mid
    return hi


def fan_reduce_kw(
    zone: FanZone,
    co2_now_ppm: float,
    s_now: float,
    duration_h: float,
    *,
    limit_ppm: float = CO2_LIMIT_PPM,
    s_min: float = 0.0,
) -> float:
    """Eq. (1): f_F = P_c − P_p, the fan power the event may remove with CO2 ≤ limit throughout."""
    s_event = min_fan_fraction(zone, co2_now_ppm, s_now, duration_h, limit_ppm=limit_ppm, s_min=s_min)
    return fan_power_kw(zone, s_now) - fan_power_kw(zone, s_event)
