"""DR reservations in the planner's battery rows: the event's setpoint fixed, the energy kept for it (pure).

Why: a battery a DR request selected is commanded by the request during its event, but
the live planner used to count on it as if it were free — it discharged the battery
against a congestion before the event (so it was empty when the event began) and kept
planning it during the event (so the fleet guard, which starts from the plan's value,
overrode the DR setpoint). docs/dr.md §6 "Reservations" has the measured case.

A `Reservation` is one selected battery: its request's intervals and the signed kW the
request commands in each (load-positive: a reduction is a discharge, kW < 0). From
selection time until the event's end it enters the planner's LP through the per-period
battery bounds (`BatterySteps`) only, so nothing else in the LP changes:

- **during the event** the DR setpoint is a fixed injection: a period the event covers
  whole has its discharge fixed at the setpoint (`dis_min = dis_max`, no charging), so
  the planner plans the *other* assets around it; a period it covers in part must
  discharge at least the event's share (`dis_min` = the setpoint's mean over the
  period). A charging setpoint (an increase request) caps the charge at the setpoint and
  forbids discharge: the LP has no lower bound on charging (`BatterySteps` has none),
  which is the conservative side for the energy the planner expects;
- **before and during the event** the energy at the end of each period is at least the
  battery's floor plus what the rest of the event still takes from the cells: at the
  event's start `E ≥ selected kWh / η_d + floor` (η_d the LP's discharge efficiency,
  the energy leaving the cells being the AC energy over η_d).

The LP's bounds must stay feasible (`BatterySteps`' contract), so the floors are capped
at the most energy the battery can hold by then from its state now (charging at the
per-period cap, after the fixed discharges), and a fixed discharge the cells cannot give
is cut to what they hold; `ReservedSteps.short_kwh` says by how much, per reservation,
instead of a silently infeasible plan. Keeping the floor may make the planner charge the
battery before the event (or forgo discharging it against a congestion then): the DR
promise is the planner's fixed term, the congestion its soft branch rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from cloud_controller.dispatch import BatterySteps, FloatArray

__all__ = [
    "BatteryWindow",
    "Reservation",
    "ReservedSteps",
    "active_setpoints",
    "default_steps",
    "period_means_kw",
    "remaining_discharge_kwh",
    "reserve_steps",
    "soc_floor_kwh",
]

#: Two bounds closer than this (kW, kWh) are the same: a fixed discharge is `dis_min == dis_max`.
EPS = 1e-9


@dataclass(frozen=True)
class Reservation:
    """One DR-selected battery: its site and asset, the request's intervals and signed kW per interval.

    `held_from` is when the request takes the asset (its first interval's start less the
    activator's lead): from then to the last interval's end the guard starts from the DR
    setpoint (`active_setpoints`). The reservation binds the planner from the moment it is
    known (selection time) to `end`.
    """

    request_id: str
    site: str
    asset: str
    bounds: tuple[tuple[datetime, datetime], ...]
    kw: tuple[float, ...]
    held_from: datetime

    def __post_init__(self) -> None:
        if not self.bounds or len(self.bounds) != len(self.kw):
            raise ValueError(
                f"reservation {self.request_id} {self.site}/{self.asset}: {len(self.bounds)} intervals "
                f"for {len(self.kw)} setpoints"
            )

    @property
    def start(self) -> datetime:
        """The first interval's start."""
        return self.bounds[0][0]

    @property
    def end(self) -> datetime:
        """The last interval's end."""
        return self.bounds[-1][1]

    def setpoint_at(self, t: datetime) -> float | None:
        """The DR setpoint (kW, load-positive) in force at `t`, None outside every interval."""
        for (a, b), kw in zip(self.bounds, self.kw, strict=True):
            if a <= t < b:
                return kw
        return None


def soc_floor_kwh(selected_kwh: float, eta_d: float, floor_kwh: float) -> float:
    """The energy the cells must hold when the event starts: selected AC kWh / η_d + the battery's floor."""
    if not 0 < eta_d <= 1:
        raise ValueError(f"eta_d must be in (0, 1], got {eta_d}")
    return max(selected_kwh, 0.0) / eta_d + floor_kwh


def _overlap_h(a0: datetime, a1: datetime, b0: datetime, b1: datetime) -> float:
    return max(0.0, (min(a1, b1) - max(a0, b0)).total_seconds()) / 3600.0


def period_means_kw(
    res: Reservation, starts: Sequence[datetime], period_s: float
) -> tuple[FloatArray, FloatArray]:
    """Per planning period: (the DR setpoint's mean kW over the period, the share of it the event covers)."""
    dt_h = period_s / 3600.0
    mean = np.zeros(len(starts))
    share = np.zeros(len(starts))
    for t, s in enumerate(starts):
        e = s + timedelta(seconds=period_s)
        for (a, b), kw in zip(res.bounds, res.kw, strict=True):
            h = _overlap_h(s, e, a, b)
            mean[t] += kw * h / dt_h
            share[t] += h / dt_h
    return mean, np.minimum(share, 1.0)


def remaining_discharge_kwh(res: Reservation, after: datetime) -> float:
    """AC kWh the event still discharges from `after` on (its charging intervals count 0)."""
    return sum(
        max(-kw, 0.0) * _overlap_h(after, res.end, a, b)
        for (a, b), kw in zip(res.bounds, res.kw, strict=True)
    )


@dataclass
class ReservedSteps:
    """The planner's per-period battery bounds with the reservations in, and what could not be kept."""

    steps: BatterySteps
    #: request id → site → AC kWh of the event's fixed discharge the cells cannot give (absent: kept in full).
    short_kwh: dict[str, dict[str, float]] = field(default_factory=dict)
    #: (site, asset) of the reservations applied (a battery the planner does not know is skipped).
    applied: set[tuple[str, str]] = field(default_factory=set)


def default_steps(p_max_kw: FloatArray, e_lo_kwh: FloatArray, horizon: int) -> BatterySteps:
    """Per-period bounds that change nothing: charge and discharge up to p_max, energy from e_lo."""
    ch = np.broadcast_to(np.asarray(p_max_kw, float)[None, :], (horizon, len(p_max_kw))).copy()
    e = np.broadcast_to(np.asarray(e_lo_kwh, float)[None, :], (horizon, len(e_lo_kwh))).copy()
    return BatterySteps(ch, np.zeros_like(ch), ch.copy(), e)


@dataclass(frozen=True)
class BatteryWindow:
    """Per battery (LP column): its energy now and the window the plan may use (kWh); the LP's efficiencies."""

    e_now_kwh: FloatArray
    e_lo_kwh: FloatArray  # the battery's floor in the plan
    e_hi_kwh: FloatArray
    eta_c: float
    eta_d: float


@dataclass
class _Bounds:
    """The per-period bounds being tightened, (T, n_bat) each."""

    ch: FloatArray
    dis_min: FloatArray
    dis_max: FloatArray
    e_min: FloatArray


def _fix_injection(b: _Bounds, k: int, mean: FloatArray, share: FloatArray) -> None:
    """The DR setpoint as battery k's power in the periods the event covers (module docstring)."""
    for t in range(len(mean)):
        if share[t] <= EPS:
            continue
        d = max(-float(mean[t]), 0.0)
        if share[t] < 1.0 - EPS:  # in part: at least the event's share
            b.dis_min[t, k] = max(b.dis_min[t, k], min(d, b.dis_max[t, k]))
        elif d > 0:  # whole: the setpoint is the battery's power
            b.dis_min[t, k] = b.dis_max[t, k] = min(d, b.dis_max[t, k])
            b.ch[t, k] = 0.0
        else:
            b.ch[t, k] = min(b.ch[t, k], max(float(mean[t]), 0.0))
            b.dis_min[t, k] = b.dis_max[t, k] = 0.0


def _keep_feasible(b: _Bounds, k: int, floor: FloatArray, w: BatteryWindow, dt_h: float) -> float:
    """Battery k's energy floors, capped at what it can hold; fixed discharges cut to what it has. kWh cut."""
    e_lo, e_hi = float(w.e_lo_kwh[k]), float(w.e_hi_kwh[k])
    cut_kwh = 0.0
    u = float(w.e_now_kwh[k])  # the most the cells can hold at the end of each period
    for t in range(len(floor)):
        gain = b.ch[t, k] * w.eta_c * dt_h
        if u + gain - b.dis_min[t, k] * dt_h / w.eta_d < e_lo - EPS:  # cannot give the fixed kW
            give = max(0.0, (u + gain - e_lo) * w.eta_d / dt_h)
            cut_kwh += (b.dis_min[t, k] - give) * dt_h
            fixed = b.dis_max[t, k] - b.dis_min[t, k] <= EPS
            b.dis_min[t, k] = give
            if fixed:
                b.dis_max[t, k] = give
        u = min(e_hi, u + gain - b.dis_min[t, k] * dt_h / w.eta_d)
        b.e_min[t, k] = max(b.e_min[t, k], min(float(floor[t]), u))
    return cut_kwh


def reserve_steps(
    steps: BatterySteps,
    reservations: Sequence[Reservation],
    battery_of: Mapping[tuple[str, str], int],
    window: BatteryWindow,
    *,
    starts: Sequence[datetime],
    period_s: float,
) -> ReservedSteps:
    """`steps` with each reservation's fixed injection and energy floors (see the module docstring).

    `battery_of`: (site, asset) → the battery's column in the LP; `window`: per battery its
    energy now and the window the plan may use (its floor is `e_lo_kwh`); `starts`: each
    planning period's start. Reservations already over, or of a battery the planner does not
    plan (excluded, unknown), change nothing.
    """
    b = _Bounds(
        steps.ch_max_kw.copy(), steps.dis_min_kw.copy(), steps.dis_max_kw.copy(), steps.e_min_kwh.copy()
    )
    ends = [s + timedelta(seconds=period_s) for s in starts]
    out = ReservedSteps(steps)
    floors: dict[int, tuple[Reservation, FloatArray]] = {}
    for res in reservations:
        k = battery_of.get((res.site, res.asset))
        if k is None or not starts or res.end <= starts[0]:
            continue
        if b.dis_max[:, k].max(initial=0.0) <= EPS and b.ch[:, k].max(initial=0.0) <= EPS:
            continue  # pinned to 0 (excluded): the planner does not command it
        _fix_injection(b, k, *period_means_kw(res, starts, period_s))
        e_lo = float(window.e_lo_kwh[k])
        floor = np.array(
            [
                soc_floor_kwh(remaining_discharge_kwh(res, e), window.eta_d, e_lo) if e < res.end else 0.0
                for e in ends
            ]
        )
        if k in floors:
            floor = np.maximum(floors[k][1], floor)
        floors[k] = (res, floor)
        out.applied.add((res.site, res.asset))
    for k, (res, floor) in floors.items():
        cut_kwh = _keep_feasible(b, k, floor, window, period_s / 3600.0)
        if cut_kwh > EPS:
            out.short_kwh.setdefault(res.request_id, {})[res.site] = round(cut_kwh, 3)
    out.steps = BatterySteps(b.ch, b.dis_min, b.dis_max, b.e_min)
    return out


def active_setpoints(reservations: Sequence[Reservation], now: datetime) -> dict[str, float]:
    """Site → the DR battery setpoint in force now, for reservations holding their asset now.

    From `held_from` to the first interval the setpoint is the first interval's (the command
    is already on its way); the guard starts from these values instead of the plan's.
    """
    out: dict[str, float] = {}
    for res in reservations:
        if not res.held_from <= now < res.end:
            continue
        kw = res.setpoint_at(now)
        out[res.site] = res.kw[0] if kw is None and now < res.start else (kw if kw is not None else 0.0)
    return out
