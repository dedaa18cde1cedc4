"""PV inverter physics: Zhou module model (O'Connell & Keane 2021) on plane-of-array irradiance, with curtailment.

The active power limit is SunSpec's WMaxLimPct: a percentage of nameplate (WMax) that
applies while the limit is enabled (WMaxLim_Ena). The inverter follows the lower of
what the sun offers and the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from profiles.pv import ZHOU_250WP, module_power_w, module_temperature_c

__all__ = ["PvInverter"]


@dataclass
class PvInverter:
    """Sign: p_kw ≤ 0 (generation)."""

    kwp: float = 8.0
    inverter_kw: float = 8.0  # nameplate AC (WMax)
    inverter_eff: float = 0.96
    limit_pct: float = 100.0
    limit_enabled: bool = False
    p_kw: float = 0.0
    p_available_kw: float = 0.0
    t_module_c: float = 20.0
    poa_w_m2: float = 0.0
    e_generated_kwh: float = 0.0

    def step(self, dt_s: float, *, poa_w_m2: float, t_amb_c: float) -> float:
        """Advance one step; return AC power (kW, ≤ 0)."""
        self.poa_w_m2 = max(0.0, poa_w_m2)
        self.t_module_c = float(module_temperature_c(self.poa_w_m2, t_amb_c))  # type: ignore[arg-type]
        p_dc_kw = float(module_power_w(self.poa_w_m2, self.t_module_c)) / ZHOU_250WP.p_stc_w * self.kwp
        self.p_available_kw = min(p_dc_kw * self.inverter_eff, self.inverter_kw)
        cap_kw = self.inverter_kw * self.limit_pct / 100.0 if self.limit_enabled else self.inverter_kw
        p_out = max(0.0, min(self.p_available_kw, cap_kw))
        self.p_kw = -p_out
        self.e_generated_kwh += p_out * dt_s / 3600.0
        return self.p_kw
