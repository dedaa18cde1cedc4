"""SunSpec register maps: PV inverter (models 1, 103, 120, 123) and meter (models 1, 203).

Addresses are PDU addresses, 0-based: `SunS` (0x5375 0x6E53) at 40000, then each model
as ID, L (length) and L registers, ended by 0xFFFF 0. A client finds everything by
walking ID/L from 40002, as real SunSpec tools do. Registers of a model that the
simulator does not fill read 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulators.devices import Meter, PvInverter
from simulators.modbus.regmap import Field, RegisterMap

__all__ = ["SUNSPEC_BASE", "meter_map", "pv_map"]

SUNSPEC_BASE = 40000
V_PHASE = 230.0
F_HZ = 50.0

# PV inverter state (model 103 St): 2 sleeping (night), 4 MPPT, 5 throttled.
ST_SLEEPING, ST_MPPT, ST_THROTTLED = 2, 4, 5


@dataclass
class _Chain:
    """Lays SunSpec models one after another from 40002 and collects fields and constants."""

    static: dict[int, int] = field(default_factory=lambda: {SUNSPEC_BASE: 0x5375, SUNSPEC_BASE + 1: 0x6E53})
    fields: list[Field] = field(default_factory=list)
    next: int = SUNSPEC_BASE + 2

    def model(self, model_id: int, length: int) -> int:
        """Place a model header; return the address of its first data register."""
        self.static[self.next] = model_id
        self.static[self.next + 1] = length
        start = self.next + 2
        self.next = start + length
        return start

    def const(self, address: int, value: int) -> None:
        self.static[address] = value & 0xFFFF

    def end(self) -> RegisterMap:
        self.static[self.next] = 0xFFFF
        self.static[self.next + 1] = 0
        return RegisterMap(self.fields, static=self.static)

    def common(self, *, model: str, serial: str, unit_id: int) -> None:
        d = self.model(1, 66)
        self.fields += [
            Field("Mn", d, "string", size=16, doc="manufacturer", get=lambda: "GridFlex Sim"),
            Field("Md", d + 16, "string", size=16, doc="model", get=lambda: model),
            Field("Vr", d + 40, "string", size=8, doc="version", get=lambda: "1.0"),
            Field("SN", d + 48, "string", size=16, doc="serial number", get=lambda: serial),
        ]
        self.const(d + 64, unit_id)  # DA: device (unit) address
        self.const(d + 65, 0x8000)  # Pad


def pv_map(pv: PvInverter, *, serial: str, unit_id: int = 1) -> RegisterMap:
    """SunSpec PV inverter over `pv`. WMaxLimPct (%, SF −1) with WMaxLim_Ena curtails the physics."""
    c = _Chain()
    c.common(model="SimPV", serial=serial, unit_id=unit_id)

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

    d = c.model(103, 50)
    c.fields += [
        Field("A", d, "uint16", "A", sf=-2, sf_address=d + 4, doc="AC current", get=i_a),
        Field(
            "AphA",
            d + 1,
            "uint16",
            "A",
            sf=-2,
            sf_address=d + 4,
            doc="phase A current",
            get=lambda: i_a() / 3,
        ),
        Field(
            "PhVphA",
            d + 8,
            "uint16",
            "V",
            sf=-1,
            sf_address=d + 11,
            doc="phase A voltage",
            get=lambda: V_PHASE,
        ),
        Field(
            "W", d + 12, "int16", "W", sf=0, sf_address=d + 13, doc="AC power, generation positive", get=p_w
        ),
        Field("Hz", d + 14, "uint16", "Hz", sf=-2, sf_address=d + 15, doc="frequency", get=lambda: F_HZ),
        Field("VA", d + 16, "int16", "VA", sf=0, sf_address=d + 17, doc="apparent power", get=p_w),
        Field("PF", d + 20, "int16", "%", sf=0, sf_address=d + 21, doc="power factor", get=lambda: 100.0),
        Field(
            "WH",
            d + 22,
            "acc32",
            "Wh",
            sf=0,
            sf_address=d + 24,
            doc="lifetime energy",
            get=lambda: pv.e_generated_kwh * 1000.0,
        ),
        Field(
            "DCW",
            d + 29,
            "int16",
            "W",
            sf=0,
            sf_address=d + 30,
            doc="DC power",
            get=lambda: p_w() / pv.inverter_eff,
        ),
        Field(
            "TmpOt",
            d + 34,
            "int16",
            "C",
            sf=-1,
            sf_address=d + 35,
            doc="module temperature",
            get=lambda: pv.t_module_c,
        ),
        Field("St", d + 36, "uint16", doc="operating state: 2 sleeping, 4 MPPT, 5 throttled", get=state),
    ]
    n = c.model(120, 26)
    c.const(n, 4)  # DERTyp: PV
    c.fields += [
        Field(
            "WRtg",
            n + 1,
            "uint16",
            "W",
            sf=0,
            sf_address=n + 2,
            doc="continuous power rating",
            get=lambda: pv.inverter_kw * 1000.0,
        ),
        Field(
            "VARtg",
            n + 3,
            "uint16",
            "VA",
            sf=0,
            sf_address=n + 4,
            doc="apparent power rating",
            get=lambda: pv.inverter_kw * 1000.0,
        ),
        Field(
            "ARtg",
            n + 10,
            "uint16",
            "A",
            sf=-1,
            sf_address=n + 11,
            doc="current rating",
            get=lambda: pv.inverter_kw * 1000.0 / (3.0 * V_PHASE),
        ),
    ]
    k = c.model(123, 24)
    c.const(k + 2, 1)  # Conn: connected
    c.fields += [
        Field(
            "WMaxLimPct",
            k + 3,
            "uint16",
            "%",
            sf=-1,
            sf_address=k + 21,
            access="RW",
            min=0.0,
            max=100.0,
            doc="active power limit, % of WRtg",
            get=lambda: pv.limit_pct,
            set=set_limit,
        ),
        Field(
            "WMaxLim_Ena",
            k + 7,
            "uint16",
            access="RW",
            min=0.0,
            max=1.0,
            doc="1 = limit enabled, 0 = disabled",
            get=lambda: float(pv.limit_enabled),
            set=set_ena,
        ),
    ]
    return c.end()


def meter_map(meter: Meter, *, serial: str, unit_id: int = 1) -> RegisterMap:
    """SunSpec wye meter (model 203) over `meter`. W is import-positive (load-positive)."""
    c = _Chain()
    c.common(model="SimMeter", serial=serial, unit_id=unit_id)
    d = c.model(203, 105)

    def i_a() -> float:
        return meter.i_phase_a

    c.fields += [
        Field("A", d, "int16", "A", sf=-2, sf_address=d + 4, doc="total current", get=lambda: 3 * i_a()),
        Field("AphA", d + 1, "int16", "A", sf=-2, sf_address=d + 4, doc="phase A current", get=i_a),
        Field("AphB", d + 2, "int16", "A", sf=-2, sf_address=d + 4, doc="phase B current", get=i_a),
        Field("AphC", d + 3, "int16", "A", sf=-2, sf_address=d + 4, doc="phase C current", get=i_a),
        Field(
            "PhV",
            d + 5,
            "int16",
            "V",
            sf=-1,
            sf_address=d + 13,
            doc="L-N voltage",
            get=lambda: meter.v_phase_v,
        ),
        Field("Hz", d + 14, "int16", "Hz", sf=-2, sf_address=d + 15, doc="frequency", get=lambda: F_HZ),
        Field(
            "W",
            d + 16,
            "int16",
            "W",
            sf=1,
            sf_address=d + 20,
            doc="total real power, import positive",
            get=lambda: meter.p_kw * 1000.0,
        ),
        Field(
            "WphA",
            d + 17,
            "int16",
            "W",
            sf=1,
            sf_address=d + 20,
            doc="phase A power",
            get=lambda: meter.p_kw * 1000.0 / 3,
        ),
        Field(
            "WphB",
            d + 18,
            "int16",
            "W",
            sf=1,
            sf_address=d + 20,
            doc="phase B power",
            get=lambda: meter.p_kw * 1000.0 / 3,
        ),
        Field(
            "WphC",
            d + 19,
            "int16",
            "W",
            sf=1,
            sf_address=d + 20,
            doc="phase C power",
            get=lambda: meter.p_kw * 1000.0 / 3,
        ),
        Field(
            "TotWhExp",
            d + 36,
            "acc32",
            "Wh",
            sf=0,
            sf_address=d + 52,
            doc="exported energy",
            get=lambda: meter.e_export_kwh * 1000.0,
        ),
        Field(
            "TotWhImp",
            d + 44,
            "acc32",
            "Wh",
            sf=0,
            sf_address=d + 52,
            doc="imported energy",
            get=lambda: meter.e_import_kwh * 1000.0,
        ),
    ]
    return c.end()
