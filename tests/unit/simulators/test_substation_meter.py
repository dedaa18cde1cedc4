"""The substation meter's physics, register chain, template points and site ids (pure, no sockets)."""

from __future__ import annotations

import pytest

from device_templates import builtin
from protocols.assets import PointKey, Points, substation_site_id
from protocols.topics import validate_id
from simulators.devices import SubstationMeter
from simulators.modbus.sunspec import SUBSTATION_METER_TEMPLATE, substation_meter_map

V = (231.0, 230.0, 229.0)


def test_energy_is_booked_import_or_export_by_the_sign_of_p() -> None:
    m = SubstationMeter()
    m.step(1800.0, p_kw=40.0, q_kvar=8.0, v_ln_v=V, i_a=(58.0, 58.0, 58.0))
    m.step(900.0, p_kw=-20.0, q_kvar=-2.0, v_ln_v=V, i_a=(29.0, 29.0, 29.0))
    assert m.e_import_kwh == pytest.approx(20.0) and m.e_export_kwh == pytest.approx(5.0)
    assert m.p_kw == -20.0 and m.updates == 2
    assert m.pf == pytest.approx(-20.0 / (20.0**2 + 2.0**2) ** 0.5)
    assert m.v_ll_v[0] == pytest.approx((231.0 + 230.0) / 2 * 3**0.5)
    with pytest.raises(ValueError, match="dt_s"):
        m.step(-1.0, p_kw=0.0, q_kvar=0.0, v_ln_v=V, i_a=(0.0, 0.0, 0.0))


def test_register_image_is_sunspec_model_1_then_203_then_the_end_marker() -> None:
    m = SubstationMeter()
    m.step(3600.0, p_kw=123.4, q_kvar=-30.0, v_ln_v=V, i_a=(180.0, 181.0, 182.0))
    regs = substation_meter_map(m, serial="sub-x")
    regs.refresh()
    assert regs.read(40000, 4) == [0x5375, 0x6E53, 1, 66]
    assert regs.read(40070, 2) == [203, 105]
    assert regs.read(40177, 2) == [0xFFFF, 0]
    w, w_sf = regs.read(40088, 1), regs.read(40092, 1)
    assert isinstance(w, list) and isinstance(w_sf, list)
    assert (w[0], w_sf[0]) == (1234, 2)  # 1234 × 10² W
    var = regs.read(40098, 1)
    assert isinstance(var, list) and var[0] == (-300) & 0xFFFF
    imp = regs.read(40116, 2)
    assert isinstance(imp, list) and (imp[0] << 16 | imp[1]) == 123_400  # Wh


def test_the_templates_points_are_the_meter_point_keys_of_protocols() -> None:
    points = builtin(SUBSTATION_METER_TEMPLATE).points
    assert {PointKey("meter", p.name) for p in points} == {
        Points.METER_P_KW,
        Points.METER_Q_KVAR,
        Points.METER_V_LN_V,
        Points.METER_I_A,
        Points.METER_F_HZ,
        Points.METER_E_IMPORT_KWH,
        Points.METER_E_EXPORT_KWH,
    }
    assert {p.role for p in points} == {"meter"}


@pytest.mark.parametrize(
    ("station", "site"),
    [("T_idx_118", "sub-t_idx_118"), ("Station Nord/2", "sub-station-nord-2"), ("_x", "sub-x")],
    ids=["schutterwald", "spaces-and-slash", "leading-underscore"],
)
def test_a_station_name_becomes_a_valid_site_id(station: str, site: str) -> None:
    assert substation_site_id(station) == site
    assert validate_id(site, what="site id") == site
