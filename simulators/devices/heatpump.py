"""Heat pump + hot-water/thermal tank (the Schutterwald study §2.2, O'Connell & Keane (2021) §3.2).

The heat pump charges a tank; the building draws its heat demand from the tank.
1000 L of water over 10 K hold 1000 × 4.18 × 10 / 3600 ≈ 11.6 kWh. The COP follows the
ambient temperature (`profiles.hp_cop`). A power limit (§14a, a DSO signal)
caps the electric power: the tank drains, and once it is empty the unmet heat becomes a
deficit (the house cools) that the heat pump pays back when the limit is lifted — the
"cold load pickup" the Schutterwald study observes. Energy is deferred, not deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from profiles.thermal import hp_cop

__all__ = ["WATER_KWH_PER_L_K", "HeatPump"]

WATER_KWH_PER_L_K = 4.18 / 3600.0  # kJ/(kg K) → kWh per litre and kelvin


@dataclass
class HeatPump:
    """Sign: p_kw ≥ 0 (load). Thermostat with hysteresis on the tank temperature."""

    p_max_kw: float = 9.0  # electric
    tank_l: float = 1000.0
    t_min_c: float = 45.0  # tank empty (useful heat exhausted)
    t_max_c: float = 55.0  # tank full
    t_on_c: float = 48.0  # thermostat switches on below this
    supply_t_c: float = 45.0  # for the COP
    p_limit_kw: float | None = None  # electric power limit (Modbus); None = unlimited
    p_limit_bms_kw: float | None = None  # limit commanded through the BMS (BACnet); the lower one rules
    t_tank_c: float = 50.0
    running: bool = False
    p_kw: float = 0.0
    cop: float = 3.0
    q_heat_kw: float = 0.0  # heat delivered by the heat pump
    q_demand_kw: float = 0.0  # heat the building asked for in the last step
    e_deficit_kwh: float = 0.0  # heat the building did not get yet (owed)
    e_el_kwh: float = 0.0
    e_heat_kwh: float = 0.0
    e_demand_kwh: float = 0.0

    @property
    def tank_kwh(self) -> float:
        """Usable capacity between t_min and t_max (11.6 kWh for 1000 L over 10 K)."""
        return self.tank_l * WATER_KWH_PER_L_K * (self.t_max_c - self.t_min_c)

    @property
    def e_tank_kwh(self) -> float:
        """Usable heat in the tank now."""
        return self.tank_l * WATER_KWH_PER_L_K * (self.t_tank_c - self.t_min_c)

    @property
    def p_cap_kw(self) -> float:
        """Electric power the heat pump may draw now (its rating under the limit)."""
        cap = self.p_max_kw
        for limit in (self.p_limit_kw, self.p_limit_bms_kw):
            if limit is not None:
                cap = min(cap, max(0.0, limit))
        return cap

    def step(self, dt_s: float, *, t_amb_c: float, q_demand_kw: float) -> float:
        """Advance `dt_s`; the building draws `q_demand_kw` of heat. Return electric power (kW)."""
        dt_h = dt_s / 3600.0
        if dt_h <= 0.0:
            return self.p_kw
        self.cop = float(hp_cop(t_amb_c, supply_t_c=self.supply_t_c))
        self.q_demand_kw = max(0.0, q_demand_kw)
        demand_kwh = self.q_demand_kw * dt_h
        self.e_demand_kwh += demand_kwh
        if self.t_tank_c < self.t_on_c or self.e_deficit_kwh > 1e-9:
            self.running = True
        # Heat that would fill the tank and pay back the deficit this step.
        need_kwh = self.e_deficit_kwh + demand_kwh + (self.tank_kwh - self.e_tank_kwh)
        q_kw = 0.0
        if self.running:
            q_kw = min(self.p_cap_kw * self.cop, max(0.0, need_kwh) / dt_h)
        e_in = q_kw * dt_h
        # Heat goes to the tank; the building draws demand plus owed heat from it.
        e_tank = self.e_tank_kwh + e_in
        owed = self.e_deficit_kwh + demand_kwh
        drawn = min(owed, max(0.0, e_tank))
        e_tank -= drawn
        self.e_deficit_kwh = owed - drawn
        e_tank = min(e_tank, self.tank_kwh)
        self.t_tank_c = self.t_min_c + e_tank / (self.tank_l * WATER_KWH_PER_L_K)
        if self.t_tank_c >= self.t_max_c - 1e-6 and self.e_deficit_kwh <= 1e-9:
            self.running = False
        self.q_heat_kw = q_kw
        self.p_kw = q_kw / self.cop
        self.e_heat_kwh += e_in
        self.e_el_kwh += self.p_kw * dt_h
        return self.p_kw
