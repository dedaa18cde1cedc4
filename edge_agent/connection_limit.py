"""The site connection limit as a pure decision: which asset to move, and how far, this poll.

An EMS's peak shaving, held by the agent with its own devices (`grid_connection` in the
site YAML, tightened by a DSO's `site_import_max_kw` cap while valid). Given the meter's
net power, each controllable asset's measured power and bounds, the cloud's target for
it and the local overrides already in force, `decide_limit` returns the overrides for
the next poll. No I/O: `edge_agent.connection_guard` is the shell that reads and writes.

Each lever's value is the kW of the control the limit writes:
- battery: its `p_setpoint_kw` (load-positive); import relief lowers it (discharge), export
  relief raises it (charge), within its power limits and not past its SOC bounds;
- EV charger, heat pump: their `p_limit_kw`; import relief lowers the cap, never below the
  §14a guaranteed minimum (`low_kw`): what is left above the limit is reported, not taken;
- PV: its `p_limit_kw` (generation magnitude); export relief lowers it towards 0.

Order of measures (cheapest for the owner first): import battery → EV → heat pump;
export battery → PV. Measures aim at `limit - margin/2`; nothing is released until the
site is below `limit - margin`, and then one asset per poll, the last engaged first, by
the headroom only (it lands back at the aim, not above the limit): no oscillation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

__all__ = [
    "EXPORT_ORDER",
    "IMPORT_ORDER",
    "Lever",
    "LimitDecision",
    "Limits",
    "Override",
    "SiteCap",
    "decide_limit",
    "effective_limits",
    "tighter_kw",
]

Side = Literal["import", "export"]
LeverRole = Literal["battery", "ev", "hp", "pv"]

IMPORT_ORDER: Final[tuple[LeverRole, ...]] = ("battery", "ev", "hp")
EXPORT_ORDER: Final[tuple[LeverRole, ...]] = ("battery", "pv")
_EPS_KW: Final = 1e-3


@dataclass(frozen=True, slots=True)
class Lever:
    """One controllable asset as the limit sees it (values in its control's kW, see the module doc)."""

    asset: str
    role: LeverRole
    p_now_kw: float  # measured power, load-positive
    low_kw: float  # the lowest control value the limit may write (EV/HP: the §14a minimum)
    high_kw: float  # the highest control value the limit may write
    target_kw: float | None = None  # the cloud's value for this control; None = none in force

    @property
    def free_kw(self) -> float:
        """The control's value without the local limit: the cloud's target, else unrestricted/idle."""
        if self.target_kw is not None:
            return self.target_kw
        return 0.0 if self.role == "battery" else self.high_kw


@dataclass(frozen=True, slots=True)
class Override:
    """A local override in force: the control value written, and which limit it serves."""

    value_kw: float
    side: Side


@dataclass(frozen=True, slots=True)
class Limits:
    """The effective limits this poll (None = no limit on that side) and the hysteresis band."""

    import_max_kw: float | None
    export_max_kw: float | None
    margin_kw: float = 0.5


@dataclass(frozen=True, slots=True)
class LimitDecision:
    """The overrides after this poll, which assets' writes change, and the excess no measure removes."""

    overrides: dict[str, Override]
    changed: tuple[str, ...]
    excess_kw: float = 0.0
    released: tuple[str, ...] = field(default=())

    @property
    def active(self) -> bool:
        """Whether any local measure is in force."""
        return bool(self.overrides)


@dataclass(frozen=True, slots=True)
class SiteCap:
    """A DSO's dynamic import cap (a `site_import_max_kw` command) and when it ends."""

    import_max_kw: float
    valid_until: datetime
    cmd_id: str


def effective_limits(
    import_max_kw: float | None,
    export_max_kw: float | None,
    margin_kw: float,
    cap: SiteCap | None,
    now: datetime,
) -> Limits:
    """The static limits tightened by the DSO cap while it is valid (the tighter of both)."""
    if cap is not None and now < cap.valid_until:
        import_max_kw = cap.import_max_kw if import_max_kw is None else min(import_max_kw, cap.import_max_kw)
    return Limits(import_max_kw, export_max_kw, margin_kw)


def tighter_kw(role: LeverRole, side: Side, a: float, b: float) -> float:
    """Of two values of a lever's control, the one that helps `side`'s limit more."""
    if role == "battery" and side == "export":
        return max(a, b)  # charging more absorbs more feed-in
    return min(a, b)  # a lower setpoint or cap: less import, less generation


def _base_kw(lever: Lever, written: float | None, side: Side) -> float:
    """What the lever does now, in its control's kW (a cap above the draw does not bind).

    A battery's setpoint already written counts even if the reading predates it, so a
    stale reading never loosens a measure.
    """
    if lever.role == "battery":
        if written is None:
            return lever.p_now_kw
        return tighter_kw("battery", side, lever.p_now_kw, written)
    cap = written if written is not None else lever.free_kw
    if lever.role == "pv":
        return min(max(-lever.p_now_kw, 0.0), cap)
    return min(max(lever.p_now_kw, 0.0), cap)


def _written(lever: Lever, override: Override | None) -> float | None:
    if override is None:
        return lever.target_kw
    if lever.target_kw is None:
        return override.value_kw
    return tighter_kw(lever.role, override.side, override.value_kw, lever.target_kw)


def _relieve(
    side: Side,
    need_kw: float,
    levers: Sequence[Lever],
    overrides: dict[str, Override],
) -> tuple[float, list[str]]:
    """Move levers in `side`'s order until `need_kw` of net power is relieved; return (left, moved)."""
    order = IMPORT_ORDER if side == "import" else EXPORT_ORDER
    moved: list[str] = []
    for role in order:
        for lever in (lv for lv in levers if lv.role == role):
            if need_kw <= _EPS_KW:
                return 0.0, moved
            base = _base_kw(lever, _written(lever, overrides.get(lever.asset)), side)
            if side == "export" and role == "battery":
                give = min(need_kw, lever.high_kw - base)
                new = base + give
            else:
                give = min(need_kw, base - lever.low_kw)
                new = base - give
            if give <= _EPS_KW:
                continue
            overrides[lever.asset] = Override(round(new, 6), side)
            moved.append(lever.asset)
            need_kw -= give
    return max(need_kw, 0.0), moved


def _release_one(
    side: Side, headroom_kw: float, levers: Sequence[Lever], overrides: dict[str, Override]
) -> tuple[str | None, bool]:
    """Give `headroom_kw` back to the last engaged lever of `side`; (asset, dropped) or (None, False)."""
    order = IMPORT_ORDER if side == "import" else EXPORT_ORDER
    engaged = [
        lv
        for role in order
        for lv in levers
        if lv.role == role and (o := overrides.get(lv.asset)) is not None and o.side == side
    ]
    if not engaged:
        return None, False
    lever = engaged[-1]
    value = overrides[lever.asset].value_kw
    lowers = side == "export" and lever.role == "battery"  # an export charge is released downwards
    new = value - headroom_kw if lowers else value + headroom_kw
    free = lever.free_kw
    if (new <= free + _EPS_KW) if lowers else (new >= free - _EPS_KW):
        del overrides[lever.asset]
        return lever.asset, True
    overrides[lever.asset] = Override(round(new, 6), side)
    return lever.asset, False


def decide_limit(
    net_kw: float,
    limits: Limits,
    levers: Sequence[Lever],
    overrides: Mapping[str, Override],
) -> LimitDecision:
    """The overrides for the next poll from the meter's net power (load-positive) and the levers."""
    # A lever that cannot be read this poll keeps its measure: easing it blind could only add load.
    out = dict(overrides)
    changed: list[str] = []
    released: list[str] = []
    excess = 0.0
    half = limits.margin_kw / 2.0
    sides: tuple[tuple[Side, float | None], ...] = (
        ("import", limits.import_max_kw),
        ("export", limits.export_max_kw),
    )
    for side, limit in sides:
        if limit is None:  # no limit on this side (a DSO cap expired): every measure of it ends
            gone = [a for a, o in out.items() if o.side == side]
            for asset in gone:
                del out[asset]
            changed += gone
            released += gone
            continue
        over = net_kw - limit if side == "import" else -limit - net_kw
        if over > 0:
            left, moved = _relieve(side, over + half, levers, out)
            changed += moved
            excess = max(excess, left - half)
        elif over < -limits.margin_kw:
            eased, dropped = _release_one(side, -over - half, levers, out)
            if eased is not None:
                changed.append(eased)
                if dropped:
                    released.append(eased)
    return LimitDecision(
        out, tuple(dict.fromkeys(changed)), round(max(excess, 0.0), 6), tuple(dict.fromkeys(released))
    )
