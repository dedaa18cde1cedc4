"""The Schutterwald study's control measures as pure functions of a day-ahead forecast (§2.3.3–2.3.4).

Each takes the forecast HV/MV load (the Schutterwald study: a power flow of the 2030 scenario without
storage, the "pseudo-forecast") and a limit, finds each day's congestion onset, and
returns modified profiles (CurA, CurB) or per-step cost parameters (ProA, ProB) for the
rolling-horizon OPF. Nothing here touches the solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def congestion_onsets(forecast_kw: FloatArray, limit_kw: float, steps_per_day: int) -> IntArray:
    """Per day, the first step whose forecast load exceeds the limit (-1: no congestion that day)."""
    f = np.asarray(forecast_kw, dtype=float)
    n_days = len(f) // steps_per_day
    over = (f[: n_days * steps_per_day] > limit_kw).reshape(n_days, steps_per_day)
    first = np.argmax(over, axis=1)
    out: IntArray = np.where(over.any(axis=1), np.arange(n_days) * steps_per_day + first, -1).astype(np.int64)
    return out


def cur_a(
    ev_kw: FloatArray,
    onsets: IntArray,
    steps_per_day: int,
    *,
    cap_kw: float,
    p_max_kw: float,
    dt_h: float,
) -> FloatArray:
    """CurA: EV charging capped at `cap_kw` from the onset to the end of the day.

    The energy the EVs wanted in that window is delivered as fast as the cap allows
    (a backlog), and what is still missing at midnight is charged at the original power
    from the start of the next day (the Schutterwald study Fig. 6 top). Energy is conserved exactly,
    except a backlog left at the very end of the profile, which is dropped.
    """
    out = np.array(ev_kw, dtype=float, copy=True)
    t_total, n = out.shape
    carry = np.zeros(n)
    for t0 in (int(x) for x in onsets if x >= 0):
        day_end = (t0 // steps_per_day + 1) * steps_per_day
        backlog = np.zeros(n)
        for t in range(t0, min(day_end, t_total)):
            backlog += out[t] * dt_h
            out[t] = np.minimum(cap_kw, backlog / dt_h)
            backlog -= out[t] * dt_h
        carry = backlog
        t = day_end
        while t < t_total and carry.max() > 1e-9:
            extra = np.minimum(np.maximum(p_max_kw - out[t], 0.0), carry / dt_h)
            out[t] += extra
            carry -= extra * dt_h
            t += 1
    return out


@dataclass(frozen=True)
class CurBResult:
    """CurB's outcome: the controlled thermal demand, the heat pumps' caps and the energy deferred."""

    heat_kw: FloatArray  # (T, n_hp) controlled thermal demand
    hp_cap_frac: FloatArray  # (T, n_hp) electric cap as a share of the rating
    deferred_kwh: float  # thermal energy moved out of the curtailment windows


def cur_b(
    heat_kw: FloatArray,
    cop: FloatArray,
    hp_p_max_kw: FloatArray,
    onsets: IntArray,
    *,
    share: float,
    duration_steps: int,
    recovery_steps: int,
    dt_h: float,
) -> CurBResult:
    """CurB: heat pumps at `share` of their capacity for `duration_steps` from the onset.

    The thermal demand above that is deferred and recovered over the next
    `recovery_steps`, in proportion to each heat pump's spare capacity (the Schutterwald study Fig. 6
    bottom): the "cold load pickup" that can create new peaks.
    """
    heat = np.array(heat_kw, dtype=float, copy=True)
    t_total, n = heat.shape
    cap = np.ones((t_total, n))
    q_max = np.asarray(hp_p_max_kw, float)[None, :] * np.asarray(cop, float)[:, None]
    deferred_total = 0.0
    for t0 in (int(x) for x in onsets if x >= 0):
        w = slice(t0, min(t0 + duration_steps, t_total))
        limited = np.minimum(heat[w], share * q_max[w])
        deferred = (heat[w] - limited).sum(axis=0) * dt_h
        heat[w] = limited
        cap[w] = share
        deferred_total += float(deferred.sum())
        r = slice(w.stop, min(w.stop + recovery_steps, t_total))
        if r.stop <= r.start:
            continue
        room = np.maximum(q_max[r] - heat[r], 0.0)
        room_kwh = room.sum(axis=0) * dt_h
        fit = np.minimum(deferred, room_kwh)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(room_kwh > 0, fit / room_kwh, 0.0)
        heat[r] += room * frac[None, :]
        rest = (
            deferred - fit
        )  # more than the heat pumps can make: spread evenly, the store or unmet covers it
        heat[r] += rest[None, :] / ((r.stop - r.start) * dt_h)
    return CurBResult(heat, cap, deferred_total)


@dataclass(frozen=True)
class ProResult:
    """ProA/ProB's per-step cost parameters for the OPF, and where the pre-charge windows lie."""

    c_import: FloatArray  # (T,) grid cost per kWh
    bat_w_discharge: FloatArray  # (T,) value of stored battery energy when discharged
    ts_w_discharge: FloatArray  # (T,)
    window_start: IntArray  # per congested day, start of the pre-charge window
    precharge: npt.NDArray[np.bool_]  # (T,) steps with the lowered grid cost


def pro_ab(
    forecast_kw: FloatArray,
    onsets: IntArray,
    *,
    pro_a: bool,
    pro_b: bool,
    window_steps: int,
    search_steps: int,
    c_import_base: float,
    c_import_low: float,
    bat_w_discharge_base: float,
    ts_w_discharge_base: float,
    w_discharge_hold: float,
) -> ProResult:
    """Prices of the proactive policies ProA and ProB around each congestion onset.

    ProA: cheap grid for the lowest-forecast `window_steps` within `search_steps` before
    each onset, so storage pre-charges from the grid. ProB: discharge priced above grid
    import from that window until the onset, so storage holds its energy and starts to
    discharge exactly when congestion begins (the Schutterwald study Fig. 7).
    """
    f = np.asarray(forecast_kw, dtype=float)
    t_total = len(f)
    c = np.full(t_total, c_import_base)
    wb = np.full(t_total, bat_w_discharge_base)
    wt = np.full(t_total, ts_w_discharge_base)
    starts: list[int] = []
    pre = np.zeros(t_total, dtype=bool)
    for t0 in (int(x) for x in onsets if x >= 0):
        lo = max(0, t0 - search_steps)
        span = t0 - lo
        if span <= 0:
            starts.append(t0)
            continue
        k = min(window_steps, span)
        sums = np.convolve(f[lo:t0], np.ones(k), mode="valid")
        s = lo + int(np.argmin(sums))
        starts.append(s)
        if pro_a:
            c[s : s + k] = c_import_low
            pre[s : s + k] = True
        if pro_b:
            wb[s:t0] = w_discharge_hold
            wt[s:t0] = w_discharge_hold
    return ProResult(c, wb, wt, np.asarray(starts, dtype=np.int64), pre)
