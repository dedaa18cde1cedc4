"""Agent-based EV home-charging sessions (the Schutterwald study §2.2 uses an agent-based model [31]).

Each EV decides day by day whether it comes home (weekday evenings likely, weekends
less and earlier), when it arrives and leaves, and how much energy it wants; sessions
of one EV never overlap. Seeded and reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from profiles._common import step_h

__all__ = ["EvFleet", "EvSession", "ev_demand", "ev_sessions"]


@dataclass(frozen=True)
class EvSession:
    """One plug-in: steps [arrival_step, departure_step) plugged, wanting `e_need_kwh`."""

    ev: int
    arrival_step: int
    departure_step: int
    e_need_kwh: float


@dataclass(frozen=True)
class EvFleet:
    """Per-step matrices (T, n_ev) describing the fleet's sessions.

    plugged: EV at home and plugged; e_need_kwh: energy requested by a session arriving
    in that step (0 elsewhere); departure_step: its departure step (exclusive; −1 where
    no arrival); uncontrolled_kw: as-fast-as-possible charging at p_max_kw.
    """

    plugged: np.ndarray
    e_need_kwh: np.ndarray
    departure_step: np.ndarray
    uncontrolled_kw: np.ndarray
    p_max_kw: float
    sessions: tuple[EvSession, ...]


def ev_sessions(index: pd.DatetimeIndex, *, n_ev: int, seed: int) -> list[EvSession]:
    """Draw the seeded charging sessions of `n_ev` cars over `index`.

    Weekday arrival ~ N(18 h, 1.5 h) local, stay until ~N(7.5 h, 1 h) next day;
    weekend arrival ~ N(14 h, 3 h), stay ~ 4-12 h; energy ~ N(14, 4) kWh clipped to [4, 30].
    """
    rng = np.random.default_rng(seed)
    dt_h = step_h(index)
    t_steps = len(index)
    idx = index.tz_convert("UTC") if index.tz is not None else index
    first_midnight = idx[0].normalize()
    n_days = int((idx[-1].normalize() - first_midnight).days) + 2
    offset_h = (idx[0] - first_midnight).total_seconds() / 3600.0
    local_offset_h = 1.0  # CET; sessions are drawn on local wall-clock hours
    busy_until = np.full(n_ev, -1, dtype=int)
    sessions: list[EvSession] = []
    for d in range(-1, n_days):
        weekday = (first_midnight + pd.Timedelta(days=d)).dayofweek
        weekend = weekday >= 5
        p_home = 0.45 if weekend else 0.7
        home = rng.random(n_ev) < p_home
        if weekend:
            arr_h = rng.normal(14.0, 3.0, n_ev)
            stay_h = rng.uniform(4.0, 12.0, n_ev)
        else:
            arr_h = rng.normal(18.0, 1.5, n_ev)
            dep_h = 24.0 + rng.normal(7.5, 1.0, n_ev)
            stay_h = np.maximum(dep_h - arr_h, 1.0)
        e_kwh = np.clip(rng.normal(14.0, 4.0, n_ev), 4.0, 30.0)
        arr_abs_h = d * 24.0 + np.clip(arr_h, 0.0, 23.9) - local_offset_h - offset_h
        arr_step = np.floor(arr_abs_h / dt_h).astype(int)
        dep_step = np.floor((arr_abs_h + stay_h) / dt_h).astype(int)
        for ev in np.nonzero(home)[0]:
            a, b = int(arr_step[ev]), int(dep_step[ev])
            if a < 0 or a >= t_steps or a <= busy_until[ev] or b <= a:
                continue
            b = min(b, t_steps)
            sessions.append(EvSession(int(ev), a, b, float(e_kwh[ev])))
            busy_until[ev] = b
    return sessions


def ev_demand(index: pd.DatetimeIndex, *, n_ev: int, seed: int, p_max_kw: float = 11.0) -> EvFleet:
    """Fleet matrices for `n_ev` home chargers of `p_max_kw` each (see `EvFleet`)."""
    t_steps = len(index)
    dt_h = step_h(index)
    sessions = ev_sessions(index, n_ev=n_ev, seed=seed)
    plugged = np.zeros((t_steps, n_ev), dtype=bool)
    e_need = np.zeros((t_steps, n_ev))
    dep = np.full((t_steps, n_ev), -1, dtype=int)
    unc = np.zeros((t_steps, n_ev))
    e_step = p_max_kw * dt_h
    for s in sessions:
        plugged[s.arrival_step : s.departure_step, s.ev] = True
        e_need[s.arrival_step, s.ev] = s.e_need_kwh
        dep[s.arrival_step, s.ev] = s.departure_step
        n_full = int(s.e_need_kwh // e_step)
        n_full = min(n_full, s.departure_step - s.arrival_step)
        unc[s.arrival_step : s.arrival_step + n_full, s.ev] = p_max_kw
        rest_step = s.arrival_step + n_full
        if rest_step < s.departure_step:
            unc[rest_step, s.ev] = min(p_max_kw, (s.e_need_kwh - n_full * e_step) / dt_h)
    return EvFleet(plugged, e_need, dep, unc, p_max_kw, tuple(sessions))
