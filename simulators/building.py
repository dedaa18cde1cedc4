"""A simulated building: a meter plus some of {PV, battery, EV, heat pump + tank} and a BMS zone.

`step(now, dt_s)` advances every asset's physics by `dt_s` at UTC time `now`, reading
household load, heat demand, irradiance and ambient temperature from the site's
profiles. `p_net_kw` is the grid-connection power (load-positive):
household + fan + battery + EV + heat pump + PV (negative).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from simulators.devices import Battery, EvCharger, HeatPump, Meter, PvInverter, Zone
from simulators.fleet import PROFILE_STEP_S, SiteProfiles, SiteSpec, elapsed_s

__all__ = ["Building", "build"]

LOCAL_TZ = ZoneInfo("Europe/Berlin")
HEAT_PER_K = 0.06  # share of heating energy per kelvin of setpoint above 21 °C (rule of thumb)


@dataclass
class Building:
    """Physics of one site. Assets that the site lacks are None."""

    site: str
    profiles: SiteProfiles
    meter: Meter = field(default_factory=Meter)
    zone: Zone = field(default_factory=Zone)
    pv: PvInverter | None = None
    battery: Battery | None = None
    ev: EvCharger | None = None
    hp: HeatPump | None = None
    p_load_kw: float = 0.0  # household (non-controllable) load
    t_amb_c: float = 10.0
    poa_w_m2: float = 0.0
    p_net_kw: float = 0.0
    steps: int = 0
    _last_rel_s: float = field(default=-1.0, repr=False)

    @property
    def assets(self) -> dict[str, object]:
        """Present assets by kind: meter, zone, and pv/battery/ev/hp where installed."""
        out: dict[str, object] = {"meter": self.meter, "zone": self.zone}
        for kind in ("pv", "battery", "ev", "hp"):
            dev = getattr(self, kind)
            if dev is not None:
                out[kind] = dev
        return out

    def step(self, now: datetime, dt_s: float) -> float:
        """Advance all physics by `dt_s` simulated seconds ending at `now`; return p_net_kw."""
        rel_s = elapsed_s(self.profiles.t0, now) % self.profiles.window_s
        wrapped = rel_s < self._last_rel_s
        self._last_rel_s = rel_s
        load_kw, heat_kw, poa, t_amb = self.profiles.at(rel_s)
        self.p_load_kw, self.poa_w_m2, self.t_amb_c = load_kw, poa, t_amb
        local = now.astimezone(LOCAL_TZ)
        hour = local.hour + local.minute / 60.0 + local.second / 3600.0
        p_kw = load_kw
        if self.pv is not None:
            p_kw += self.pv.step(dt_s, poa_w_m2=poa, t_amb_c=t_amb)
        if self.ev is not None:
            if wrapped:
                self.ev.restart_sessions()
            p_kw += self.ev.step(dt_s, t_s=rel_s)
        heat_fraction = 1.0
        if self.hp is not None:
            demand = heat_kw * max(0.0, 1.0 + HEAT_PER_K * (self.zone.setpoint_c - 21.0))
            p_kw += self.hp.step(dt_s, t_amb_c=t_amb, q_demand_kw=demand)
            heat_fraction = max(0.0, 1.0 - self.hp.e_deficit_kwh / max(self.hp.tank_kwh, 1e-9))
        self.zone.step(
            dt_s, t_out_c=t_amb, local_hour=hour, weekend=local.weekday() >= 5, heat_fraction=heat_fraction
        )
        p_kw += self.zone.p_fan_kw
        if self.battery is not None:
            if not self.battery.remote:
                # local control: hold the site at its grid target (0 = self-consumption)
                self.battery.setpoint_kw = self.battery.grid_target_kw - p_kw
            p_kw += self.battery.step(dt_s)
        self.p_net_kw = p_kw
        self.meter.step(dt_s, p_kw=p_kw)
        self.steps += 1
        return p_kw


def build(spec: SiteSpec, profiles: SiteProfiles) -> Building:
    """A `Building` with the assets `spec` lists, driven by `profiles`."""
    return Building(
        site=spec.site,
        profiles=profiles,
        pv=PvInverter(kwp=spec.pv_kwp, inverter_kw=spec.pv_kwp) if spec.pv_kwp else None,
        battery=(
            Battery(
                capacity_kwh=spec.battery_kwh,
                p_charge_max_kw=spec.battery_kw or 5.0,
                p_discharge_max_kw=spec.battery_kw or 5.0,
                eta_charge=0.95,
                eta_discharge=0.95,
            )
            if spec.battery_kwh
            else None
        ),
        ev=(
            EvCharger(p_max_kw=spec.ev_kw, sessions=profiles.ev_sessions, step_s=PROFILE_STEP_S)
            if spec.ev_kw
            else None
        ),
        hp=HeatPump(p_max_kw=spec.hp_kw, tank_l=spec.tank_l) if spec.hp_kw else None,
    )
