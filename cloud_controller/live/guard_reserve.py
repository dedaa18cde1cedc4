"""How far the fleet guard may discharge a DR-reserved battery: the energy its event needs kept (pure).

Why: the guard's extra discharge (its step 4) holds from the step that sets it to the next plan,
which resets every offset at the period's boundary. Checking only that the SoC is above the
reservation's floor when the step decides let one offset drain the battery for the rest of the
period: in the demo's 17:00 event (docs/dr.md §7) the plan at 16:45 kept the battery idle, the
guard set it to −5 kW at 29.7 % SoC, and it reached the event at 20.0 % against the 20.5 % the
event needs — every run the same way, and further under the floor on a loaded machine, where
commands land late. So the guard bounds the battery's power by the energy above the floor
spread over what is left of the period, and checks it again at every step.

The floor (`FleetGuard.set_reserved_floors`) is the SoC the reservation keeps *now*: the event's
remaining AC kWh / η_d + the plan's own floor (live/reservations.py). While the request holds the
battery, its DR setpoint's own energy is already in that floor, so only the guard's extra
discharge spends the surplus; before, the plan's own discharge spends it as well.

The SoC the guard reads is as old as the site's last report (a poll: minutes of simulated time
in the demo); a battery discharging at 5 kW loses 1.3 points of 13.5 kWh in two minutes, and
in the live 17:00 event that lag let the bound overshoot the floor by about that much
(docs/dr.md §7). So the SoC is carried forward by the measured discharge over that age
(`soc_now_pct`); a charge is not counted (the conservative side).
"""

from __future__ import annotations

__all__ = ["reserved_value_min_kw", "soc_now_pct"]


def reserved_value_min_kw(
    soc_pct: float,
    floor_pct: float,
    capacity_kwh: float,
    eta_d: float,
    hours_left: float,
    *,
    base_kw: float,
    held: bool,
) -> float:
    """The lowest battery value (kW, load-positive; < 0 discharges) the guard may command until the period ends.

    `base_kw` is the battery's value without the guard (the DR setpoint when `held`, else the
    plan's). The surplus above the floor, (soc − floor) × capacity, gives at most
    surplus × η_d / hours_left kW AC over the rest of the period. Held: the DR setpoint less
    that; not held: the larger discharge of that and the plan's own (a plan is not cut here,
    only the guard's addition to it).
    """
    if not 0 < eta_d <= 1:
        raise ValueError(f"eta_d must be in (0, 1], got {eta_d}")
    surplus_kwh = max(0.0, soc_pct - floor_pct) / 100.0 * capacity_kwh
    extra_kw = surplus_kwh * eta_d / max(hours_left, 1e-6)
    if held:
        return base_kw - extra_kw
    return -max(extra_kw, -base_kw, 0.0)


def soc_now_pct(soc_pct: float, p_bat_kw: float, age_s: float, capacity_kwh: float, eta_d: float) -> float:
    """The SoC now from one read `age_s` ago: lowered by the measured discharge (p < 0) since, never raised."""
    if capacity_kwh <= 0 or p_bat_kw >= 0 or age_s <= 0:
        return soc_pct
    return soc_pct - 100.0 * (-p_bat_kw) * (age_s / 3600.0) / eta_d / capacity_kwh
