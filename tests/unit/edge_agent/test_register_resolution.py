"""Whole-unit registers: the rounded write stays inside the point's range and, where it can, the command's bounds."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.config import ControlConfig, PointConfig
from edge_agent.decision import _to_register


def _point(lo: float | None, hi: float | None) -> PointConfig:
    doc: dict[str, object] = {"name": "lim", "device": "d", "table": "holding", "address": 1}
    doc |= {"type": "uint16", "writable": True, "unit": "A", "min": lo, "max": hi}
    return PointConfig.model_validate(doc)


def test_a_register_limited_to_10_7_is_written_10_never_11() -> None:
    notes: list[str] = []
    assert _to_register(10.69, (0.0, 11.0), ControlConfig(point="lim"), _point(0.0, 10.7), notes) == (
        10.0,
        10.0,
    )
    assert notes == ["register resolution"]
    # ... and a minimum of 6.3 A is written 7, never 6
    assert _to_register(6.31, (6.0, 16.0), ControlConfig(point="lim"), _point(6.3, 16.0), []) == (7.0, 7.0)


@settings(max_examples=500, deadline=None)
@given(
    p_lo=st.floats(0.0, 20.0),
    width=st.floats(1.0, 40.0),
    factor=st.sampled_from([1.0, 2.0, 0.5, -1.0, 230.0 / 1000.0 * 3]),
    value=st.floats(-50.0, 50.0),
    b_lo=st.floats(-50.0, 50.0),
    b_width=st.floats(0.0, 60.0),
)
def test_rounded_writes_are_whole_and_inside_the_point_range(
    p_lo: float, width: float, factor: float, value: float, b_lo: float, b_width: float
) -> None:
    p_hi = p_lo + width  # at least one whole number inside
    value = min(max(value, b_lo), b_lo + b_width)  # decide() hands over a value inside the bounds
    got_value, write = _to_register(
        value, (b_lo, b_lo + b_width), ControlConfig(point="lim", factor=factor), _point(p_lo, p_hi), []
    )
    assert write == math.floor(write)
    assert p_lo - 1e-9 <= write <= p_hi + 1e-9
    assert math.isclose(got_value, write / factor, abs_tol=1e-9)
