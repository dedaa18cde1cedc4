"""Markdown tables of every register map, generated from the maps the servers serve.

`docs/simulators.md` embeds this output; a unit test fails when the two drift apart. The maps
are built from the device templates, so these tables are the templates' registers.
"""

from __future__ import annotations

from simulators.devices import Battery, EvCharger, HeatPump, Meter, PvInverter, SubstationMeter
from simulators.modbus.regmap import RegisterMap
from simulators.modbus.sunspec import meter_map, pv_map, substation_meter_map
from simulators.modbus.vendor import battery_map, ev_map, hp_map

__all__ = ["register_tables"]

_TYPE = {"acc32": "uint32 (acc32)", "sunssf": "int16 (sunssf)"}


def _table(title: str, m: RegisterMap, statics: str) -> str:
    lines = [
        f"### {title}",
        "",
        statics,
        "",
        "| address | name | type | scale | SF register | unit | access | range | meaning |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in sorted(m.fields, key=lambda f: f.address):
        scale = "" if f.type == "string" else (f"10^{f.sf}" if f.sf_address is not None else f"{f.factor:g}")
        sf = "" if f.sf_address is None else f"{f.sf_address} (= {f.sf})"
        rng = "" if f.access == "R" else f"{f.min:g} … {f.max:g}"
        addr = str(f.address) if f.count == 1 else f"{f.address}–{f.address + f.count - 1}"
        lines.append(
            f"| {addr} | {f.name} | {_TYPE.get(f.type, f.type)} | {scale} | {sf} | {f.unit} | {f.access} | {rng} | {f.doc} |"
        )
    return "\n".join(lines)


def register_tables() -> str:
    """All maps as Markdown (default ratings: PV 8 kW, battery 5 kW, EV 11 kW, HP 9 kW)."""
    sunspec_pv = (
        "Model chain: 40000–40001 `SunS`; 40002 ID 1, 40003 L 66, common block 40004–40069 "
        "(DA = unit id at 40068); 40070 ID 103, 40071 L 50, data 40072–40121; 40122 ID 120, "
        "40123 L 26, data 40124–40149 (DERTyp = 4 at 40124); 40150 ID 123, 40151 L 24, data "
        "40152–40175 (Conn = 1 at 40154); 40176 0xFFFF, 40177 0 (end). Unlisted registers read 0."
    )
    sunspec_meter = (
        "Model chain: 40000–40001 `SunS`; 40002 ID 1, 40003 L 66, common 40004–40069; 40070 ID 203, "
        "40071 L 105, data 40072–40176; 40177 0xFFFF, 40178 0 (end). Unlisted registers read 0."
    )
    vendor = "Holding registers from address 0 (function 3; function 4 reads the same image)."
    return "\n\n".join(
        [
            _table(
                "PV inverter — SunSpec 1 / 103 / 120 / 123 (`sunspec-pv`, template `sunspec-inverter`)",
                pv_map(PvInverter(), serial="-"),
                sunspec_pv,
            ),
            _table(
                "Meter — SunSpec 1 / 203 (`sunspec-meter`, template `sunspec-meter`)",
                meter_map(Meter(), serial="-"),
                sunspec_meter,
            ),
            _table(
                "Substation meter — SunSpec 1 / 203 (template `sunspec-substation-meter`)",
                substation_meter_map(SubstationMeter(), serial="-"),
                sunspec_meter,
            ),
            _table(
                "Battery inverter (`vendor-battery`, template `vendor-battery`)",
                battery_map(Battery(capacity_kwh=16.0)),
                vendor,
            ),
            _table("EV charger (`vendor-ev`, template `vendor-ev`)", ev_map(EvCharger()), vendor),
            _table("Heat pump + tank (`vendor-hp`, template `vendor-hp`)", hp_map(HeatPump()), vendor),
        ]
    )
