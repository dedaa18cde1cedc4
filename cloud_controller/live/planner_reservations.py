"""The live planner's DR reservations: what it holds of them between plans and hands to the LP and the guard.

Why a module of its own: the rules of a reservation are pure (live/reservations.py); this is
the planner's state around them — the reservations in force (`MpcPlanner.set_reservations`,
renewed by the service before every plan and guard step), the last plan's battery floors and
what it could not keep — and the two places they enter: the LP's per-period battery bounds
(`apply`) and the fleet guard's DR setpoints and SoC floors (`feed_guard`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from cloud_controller.dispatch import BatterySteps, FloatArray, Problem, StorageState
from cloud_controller.live.guard import FleetGuard
from cloud_controller.live.reservations import (
    BatteryWindow,
    Reservation,
    ReservedSteps,
    active_setpoints,
    default_steps,
    remaining_discharge_kwh,
    reserve_steps,
    soc_floor_kwh,
)

__all__ = ["PlannerReservations"]

log = logging.getLogger(__name__)


class PlannerReservations:
    """The DR-selected batteries of one planner: `battery_of` maps (site, asset) to the LP's battery column."""

    def __init__(
        self, problem: Problem, battery_of: Mapping[tuple[str, str], int], *, horizon: int, period_s: float
    ) -> None:
        self.problem = problem
        self.battery_of = dict(battery_of)
        self.horizon = horizon
        self.period_s = period_s
        #: DR-selected batteries (live/reservations.py): set by the service before each plan and guard step
        self.reservations: tuple[Reservation, ...] = ()
        #: the last plan's reservations, with what it could not keep
        self.last: ReservedSteps | None = None
        self.e_floor_kwh: FloatArray = problem.bat_e_min_kwh.astype(float).copy()  # the last plan's floors

    def set(self, reservations: Sequence[Reservation]) -> None:
        """The reservations from now on; () clears them."""
        self.reservations = tuple(reservations)

    def apply(
        self,
        steps: BatterySteps | None,
        bounds: tuple[FloatArray, FloatArray, FloatArray],
        state: StorageState,
        starts: Sequence[datetime],
    ) -> BatterySteps | None:
        """The per-period battery bounds with the reservations' fixed injections and SOC floors in."""
        live = [r for r in self.reservations if r.end > starts[0]] if starts else []
        if not live:
            self.last = None
            return steps
        p_max, e_lo, e_hi = bounds
        self.e_floor_kwh = e_lo.copy()
        reserved = reserve_steps(
            steps if steps is not None else default_steps(p_max, e_lo, self.horizon),
            live,
            self.battery_of,
            BatteryWindow(state.e_bat_kwh, e_lo, e_hi, self.problem.bat_eta_c, self.problem.bat_eta_d),
            starts=starts,
            period_s=self.period_s,
        )
        for rid, short in reserved.short_kwh.items():
            kwh = {site: round(float(v), 3) for site, v in short.items()}
            log.warning("DR %s: the reserved batteries cannot give %s kWh of the event", rid, kwh)
        self.last = reserved
        return reserved.steps

    def floors_pct(self, now: datetime) -> dict[str, float]:
        """Site → SoC % its battery must hold now for the rest of its DR event (the guard's floor).

        selected kWh still to come / η_d + the plan's floor for the battery, over its capacity.
        """
        out: dict[str, float] = {}
        for res in self.reservations:
            k = self.battery_of.get((res.site, res.asset))
            cap = float(self.problem.bat_e_max_kwh[k]) if k is not None else 0.0
            if k is None or cap <= 0 or res.end <= now:
                continue
            floor = soc_floor_kwh(
                remaining_discharge_kwh(res, now), self.problem.bat_eta_d, float(self.e_floor_kwh[k])
            )
            out[res.site] = max(out.get(res.site, 0.0), 100.0 * floor / cap)
        return out

    def feed_guard(self, guard: FleetGuard, now: datetime) -> None:
        """Give the guard the DR setpoints in force now and the SoC floors the reservations keep."""
        guard.set_reserved(active_setpoints(self.reservations, now), now)
        guard.set_reserved_floors(self.floors_pct(now), eta_d=self.problem.bat_eta_d)
