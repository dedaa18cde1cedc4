"""Pure register arithmetic: round trips over every type/order, coalescing of reads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.drivers.registers import decode, encode, plan_reads

RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}


@pytest.mark.parametrize("type_", list(RANGES))
@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("byte_order", ["big", "little"])
@given(data=st.data())
def test_integer_round_trip(type_: str, word_order: str, byte_order: str, data: st.DataObject) -> None:
    lo, hi = RANGES[type_]
    value = data.draw(st.integers(lo, hi))
    regs = encode(value, type_, word_order, byte_order)
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert decode(regs, type_, word_order, byte_order) == value


def test_known_layouts() -> None:
    assert encode(0x12345678, "uint32") == [0x1234, 0x5678]
    assert encode(0x12345678, "uint32", "little") == [0x5678, 0x1234]
    assert encode(0x12345678, "uint32", "big", "little") == [0x3412, 0x7856]
    assert decode([0xFFFF], "int16") == -1
    assert decode(encode(1.5, "float32"), "float32") == 1.5
    with pytest.raises(ValueError):
        encode(70000, "uint16")


def test_plan_reads_coalesces_and_splits() -> None:
    blocks = plan_reads(
        [("holding", 100, 1), ("holding", 101, 1), ("holding", 105, 2), ("holding", 200, 1), ("coil", 3, 1)],
        max_gap=8,
    )
    spans = [(b.table, b.address, b.count) for b in blocks]
    assert spans == [("coil", 3, 1), ("holding", 100, 7), ("holding", 200, 1)]
    many = plan_reads([("holding", a, 1) for a in range(0, 300)], max_gap=0)
    assert [b.count for b in many] == [125, 125, 50]
