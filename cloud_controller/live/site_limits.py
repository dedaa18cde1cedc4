"""Each site's connection limits as the controller knows them, and the battery bounds that keep a plan within them.

A site's agent holds its `grid_connection` import/export maximum and a DSO's
`site_import_max_kw` cap locally (edge_agent/connection_guard.py): it clamps whatever the
cloud commands. A plan that ignores them is one the edge then corrects (`clamped` acks),
and the fleet's plan counts on power the site cannot take. So the planner plans within
them, from three sources, the tightest winning in each interval:

- the registry's `grid_connection` (static, what the contract says),
- the agent's telemetry (`Points.LIMIT_IMPORT_MAX_KW` / `LIMIT_EXPORT_MAX_KW` on the site
  meter's asset: what the edge holds now, a DSO cap included),
- a `site_import_max_kw` command the controller itself sent, for the intervals it is valid.

How: per interval, the battery's charge is held to the import headroom (`import max - base`),
its discharge to the export headroom, and where the forecast load is above the import max
the battery must discharge the excess, as far as its energy allows; an energy floor per
interval makes the LP charge beforehand for it. The bounds are built so the LP stays
feasible (soft: a load the battery cannot cover stays in the plan), and what is left over
the limit is reported per site (`shortfalls`), never dropped. EV chargers and heat pumps
are not moved for it here: the edge caps them, never below their §14a minimum.
Pure functions: no I/O.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from cloud_controller.dispatch import BatterySteps, FloatArray, Problem, StorageState
from cloud_controller.live.types import SiteLimitShortfall, SiteRef, SiteSnapshot
from protocols.assets import METER, Points, Role
from protocols.messages import SITE_IMPORT_MAX_KW, Command

__all__ = [
    "BatteryNow",
    "SentCap",
    "SentCapLog",
    "SiteLimits",
    "StepBounds",
    "clamp_battery_values",
    "fleet_limits",
    "limit_battery_steps",
    "sent_caps",
    "shortfalls",
    "site_limits",
    "step_bounds",
]

log = logging.getLogger(__name__)
#: Planned excess below this is rounding, not a shortfall.
SHORTFALL_TOL_KW = 0.01


@dataclass(frozen=True)
class SentCap:
    """A DSO cap the controller sent a site (`site_import_max_kw`) and until when it holds."""

    import_max_kw: float
    valid_until: datetime
    cmd_id: str


@dataclass(frozen=True)
class SiteLimits:
    """One site's import and export maximum per interval (kW, inf = none) and which source binds."""

    import_max_kw: FloatArray  # (T,)
    export_max_kw: FloatArray  # (T,)
    import_source: tuple[str, ...]
    export_source: tuple[str, ...]


@dataclass(frozen=True)
class BatteryNow:
    """Batteries as a plan may use them: power rating, energy now and its window (kW, kWh).

    Floats for one battery, or (m,) arrays for m batteries at once (`step_bounds` is vectorised
    over them: a fleet of 1,000 limited sites costs one pass over the horizon, not 1,000).
    """

    p_max_kw: float | FloatArray
    e_now_kwh: float | FloatArray
    e_min_kwh: float | FloatArray
    e_max_kwh: float | FloatArray


@dataclass(frozen=True)
class StepBounds:
    """One battery's per-interval bounds for its site's limit (kW and kWh, (T,) each)."""

    ch_max_kw: FloatArray
    dis_min_kw: FloatArray
    dis_max_kw: FloatArray
    e_min_kwh: FloatArray


def sent_caps(commands: Iterable[Command], now: datetime) -> dict[str, SentCap]:
    """Per site, the cap in force at `now`: the last `site_import_max_kw` sent, if still valid.

    The last, not the tightest: the agent holds the last cap it applied.
    """
    out: dict[str, SentCap] = {}
    for cmd in sorted((c for c in commands if c.kind == SITE_IMPORT_MAX_KW), key=lambda c: c.ts):
        if not isinstance(cmd.value, str):
            out[cmd.site] = SentCap(float(cmd.value), cmd.valid_until, cmd.cmd_id)
    return {site: cap for site, cap in out.items() if cap.valid_until > now}


@dataclass
class SentCapLog:
    """The `site_import_max_kw` commands the controller sent, kept while they can still be valid."""

    commands: list[Command] = field(default_factory=list)
    max_kept: int = 1000

    def note(self, commands: Iterable[Command]) -> None:
        """Keep the caps among `commands` (the oldest-ending go first beyond `max_kept`)."""
        self.commands += [c for c in commands if c.kind == SITE_IMPORT_MAX_KW]
        if len(self.commands) > self.max_kept:
            self.commands = sorted(self.commands, key=lambda c: c.valid_until)[-self.max_kept :]

    def valid(self, now: datetime) -> dict[str, SentCap]:
        """Per site, the cap in force at `now` (see `sent_caps`)."""
        return sent_caps(self.commands, now)


def _telemetry_kw(site: SiteRef, snap: SiteSnapshot | None, point: str) -> float | None:
    """The agent's latest limit point on its meter's asset; a value that is no limit is logged and dropped."""
    if snap is None:
        return None
    meter = site.asset_of(Role.METER)
    value = snap.points.get(f"{meter.asset if meter is not None else METER}/{point}")
    if value is None:
        return None
    if not math.isfinite(value) or value < 0:
        log.warning("site %s: %s = %r is no limit (kW >= 0): ignored", site.site, point, value)
        return None
    return value


def site_limits(
    site: SiteRef,
    snap: SiteSnapshot | None,
    cap: SentCap | None,
    starts: Sequence[datetime],
) -> SiteLimits | None:
    """`site`'s limits in each interval starting at `starts`, or None when it has none.

    A sent cap counts in every interval it covers a part of (the edge holds it from its
    arrival to its end); telemetry counts over the whole horizon (it is what the edge holds
    now; the next plan sees it change).
    """
    imp_candidates: list[tuple[float, str]] = []
    exp_candidates: list[tuple[float, str]] = []
    if site.import_max_kw is not None:
        imp_candidates.append(
            (site.import_max_kw, f"registry grid_connection import_max_kw {site.import_max_kw:g} kW")
        )
    if site.export_max_kw is not None:
        exp_candidates.append(
            (site.export_max_kw, f"registry grid_connection export_max_kw {site.export_max_kw:g} kW")
        )
    tel_imp = _telemetry_kw(site, snap, Points.LIMIT_IMPORT_MAX_KW.point)
    if tel_imp is not None:
        imp_candidates.append((tel_imp, f"agent's limit_import_max_kw {tel_imp:g} kW"))
    tel_exp = _telemetry_kw(site, snap, Points.LIMIT_EXPORT_MAX_KW.point)
    if tel_exp is not None:
        exp_candidates.append((tel_exp, f"agent's limit_export_max_kw {tel_exp:g} kW"))
    if not imp_candidates and not exp_candidates and cap is None:
        return None
    T = len(starts)
    imp_kw, imp_from = min(imp_candidates, default=(np.inf, ""), key=lambda c: c[0])
    exp_kw, exp_from = min(exp_candidates, default=(np.inf, ""), key=lambda c: c[0])
    imp = np.full(T, imp_kw)
    imp_src = [imp_from] * T
    if cap is not None and cap.import_max_kw < imp_kw:
        k = sum(1 for start in starts if start < cap.valid_until)  # starts are in order
        imp[:k] = cap.import_max_kw
        imp_src[:k] = [f"DSO cap {cap.import_max_kw:g} kW (command {cap.cmd_id})"] * k
    return SiteLimits(imp, np.full(T, exp_kw), tuple(imp_src), (exp_from,) * T)


def fleet_limits(
    sites: Sequence[SiteRef],
    snapshots: Mapping[str, SiteSnapshot],
    caps: Mapping[str, SentCap],
    start: datetime,
    horizon: int,
    period_s: float,
) -> dict[int, SiteLimits]:
    """Per site index (registry order), the limits of every site that has any."""
    starts = [start + timedelta(seconds=k * period_s) for k in range(horizon)]
    out: dict[int, SiteLimits] = {}
    for i, s in enumerate(sites):
        got = site_limits(s, snapshots.get(s.site), caps.get(s.site), starts)
        if got is not None:
            out[i] = got
    return out


def step_bounds(
    base_kw: FloatArray,
    limits: SiteLimits | tuple[FloatArray, FloatArray],
    battery: BatteryNow,
    *,
    eta_c: float,
    eta_d: float,
    dt_h: float,
) -> StepBounds:
    """One battery's per-interval bounds that keep its site's `base + battery` within `limits`.

    Charge <= import headroom; discharge <= export headroom; discharge >= the load above
    the import max, as far as a battery charged at every chance could (forward pass);
    energy at the end of each interval >= what the later forced discharges need given the
    charge headroom in between (backward pass), so the LP charges before a peak. Both are
    within what the battery can reach from its energy now: the LP stays feasible.
    """
    imp_kw, exp_kw = (
        (limits.import_max_kw, limits.export_max_kw) if isinstance(limits, SiteLimits) else limits
    )
    p_max_kw, e_min_kwh, e_max_kwh = battery.p_max_kw, battery.e_min_kwh, battery.e_max_kwh
    base = np.asarray(base_kw, float)
    T = base.shape[0]
    ch_max = np.clip(imp_kw - base, 0.0, p_max_kw)
    dis_max = np.clip(base + exp_kw, 0.0, p_max_kw)
    want = np.clip(base - imp_kw, 0.0, p_max_kw)
    dis_min = np.zeros_like(base)
    reach = np.zeros_like(base)  # the most energy a battery that charged at every chance has at the end of t
    e = np.maximum(battery.e_now_kwh, e_min_kwh)
    for t in range(T):
        dis_min[t] = np.minimum(
            np.minimum(want[t], dis_max[t]), np.maximum(e - e_min_kwh, 0.0) * eta_d / dt_h
        )
        e = np.minimum(e_max_kwh, e + eta_c * dt_h * ch_max[t] - dt_h / eta_d * dis_min[t])
        reach[t] = e
    need = np.zeros_like(base) + e_min_kwh
    for t in range(T - 1, 0, -1):
        need[t - 1] = np.maximum(e_min_kwh, need[t] + dt_h / eta_d * dis_min[t] - eta_c * dt_h * ch_max[t])
    floor = np.minimum(np.minimum(need, e_max_kwh), reach)
    return StepBounds(ch_max, dis_min, np.maximum(dis_max, dis_min), np.maximum(floor, e_min_kwh))


def limit_battery_steps(
    problem: Problem,
    bat_index: Mapping[int, int],
    base_kw: FloatArray,
    limits: Mapping[int, SiteLimits],
    bounds: tuple[FloatArray, FloatArray, FloatArray],
    state: StorageState,
) -> BatterySteps | None:
    """The engine's per-interval battery bounds for every battery site with a limit (None: none has)."""
    p = problem
    T = p.horizon
    p_max, e_lo, e_hi = bounds
    ch = np.broadcast_to(p_max[None, :], (T, p.n_bat)).copy()
    dis_min = np.zeros((T, p.n_bat))
    dis_max = ch.copy()
    e_min = np.broadcast_to(e_lo[None, :], (T, p.n_bat)).copy()
    pairs = [(i, k) for i, k in bat_index.items() if i in limits and p_max[k] > 0]
    if not pairs:
        return None
    at = np.asarray([i for i, _ in pairs])
    ks = np.asarray([k for _, k in pairs])
    imp = np.stack([limits[i].import_max_kw for i, _ in pairs], axis=1)
    exp = np.stack([limits[i].export_max_kw for i, _ in pairs], axis=1)
    b = step_bounds(
        base_kw[:, at],
        (imp, exp),
        BatteryNow(p_max[ks], state.e_bat_kwh[ks], e_lo[ks], e_hi[ks]),
        eta_c=p.bat_eta_c,
        eta_d=p.bat_eta_d,
        dt_h=p.dt_h,
    )
    ch[:, ks], dis_min[:, ks], dis_max[:, ks], e_min[:, ks] = (
        b.ch_max_kw,
        b.dis_min_kw,
        b.dis_max_kw,
        b.e_min_kwh,
    )
    return BatterySteps(ch, dis_min, dis_max, e_min)


def clamp_battery_values(
    battery_kw: Mapping[str, float],
    sites: Sequence[SiteRef],
    limits: Mapping[int, SiteLimits],
    base_kw: FloatArray,
    grid_target: set[str],
) -> dict[str, float]:
    """The first period's battery values within each site's limit, as the edge would hold them.

    A grid target (the meter's `p_setpoint_kw`) is the site's exchange: within
    [-export max, import max]. A battery setpoint: charge within the import headroom,
    discharge within the export headroom over the forecast load (never reversing it).
    The fleet guard may move the plan's value; this is the last word before the command.
    """
    out = dict(battery_kw)
    for i, s in enumerate(sites):
        lim = limits.get(i)
        if lim is None or s.site not in out:
            continue
        imp, exp = float(lim.import_max_kw[0]), float(lim.export_max_kw[0])
        value = out[s.site]
        if s.site in grid_target:
            out[s.site] = min(max(value, -exp), imp)
            continue
        base = float(base_kw[0, i])
        hi = max(imp - base, 0.0) if math.isfinite(imp) else value
        lo = -max(base + exp, 0.0) if math.isfinite(exp) else value
        out[s.site] = min(max(value, min(lo, 0.0)), max(hi, 0.0))
    return out


def shortfalls(
    sites: Sequence[SiteRef],
    limits: Mapping[int, SiteLimits],
    p_site_kw: FloatArray,
    start: datetime,
    period_s: float,
) -> list[SiteLimitShortfall]:
    """Per site and side, where the planned grid power (`p_site_kw`, (T, n)) stays over its limit."""
    out: list[SiteLimitShortfall] = []
    for i, lim in sorted(limits.items()):
        p = np.asarray(p_site_kw[:, i], float)
        site = sites[i].site
        found = (
            _shortfall(
                site, "import", p - lim.import_max_kw, lim.import_max_kw, lim.import_source, start, period_s
            ),
            _shortfall(
                site, "export", -p - lim.export_max_kw, lim.export_max_kw, lim.export_source, start, period_s
            ),
        )
        out += [f for f in found if f is not None]
    return out


def _shortfall(
    site: str,
    side: Literal["import", "export"],
    excess_kw: FloatArray,
    limit_kw: FloatArray,
    source: tuple[str, ...],
    start: datetime,
    period_s: float,
) -> SiteLimitShortfall | None:
    over = np.flatnonzero(excess_kw > SHORTFALL_TOL_KW)
    if len(over) == 0:
        return None
    t0 = int(over[0])
    return SiteLimitShortfall(
        site=site,
        side=side,
        limit_kw=float(limit_kw[t0]),
        max_excess_kw=round(float(excess_kw[over].max()), 3),
        intervals=len(over),
        first_start=start + timedelta(seconds=t0 * period_s),
        source=source[t0],
    )
