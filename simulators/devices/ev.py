"""EV charger physics: sessions arrive and leave; a current limit slows charging.

Energy a session could not get before it left is carried forward to the next session
of the same charger (the car comes back emptier), so limiting power defers, not
deletes, demand. Three-phase 230 V: 16 A ≈ 11 kW; below 6 A (IEC 61851 minimum) the
charger pauses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from profiles.ev import EvSession

__all__ = ["EvCharger"]

PHASES = 3
V_PHASE = 230.0
I_MIN_A = 6.0


@dataclass
class EvCharger:
    """Sign: p_kw ≥ 0 (load). Sessions' steps refer to the profile index of `step_s`."""

    p_max_kw: float = 11.0
    limit_a: float = 16.0
    p_limit_kw: float | None = None  # power limit (e.g. §14a); None = none
    sessions: Sequence[EvSession] = ()
    step_s: float = 900.0
    plugged: bool = False
    e_remaining_kwh: float = 0.0
    e_session_kwh: float = 0.0
    e_unmet_kwh: float = 0.0  # carried forward from sessions that left unfinished
    e_total_kwh: float = 0.0
    departure_s: float = 0.0
    p_kw: float = 0.0
    _next: int = field(default=0, repr=False)

    @property
    def limit_kw(self) -> float:
        """Power the charger may draw: rating, current limit and power limit, whichever is lowest.

        Below the IEC 61851 minimum of 6 A per phase (4.14 kW) the charger pauses.
        """
        p = min(self.p_max_kw, PHASES * V_PHASE * self.limit_a / 1000.0)
        if self.p_limit_kw is not None:
            p = min(p, max(0.0, self.p_limit_kw))
        return 0.0 if p < PHASES * V_PHASE * I_MIN_A / 1000.0 - 1e-9 else p

    def restart_sessions(self) -> None:
        """Replay the session list from the start (the profile window wrapped around)."""
        self._next = 0
        if self.plugged:
            self.departure_s = 0.0

    def _update_sessions(self, t_s: float) -> None:
        if self.plugged and t_s >= self.departure_s:
            self.e_unmet_kwh += self.e_remaining_kwh
            self.plugged = False
            self.e_remaining_kwh = 0.0
        while self._next < len(self.sessions) and self.sessions[self._next].arrival_step * self.step_s <= t_s:
            s = self.sessions[self._next]
            self._next += 1
            dep = s.departure_step * self.step_s
            if dep <= t_s or self.plugged:
                continue
            self.plugged = True
            self.departure_s = dep
            self.e_remaining_kwh = s.e_need_kwh + self.e_unmet_kwh
            self.e_unmet_kwh = 0.0
            self.e_session_kwh = 0.0

    def plug_in(self, e_need_kwh: float, departure_s: float) -> None:
        """Start a session by hand (tests, demos)."""
        self.plugged = True
        self.departure_s = departure_s
        self.e_remaining_kwh = e_need_kwh + self.e_unmet_kwh
        self.e_unmet_kwh = 0.0
        self.e_session_kwh = 0.0

    def step(self, dt_s: float, *, t_s: float) -> float:
        """Advance to simulated second `t_s` (since the profile start); return power (kW)."""
        self._update_sessions(t_s)
        dt_h = dt_s / 3600.0
        p = 0.0
        if self.plugged and self.e_remaining_kwh > 0.0 and dt_h > 0.0:
            p = min(self.limit_kw, self.e_remaining_kwh / dt_h)
            self.e_remaining_kwh -= p * dt_h
            self.e_session_kwh += p * dt_h
            self.e_total_kwh += p * dt_h
        self.p_kw = p
        return p
