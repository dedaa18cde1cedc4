"""BMS zone: grey-box 1R1C temperature model and AHU fan ↔ CO2 (O'Connell & Keane 2021 §3.1, §3.2).

Temperature: C dT/dt = (T_out − T)/R + Q_heat + Q_gains, with an ideal heating
controller that holds the setpoint but delivers only the share of heat the plant can
give (`heat_fraction` < 1 while a limited heat pump owes heat: the zone cools).
CO2: V dC/dt = G·n(t) − Q_fan (C − C_out), occupancy n(t) from a household schedule;
fan power follows the affinity law P = P_max · s³. The fan runs in auto (speed from CO2,
as a BMS does) unless a fan speed is commanded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Zone", "occupancy"]

CO2_OUT_PPM = 420.0
CO2_PER_PERSON_M3_H = 0.018  # ≈ 0.005 L/s per seated adult


def occupancy(local_hour: float, weekend: bool) -> float:
    """Share of the household at home (0..1) by local hour: nights full, weekdays empty-ish."""
    h = local_hour % 24.0
    if h < 7.0 or h >= 22.0:
        return 1.0
    if weekend:
        return 0.7
    if h < 8.0:
        return 0.8
    if h < 16.0:
        return 0.25
    return 0.9


@dataclass
class Zone:
    """One thermal zone with an AHU. Temperatures in °C, CO2 in ppm."""

    r_k_per_kw: float = 5.0  # envelope: 4 kW at 20 K difference
    c_kwh_per_k: float = 8.0  # τ = R C = 40 h
    q_max_kw: float = 12.0
    gains_kw: float = 0.3
    setpoint_c: float = 21.0
    t_c: float = 20.5
    volume_m3: float = 300.0
    people: float = 3.0
    fan_flow_max_m3_h: float = 450.0
    fan_p_max_kw: float = 0.25
    fan_cmd_pct: float | None = None  # None = auto (CO2-controlled)
    co2_ppm: float = 600.0
    fan_pct: float = 30.0
    q_heat_kw: float = 0.0
    p_fan_kw: float = 0.0

    def auto_fan_pct(self) -> float:
        """BMS default: 20 % at ≤ 600 ppm rising to 100 % at 1000 ppm (CIBSE limit)."""
        return min(100.0, max(20.0, 20.0 + (self.co2_ppm - 600.0) * 80.0 / 400.0))

    def q_request_kw(self, t_out_c: float) -> float:
        """Heat the ideal controller wants: hold the setpoint, close the error within an hour."""
        q = (self.t_c - t_out_c) / self.r_k_per_kw + self.c_kwh_per_k * (self.setpoint_c - self.t_c) / 1.0
        return min(self.q_max_kw, max(0.0, q - self.gains_kw))

    def step(
        self, dt_s: float, *, t_out_c: float, local_hour: float, weekend: bool, heat_fraction: float = 1.0
    ) -> None:
        """Advance `dt_s` (exact exponential update per sub-step, stable for any dt)."""
        dt_h = dt_s / 3600.0
        if dt_h <= 0.0:
            return
        self.q_heat_kw = self.q_request_kw(t_out_c) * min(1.0, max(0.0, heat_fraction))
        tau_h = self.r_k_per_kw * self.c_kwh_per_k
        t_eq = t_out_c + self.r_k_per_kw * (self.q_heat_kw + self.gains_kw)
        self.t_c = t_eq + (self.t_c - t_eq) * math.exp(-dt_h / tau_h)
        self.fan_pct = (
            self.auto_fan_pct() if self.fan_cmd_pct is None else min(100.0, max(0.0, self.fan_cmd_pct))
        )
        s = self.fan_pct / 100.0
        flow = self.fan_flow_max_m3_h * s
        gen_m3_h = CO2_PER_PERSON_M3_H * self.people * occupancy(local_hour, weekend)
        # Exact solution of V dC/dt = G·1e6 − flow (C − C_out) over the step.
        if flow > 1e-9:
            c_eq = CO2_OUT_PPM + gen_m3_h * 1e6 / flow
            self.co2_ppm = c_eq + (self.co2_ppm - c_eq) * math.exp(-flow * dt_h / self.volume_m3)
        else:
            self.co2_ppm += gen_m3_h * 1e6 / self.volume_m3 * dt_h
        self.p_fan_kw = self.fan_p_max_kw * s**3
