"""SunSpec register maps: PV inverter (models 1, 103, 120, 123), meter and substation meter (1, 203).

Addresses are PDU addresses, 0-based: `SunS` (0x5375 0x6E53) at 40000, then each model
as ID, L (length) and L registers, ended by 0xFFFF 0. A client finds everything by
walking ID/L from 40002, as real SunSpec tools do. Registers of a model that the
simulator does not fill read 0. The layout is the device templates `sunspec-inverter`,
`sunspec-meter` and `sunspec-substation-meter` (device_templates/builtin/); the agent's
points come from the same files.
"""

from __future__ import annotations

from device_templates import SUNSPEC_BASE, builtin
from simulators.devices import Meter, PvInverter, SubstationMeter
from simulators.modbus.regmap import RegisterMap
from simulators.modbus.template_map import register_map
from simulators.quantities import (
    ST_MPPT,
    ST_SLEEPING,
    ST_THROTTLED,
    Quantity,
    meter_quantities,
    pv_quantities,
)

__all__ = [
    "ST_MPPT",
    "ST_SLEEPING",
    "ST_THROTTLED",
    "SUBSTATION_METER_TEMPLATE",
    "SUNSPEC_BASE",
    "meter_map",
    "pv_map",
    "substation_meter_map",
    "substation_quantities",
]

#: The device template a substation meter serves (models 1 + 203 with every phase quantity).
SUBSTATION_METER_TEMPLATE = "sunspec-substation-meter"


def pv_map(pv: PvInverter, *, serial: str, unit_id: int = 1) -> RegisterMap:
    """SunSpec PV inverter over `pv`. WMaxLimPct (%, SF −1) with WMaxLim_Ena curtails the physics."""
    return register_map(builtin("sunspec-inverter"), pv_quantities(pv, serial=serial), unit_id=unit_id)


def meter_map(meter: Meter, *, serial: str, unit_id: int = 1) -> RegisterMap:
    """SunSpec wye meter (model 203) over `meter`. W is import-positive (load-positive)."""
    return register_map(builtin("sunspec-meter"), meter_quantities(meter, serial=serial), unit_id=unit_id)


def substation_quantities(m: SubstationMeter, *, serial: str) -> dict[str, Quantity]:
    """Substation meter: every model-203 quantity the template names, from the values set on `m`."""
    third = 1.0 / 3.0
    return {
        "serial": Quantity(lambda: serial),
        "i_total_a": Quantity(lambda: sum(m.i_a)),
        "i_phase_a_a": Quantity(lambda: m.i_a[0]),
        "i_phase_b_a": Quantity(lambda: m.i_a[1]),
        "i_phase_c_a": Quantity(lambda: m.i_a[2]),
        "v_ln_v": Quantity(lambda: sum(m.v_ln_v) * third),
        "v_an_v": Quantity(lambda: m.v_ln_v[0]),
        "v_bn_v": Quantity(lambda: m.v_ln_v[1]),
        "v_cn_v": Quantity(lambda: m.v_ln_v[2]),
        "v_ll_v": Quantity(lambda: sum(m.v_ll_v) * third),
        "v_ab_v": Quantity(lambda: m.v_ll_v[0]),
        "v_bc_v": Quantity(lambda: m.v_ll_v[1]),
        "v_ca_v": Quantity(lambda: m.v_ll_v[2]),
        "f_hz": Quantity(lambda: m.f_hz),
        "p_w": Quantity(lambda: m.p_kw * 1000.0),
        "p_phase_w": Quantity(lambda: m.p_kw * 1000.0 * third),
        "s_va": Quantity(lambda: m.s_kva * 1000.0),
        "s_phase_va": Quantity(lambda: m.s_kva * 1000.0 * third),
        "q_var": Quantity(lambda: m.q_kvar * 1000.0),
        "q_phase_var": Quantity(lambda: m.q_kvar * 1000.0 * third),
        "pf_pct": Quantity(lambda: m.pf * 100.0),
        "e_export_wh": Quantity(lambda: m.e_export_kwh * 1000.0),
        "e_export_phase_wh": Quantity(lambda: m.e_export_kwh * 1000.0 * third),
        "e_import_wh": Quantity(lambda: m.e_import_kwh * 1000.0),
        "e_import_phase_wh": Quantity(lambda: m.e_import_kwh * 1000.0 * third),
    }


def substation_meter_map(meter: SubstationMeter, *, serial: str, unit_id: int = 1) -> RegisterMap:
    """SunSpec wye meter (models 1 + 203) on a station's LV busbar: W, VAR and energies import-positive."""
    return register_map(
        builtin(SUBSTATION_METER_TEMPLATE), substation_quantities(meter, serial=serial), unit_id=unit_id
    )
