"""Battery physics (O'Connell & Keane 2021 §3.4): SOC bookkeeping with separate charge/discharge efficiencies.

ηe (energy efficiency while charging) and ηc (coulombic efficiency while discharging)
differ because the charging voltage exceeds the discharging voltage. Whatever setpoint
is written, the SOC stays inside [soc_min, soc_max] ⊂ [0, 100]: the power is cut so the
step ends exactly on the bound.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Battery"]


@dataclass
class Battery:
    """A battery system. Sign: p_kw > 0 charges (load), p_kw < 0 discharges (feed-in)."""

    capacity_kwh: float = 10.0
    p_charge_max_kw: float = 5.0
    p_discharge_max_kw: float = 5.0
    eta_charge: float = 0.95  # ηe, grid → cells while charging
    eta_discharge: float = 0.95  # ηc, cells → grid while discharging
    soc_min_pct: float = 5.0
    soc_max_pct: float = 100.0
    self_discharge_pct_per_day: float = 0.1
    soc_pct: float = 50.0
    setpoint_kw: float = 0.0  # requested power, same sign as p_kw
    remote: bool = False  # False: hold the site's grid power at grid_target_kw; True: follow setpoint_kw
    #: Grid-power target of the local control (load-positive kW at the site's meter); 0 is plain
    #: self-consumption, the owner's default. A controller sets it to make the inverter's own
    #: fast loop track a site power plan instead of a fixed battery power.
    grid_target_kw: float = 0.0
    p_kw: float = 0.0  # power actually exchanged with the grid in the last step
    e_charged_kwh: float = 0.0  # AC energy in, cumulative
    e_discharged_kwh: float = 0.0  # AC energy out, cumulative

    def __post_init__(self) -> None:
        if not 0.0 <= self.soc_min_pct <= self.soc_max_pct <= 100.0:
            raise ValueError("need 0 <= soc_min_pct <= soc_max_pct <= 100")
        if not (0.0 < self.eta_charge <= 1.0 and 0.0 < self.eta_discharge <= 1.0):
            raise ValueError("efficiencies must be in (0, 1]")
        self.soc_pct = min(max(self.soc_pct, 0.0), 100.0)

    @property
    def e_kwh(self) -> float:
        """Energy stored in the cells."""
        return self.capacity_kwh * self.soc_pct / 100.0

    def step(self, dt_s: float) -> float:
        """Advance `dt_s` seconds at the current setpoint; return the actual AC power (kW)."""
        dt_h = dt_s / 3600.0
        if dt_h <= 0.0:
            return self.p_kw
        # Self-discharge first (it happens whether or not we operate).
        self.soc_pct *= 1.0 - self.self_discharge_pct_per_day / 100.0 * dt_h / 24.0
        p = min(max(self.setpoint_kw, -self.p_discharge_max_kw), self.p_charge_max_kw)
        e_cells = self.e_kwh
        if p > 0.0:
            room_kwh = max(0.0, self.capacity_kwh * self.soc_max_pct / 100.0 - e_cells)
            p = min(p, room_kwh / (self.eta_charge * dt_h))
            e_cells += p * self.eta_charge * dt_h
            self.e_charged_kwh += p * dt_h
        elif p < 0.0:
            avail_kwh = max(0.0, e_cells - self.capacity_kwh * self.soc_min_pct / 100.0)
            p = -min(-p, avail_kwh * self.eta_discharge / dt_h)
            e_cells += p / self.eta_discharge * dt_h
            self.e_discharged_kwh += -p * dt_h
        self.soc_pct = min(max(100.0 * e_cells / self.capacity_kwh, 0.0), 100.0)
        self.p_kw = p
        return p
