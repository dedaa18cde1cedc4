"""The §14a floor: the one place that decides the minimum power of an EV or heat pump on any write.

German §14a EnWG lets a grid operator limit a controllable EV charger or heat pump, but
never below a guaranteed minimum (4.2 kW by default). Every path that writes to such an
asset (a command of any kind, a safe-state step, a BACnet relinquish in fallback) asks
`floor_write` what it may write; nothing else restates the rule.

A point's power meaning comes from the asset's power controls (`p_limit_kw` /
`p_setpoint_kw`: written value = kW * factor + offset), or from its unit (`kW`, `W`).
The enable point of a control carries no power (it switches a limit on or off). Any
other point of a floored asset has no known power: a write to it could stop the asset
at 0 W, so it is refused rather than guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge_agent.config import AssetConfig, PointConfig
from protocols.messages import CommandKind

__all__ = ["Floored", "PowerScale", "floor_problems", "floor_write", "min_power_kw", "power_scale"]

_INTEGER_TYPES = frozenset({"int16", "uint16", "int32", "uint32"})
_POWER_KINDS: tuple[CommandKind, ...] = ("p_limit_kw", "p_setpoint_kw")
_EPS = 1e-9


def min_power_kw(asset: AssetConfig) -> float | None:
    """The guaranteed minimum power of `asset` in kW (EV/HP default 4.2), None if it has none."""
    floor = asset.guaranteed_min_kw
    return floor if floor is not None and floor > 0 else None


@dataclass(frozen=True, slots=True)
class PowerScale:
    """Point value = kW * factor + offset."""

    factor: float
    offset: float

    def to_kw(self, value: float) -> float:
        """Point value -> kW."""
        return (value - self.offset) / self.factor

    def to_point(self, p_kw: float) -> float:
        """Power in kW -> point value."""
        return p_kw * self.factor + self.offset


def power_scale(asset: AssetConfig, point_name: str) -> PowerScale | None:
    """How a value written to `point_name` translates to kW, None if it has no power meaning."""
    for kind in _POWER_KINDS:
        control = asset.controls.get(kind)
        if control is not None and control.point == point_name:
            return PowerScale(control.factor, control.offset)
    try:
        point = asset.point(point_name)
    except KeyError:
        return None
    if point.unit == "kW":
        return PowerScale(1.0, 0.0)
    if point.unit == "W":
        return PowerScale(1000.0, 0.0)
    return None


def _enable_points(asset: AssetConfig) -> set[str]:
    return {c.enable.point for c in asset.controls.values() if c.enable is not None}


@dataclass(frozen=True, slots=True)
class Floored:
    """What may be written: `value` (point units; None = refuse the write) and why it changed."""

    value: float | None
    note: str | None = None

    @property
    def refused(self) -> bool:
        """True when the write must not happen at all."""
        return self.value is None


def _whole_units(point: PointConfig) -> bool:
    """The register holds whole raw units and we know the scale (no SunSpec scale factor)."""
    return point.type in _INTEGER_TYPES and point.sf_address is None


def _representable_at_least(point: PointConfig, scale: PowerScale, floor_kw: float) -> float:
    """The point value closest to `floor_kw` that the register can hold without going below it."""
    exact = scale.to_point(floor_kw)
    if not _whole_units(point):
        return exact
    raw = (exact / point.sign - point.offset) / point.scale
    candidates = [point.sign * (r * point.scale + point.offset) for r in (math.floor(raw), math.ceil(raw))]
    candidates += [
        point.sign * (r * point.scale + point.offset) for r in (math.floor(raw) - 1, math.ceil(raw) + 1)
    ]
    ok = [v for v in candidates if scale.to_kw(v) >= floor_kw - _EPS]
    return min(ok, key=scale.to_kw)


def floor_write(asset: AssetConfig, point_name: str, value: float) -> Floored:
    """The value that may be written to `point_name` of `asset` so it never goes below its floor."""
    floor_kw = min_power_kw(asset)
    if floor_kw is None or point_name in _enable_points(asset):
        return Floored(value)
    scale = power_scale(asset, point_name)
    if scale is None:
        return Floored(
            None, f"{asset.id}.{point_name} has no known power: a write could go below {floor_kw:g} kW"
        )
    point = asset.point(point_name)
    written = value
    if math.isfinite(value) and _whole_units(point):  # what the register will actually hold after rounding
        raw = round((value / point.sign - point.offset) / point.scale)
        written = point.sign * (raw * point.scale + point.offset)
    if math.isfinite(written) and scale.to_kw(written) >= floor_kw - _EPS:
        return Floored(value)
    raised = _representable_at_least(point, scale, floor_kw)
    return Floored(raised, f"§14a guaranteed minimum {floor_kw:g} kW")


def floor_problems(asset: AssetConfig) -> list[str]:
    """What in a floored asset's config the floor will refuse or override (reported at start)."""
    floor_kw = min_power_kw(asset)
    if floor_kw is None:
        return []
    out = []
    mode = asset.controls.get("mode")
    if (
        mode is not None
        and power_scale(asset, mode.point) is None
        and mode.point not in _enable_points(asset)
    ):
        out.append(f"mode commands write {mode.point!r}, which has no known power: they will be refused")
    for step in asset.safe_state:
        if step.write is None:
            continue
        checked = floor_write(asset, step.point, step.write)
        if checked.refused:
            out.append(f"safe state write to {step.point!r} has no known power: it will be skipped")
        elif checked.value != step.write:
            out.append(f"safe state write {step.point}={step.write:g} is below {floor_kw:g} kW: raised")
    for kind in _POWER_KINDS:
        control = asset.controls.get(kind)
        if control is None:
            continue
        point = asset.point(control.point)
        scale = power_scale(asset, control.point)
        assert scale is not None
        top = point.max if scale.factor > 0 else point.min
        if top is not None and scale.to_kw(top) < floor_kw - _EPS:
            out.append(f"{control.point!r} cannot reach {floor_kw:g} kW within its range: the floor wins")
    return out
