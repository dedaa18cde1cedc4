"""The physics quantities a device template's registers and objects name, per device model.

A template says `quantity: p_w`; this module says what `p_w` is for a PV inverter, a
meter, a battery... as a getter (and a setter for what a client may write). The maps and
the BMS are built from a template plus these bindings, so the register layout is data
and only the physics is code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.devices import Battery, EvCharger, HeatPump, Meter, PvInverter

__all__ = [
    "MODELS",
    "Quantity",
    "battery_quantities",
    "ev_quantities",
    "hp_quantities",
    "meter_quantities",
    "pv_quantities",
    "quantities_for",
]

V_PHASE = 230.0
F_HZ = 50.0
# PV inverter state (model 103 St): 2 sleeping (night), 4 MPPT, 5 throttled.
ST_SLEEPING, ST_MPPT, ST_THROTTLED = 2, 4, 5


@dataclass(frozen=True)
class Quantity:
    """One bound physics value: read by `get`, written (if a client may) by `set`."""

    get: Callable[[], float | str]
    set: Callable[[float], None] | None = None


Quantities = dict[str, Quantity]


def pv_quantities(pv: PvInverter, *, serial: str) -> Quantities:
    """PV inverter: AC power generation-positive; WMaxLimPct with WMaxLim_Ena curtails the physics."""

    def p_w() -> float:
        return -pv.p_kw * 1000.0

    def i_a() -> float:
        return p_w() / (3.0 * V_PHASE)

    def state() -> float:
        if pv.poa_w_m2 <= 1.0:
            return ST_SLEEPING
        return ST_THROTTLED if pv.limit_enabled and pv.p_available_kw > -pv.p_kw + 1e-6 else ST_MPPT

    def set_limit(v: float) -> None:
        pv.limit_pct = v

    def set_ena(v: float) -> None:
        pv.limit_enabled = bool(round(v))

    return {
        "serial": Quantity(lambda: serial),
        "i_a": Quantity(i_a),
        "i_phase_a": Quantity(lambda: i_a() / 3),
        "v_phase_v": Quantity(lambda: V_PHASE),
        "p_w": Quantity(p_w),
        "f_hz": Quantity(lambda: F_HZ),
        "e_generated_wh": Quantity(lambda: pv.e_generated_kwh * 1000.0),
        "p_dc_w": Quantity(lambda: p_w() / pv.inverter_eff),
        "t_module_c": Quantity(lambda: pv.t_module_c),
        "state": Quantity(state),
        "w_rtg": Quantity(lambda: pv.inverter_kw * 1000.0),
        "a_rtg": Quantity(lambda: pv.inverter_kw * 1000.0 / (3.0 * V_PHASE)),
        "limit_pct": Quantity(lambda: pv.limit_pct, set_limit),
        "limit_enabled": Quantity(lambda: float(pv.limit_enabled), set_ena),
    }


def meter_quantities(meter: Meter, *, serial: str) -> Quantities:
    """Grid meter: real power import-positive (load-positive)."""
    return {
        "serial": Quantity(lambda: serial),
        "i_a": Quantity(lambda: 3 * meter.i_phase_a),
        "i_phase_a": Quantity(lambda: meter.i_phase_a),
        "v_phase_v": Quantity(lambda: meter.v_phase_v),
        "f_hz": Quantity(lambda: F_HZ),
        "p_w": Quantity(lambda: meter.p_kw * 1000.0),
        "p_phase_w": Quantity(lambda: meter.p_kw * 1000.0 / 3),
        "e_export_wh": Quantity(lambda: meter.e_export_kwh * 1000.0),
        "e_import_wh": Quantity(lambda: meter.e_import_kwh * 1000.0),
    }


def battery_quantities(bat: Battery) -> Quantities:
    """Battery inverter: power charge-positive; `remote` 0 holds the grid target, 1 follows the setpoint."""

    def status() -> float:
        return 2.0 if bat.p_kw > 1e-6 else (3.0 if bat.p_kw < -1e-6 else 1.0)

    def set_mode(v: float) -> None:
        bat.remote = bool(round(v))

    def set_p(v: float) -> None:
        bat.setpoint_kw = v / 1000.0

    def set_target(v: float) -> None:
        bat.grid_target_kw = v / 1000.0

    return {
        "soc_pct": Quantity(lambda: bat.soc_pct),
        "p_w": Quantity(lambda: bat.p_kw * 1000.0),
        "capacity_kwh": Quantity(lambda: bat.capacity_kwh),
        "p_charge_max_w": Quantity(lambda: bat.p_charge_max_kw * 1e3),
        "p_discharge_max_w": Quantity(lambda: bat.p_discharge_max_kw * 1e3),
        "p_setpoint_min_w": Quantity(lambda: -bat.p_discharge_max_kw * 1e3),
        "remote": Quantity(lambda: float(bat.remote), set_mode),
        "p_setpoint_w": Quantity(lambda: bat.setpoint_kw * 1000.0, set_p),
        "soc_min_pct": Quantity(lambda: bat.soc_min_pct),
        "soc_max_pct": Quantity(lambda: bat.soc_max_pct),
        "e_charged_wh": Quantity(lambda: bat.e_charged_kwh * 1e3),
        "e_discharged_wh": Quantity(lambda: bat.e_discharged_kwh * 1e3),
        "status": Quantity(status),
        "eta_charge": Quantity(lambda: bat.eta_charge),
        "eta_discharge": Quantity(lambda: bat.eta_discharge),
        "grid_target_w": Quantity(lambda: bat.grid_target_kw * 1000.0, set_target),
    }


def ev_quantities(ev: EvCharger) -> Quantities:
    """EV charger: a power limit at the rating means no limit."""

    def state() -> float:
        if not ev.plugged:
            return 0.0
        return 2.0 if ev.p_kw > 0 else 1.0

    def set_limit_w(v: float) -> None:
        ev.p_limit_kw = None if v >= ev.p_max_kw * 1000.0 else v / 1000.0

    def set_limit_a(v: float) -> None:
        ev.limit_a = v

    return {
        "state": Quantity(state),
        "p_w": Quantity(lambda: ev.p_kw * 1000.0),
        "limit_a": Quantity(lambda: ev.limit_a, set_limit_a),
        "p_limit_w": Quantity(
            lambda: ev.p_max_kw * 1e3 if ev.p_limit_kw is None else ev.p_limit_kw * 1e3, set_limit_w
        ),
        "e_session_wh": Quantity(lambda: ev.e_session_kwh * 1e3),
        "e_total_wh": Quantity(lambda: ev.e_total_kwh * 1e3),
        "e_remaining_wh": Quantity(lambda: ev.e_remaining_kwh * 1e3),
        "p_max_w": Quantity(lambda: ev.p_max_kw * 1000.0),
        "departure_s": Quantity(lambda: ev.departure_s if ev.plugged else 0.0),
    }


def hp_quantities(hp: HeatPump) -> Quantities:
    """Heat pump with tank: a power limit at the rating means no limit."""

    def set_limit_w(v: float) -> None:
        hp.p_limit_kw = None if v >= hp.p_max_kw * 1000.0 else v / 1000.0

    return {
        "p_w": Quantity(lambda: hp.p_kw * 1000.0),
        "p_limit_w": Quantity(
            lambda: hp.p_max_kw * 1e3 if hp.p_limit_kw is None else hp.p_limit_kw * 1e3, set_limit_w
        ),
        "t_tank_c": Quantity(lambda: hp.t_tank_c),
        "cop": Quantity(lambda: hp.cop),
        "q_heat_w": Quantity(lambda: hp.q_heat_kw * 1000.0),
        "running": Quantity(lambda: float(hp.running)),
        "e_el_wh": Quantity(lambda: hp.e_el_kwh * 1e3),
        "e_deficit_wh": Quantity(lambda: hp.e_deficit_kwh * 1e3),
        "p_max_w": Quantity(lambda: hp.p_max_kw * 1000.0),
        "tank_wh": Quantity(lambda: hp.tank_kwh * 1000.0),
    }


#: A template's `physics:` name → the device model a generic device runs with default ratings.
MODELS: dict[str, Callable[[], Any]] = {
    "pv": PvInverter,
    "meter": Meter,
    "battery": Battery,
    "ev": EvCharger,
    "hp": HeatPump,
}


def quantities_for(physics: str, model: Any, *, serial: str = "-") -> Quantities:
    """The bindings of `model` for a template whose `physics:` is `physics`."""
    if physics == "pv":
        return pv_quantities(model, serial=serial)
    if physics == "meter":
        return meter_quantities(model, serial=serial)
    if physics == "battery":
        return battery_quantities(model)
    if physics == "ev":
        return ev_quantities(model)
    if physics == "hp":
        return hp_quantities(model)
    raise KeyError(f"no physics {physics!r} for a Modbus device (known: {', '.join(MODELS)})")
