"""Register maps without sockets: encoding, saturation, all-or-nothing writes, map layout."""

from __future__ import annotations

import pytest

from simulators.devices import Battery, EvCharger, HeatPump, Meter, PvInverter
from simulators.modbus import ExcCode, Field, RegisterMap, battery_map, ev_map, hp_map, meter_map, pv_map


@pytest.mark.parametrize(
    ("type_", "value", "regs"),
    [
        ("int16", -2.0, [0xFFFE]),
        ("uint16", 70000.0, [0xFFFF]),
        ("int32", -3000.0, [0xFFFF, 0xF448]),
        ("acc32", 70000.0, [1, 4464]),
        ("int16", float("nan"), [0]),
    ],
    ids=["int16-neg", "uint16-saturates", "int32-neg", "acc32", "nan-is-zero"],
)
def test_field_encoding(type_: str, value: float, regs: list[int]) -> None:
    f = Field("x", 0, type_)  # type: ignore[arg-type]
    assert f.encode(value) == regs


def test_scale_factor_round_trip() -> None:
    f = Field("w", 10, "uint16", sf=-1, sf_address=11)
    assert f.encode(30.0) == [300]
    assert f.decode([300]) == pytest.approx(30.0)
    m = RegisterMap([f])
    assert m.read(11, 1) == [0xFFFF]  # SF −1 as int16


def test_write_is_all_or_nothing() -> None:
    seen: list[float] = []
    m = RegisterMap(
        [
            Field("a", 0, "uint16", access="RW", min=0, max=10, set=seen.append),
            Field("b", 1, "uint16", access="RW", min=0, max=10, set=seen.append),
        ]
    )
    assert m.write(0, [5, 11]) is ExcCode.ILLEGAL_VALUE
    assert seen == [] and m.image == [0, 0]
    assert m.write(0, [5, 6]) is None
    assert seen == [5.0, 6.0]
    assert m.write(2, [1]) is ExcCode.ILLEGAL_ADDRESS


def test_overlapping_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="used twice"):
        RegisterMap([Field("a", 0, "int32"), Field("b", 1, "uint16")])


def test_every_map_builds_and_refreshes() -> None:
    for m in (
        pv_map(PvInverter(), serial="s"),
        meter_map(Meter(), serial="s"),
        battery_map(Battery()),
        ev_map(EvCharger()),
        hp_map(HeatPump()),
    ):
        m.refresh()
        m.refresh(garbage=True)
        assert m.size < 400


def test_ev_power_limit_register_sets_the_physics_limit() -> None:
    ev = EvCharger()
    m = ev_map(ev)
    assert m.write(3, [4200]) is None
    assert ev.p_limit_kw == pytest.approx(4.2)
    assert m.write(3, [11000]) is None
    assert ev.p_limit_kw is None
    assert m.write(3, [11001]) is ExcCode.ILLEGAL_VALUE
