"""Vendor-like register maps (holding registers from 0) for battery inverter, EV charger, heat pump.

Simple, documented maps in the style of real devices: 16/32-bit integers with fixed
scales, load-positive powers, setpoints and limits writable with range checks.
"""

from __future__ import annotations

from simulators.devices import Battery, EvCharger, HeatPump
from simulators.modbus.regmap import Field, RegisterMap

__all__ = ["battery_map", "ev_map", "hp_map"]


def battery_map(bat: Battery) -> RegisterMap:
    """Battery inverter. `mode` 0 = local control: hold the site's grid power at `grid_target_w`
    (0 W = self-consumption, the default); 1 = remote (follow `p_setpoint_w`)."""

    def status() -> float:
        return 2.0 if bat.p_kw > 1e-6 else (3.0 if bat.p_kw < -1e-6 else 1.0)

    def set_mode(v: float) -> None:
        bat.remote = bool(round(v))

    def set_p(v: float) -> None:
        bat.setpoint_kw = v / 1000.0

    def set_target(v: float) -> None:
        bat.grid_target_kw = v / 1000.0

    return RegisterMap(
        [
            Field("soc_pct", 0, "uint16", "%", scale=0.01, doc="state of charge", get=lambda: bat.soc_pct),
            Field("p_w", 1, "int32", "W", doc="AC power, charge positive", get=lambda: bat.p_kw * 1000.0),
            Field(
                "capacity_kwh",
                3,
                "uint16",
                "kWh",
                scale=0.1,
                doc="usable capacity",
                get=lambda: bat.capacity_kwh,
            ),
            Field(
                "p_charge_max_w",
                4,
                "uint16",
                "W",
                doc="max charge power",
                get=lambda: bat.p_charge_max_kw * 1e3,
            ),
            Field(
                "p_discharge_max_w",
                5,
                "uint16",
                "W",
                doc="max discharge power",
                get=lambda: bat.p_discharge_max_kw * 1e3,
            ),
            Field(
                "mode",
                6,
                "uint16",
                access="RW",
                min=0,
                max=1,
                doc="0 local grid-target control (self-consumption at target 0), 1 remote setpoint",
                get=lambda: float(bat.remote),
                set=set_mode,
            ),
            Field(
                "p_setpoint_w",
                7,
                "int32",
                "W",
                access="RW",
                min=-bat.p_discharge_max_kw * 1e3,
                max=bat.p_charge_max_kw * 1e3,
                doc="power setpoint in remote mode, charge positive",
                get=lambda: bat.setpoint_kw * 1000.0,
                set=set_p,
            ),
            Field(
                "soc_min_pct", 9, "uint16", "%", scale=0.1, doc="lower SOC bound", get=lambda: bat.soc_min_pct
            ),
            Field(
                "soc_max_pct",
                10,
                "uint16",
                "%",
                scale=0.1,
                doc="upper SOC bound",
                get=lambda: bat.soc_max_pct,
            ),
            Field(
                "e_charged_wh",
                11,
                "acc32",
                "Wh",
                doc="AC energy charged",
                get=lambda: bat.e_charged_kwh * 1e3,
            ),
            Field(
                "e_discharged_wh",
                13,
                "acc32",
                "Wh",
                doc="AC energy discharged",
                get=lambda: bat.e_discharged_kwh * 1e3,
            ),
            Field("status", 15, "uint16", doc="1 idle, 2 charging, 3 discharging", get=status),
            Field(
                "eta_charge", 16, "uint16", scale=0.001, doc="charge efficiency", get=lambda: bat.eta_charge
            ),
            Field(
                "eta_discharge",
                17,
                "uint16",
                scale=0.001,
                doc="discharge efficiency",
                get=lambda: bat.eta_discharge,
            ),
            Field(
                "grid_target_w",
                18,
                "int32",
                "W",
                access="RW",
                min=-100_000.0,
                max=100_000.0,
                doc="site grid power held in mode 0, import positive (0 = self-consumption)",
                get=lambda: bat.grid_target_kw * 1000.0,
                set=set_target,
            ),
        ]
    )


def ev_map(ev: EvCharger) -> RegisterMap:
    """EV charger. `p_limit_w` = p_max_w means no limit; below 4140 W (6 A) the charger pauses."""

    def state() -> float:
        if not ev.plugged:
            return 0.0
        return 2.0 if ev.p_kw > 0 else 1.0

    def set_limit_w(v: float) -> None:
        ev.p_limit_kw = None if v >= ev.p_max_kw * 1000.0 else v / 1000.0

    def set_limit_a(v: float) -> None:
        ev.limit_a = v

    return RegisterMap(
        [
            Field("state", 0, "uint16", doc="0 no car, 1 plugged (waiting), 2 charging", get=state),
            Field("p_w", 1, "uint16", "W", doc="charging power", get=lambda: ev.p_kw * 1000.0),
            Field(
                "current_limit_a",
                2,
                "uint16",
                "A",
                scale=0.1,
                access="RW",
                min=0,
                max=32,
                doc="per-phase current limit",
                get=lambda: ev.limit_a,
                set=set_limit_a,
            ),
            Field(
                "p_limit_w",
                3,
                "uint16",
                "W",
                access="RW",
                min=0,
                max=ev.p_max_kw * 1000.0,
                doc="power limit (p_max_w = none)",
                get=lambda: ev.p_max_kw * 1e3 if ev.p_limit_kw is None else ev.p_limit_kw * 1e3,
                set=set_limit_w,
            ),
            Field(
                "e_session_wh",
                4,
                "uint32",
                "Wh",
                doc="energy this session",
                get=lambda: ev.e_session_kwh * 1e3,
            ),
            Field("e_total_wh", 6, "acc32", "Wh", doc="lifetime energy", get=lambda: ev.e_total_kwh * 1e3),
            Field(
                "e_remaining_wh",
                8,
                "uint32",
                "Wh",
                doc="energy the car still wants",
                get=lambda: ev.e_remaining_kwh * 1e3,
            ),
            Field("p_max_w", 10, "uint16", "W", doc="rated power", get=lambda: ev.p_max_kw * 1000.0),
            Field(
                "departure_s",
                11,
                "uint32",
                "s",
                doc="planned departure, s since profile start",
                get=lambda: ev.departure_s if ev.plugged else 0.0,
            ),
        ]
    )


def hp_map(hp: HeatPump) -> RegisterMap:
    """Heat pump with tank. `p_limit_w` = p_max_w means no limit."""

    def set_limit_w(v: float) -> None:
        hp.p_limit_kw = None if v >= hp.p_max_kw * 1000.0 else v / 1000.0

    return RegisterMap(
        [
            Field("p_w", 0, "uint16", "W", doc="electric power", get=lambda: hp.p_kw * 1000.0),
            Field(
                "p_limit_w",
                1,
                "uint16",
                "W",
                access="RW",
                min=0,
                max=hp.p_max_kw * 1000.0,
                doc="electric power limit (p_max_w = none)",
                get=lambda: hp.p_max_kw * 1e3 if hp.p_limit_kw is None else hp.p_limit_kw * 1e3,
                set=set_limit_w,
            ),
            Field("t_tank_c", 2, "int16", "C", scale=0.1, doc="tank temperature", get=lambda: hp.t_tank_c),
            Field("cop", 3, "uint16", scale=0.01, doc="coefficient of performance now", get=lambda: hp.cop),
            Field("q_heat_w", 4, "uint16", "W", doc="heat output", get=lambda: hp.q_heat_kw * 1000.0),
            Field("running", 5, "uint16", doc="1 compressor on", get=lambda: float(hp.running)),
            Field("e_el_wh", 6, "acc32", "Wh", doc="electric energy", get=lambda: hp.e_el_kwh * 1e3),
            Field(
                "e_deficit_wh",
                8,
                "uint32",
                "Wh",
                doc="heat owed to the building",
                get=lambda: hp.e_deficit_kwh * 1e3,
            ),
            Field("p_max_w", 10, "uint16", "W", doc="rated electric power", get=lambda: hp.p_max_kw * 1000.0),
            Field(
                "tank_wh", 11, "uint16", "Wh", doc="usable tank capacity", get=lambda: hp.tank_kwh * 1000.0
            ),
        ]
    )
