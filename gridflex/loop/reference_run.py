"""The demo's fleet and its no-control twin: the same buildings, stepped offline without any control.

Why offline: the no-control reference and the controller's pre-seeded history need the
physics only, not sockets, so they run in a second for a day. `simulators.building.build`
with the same specs, profile start and seed gives physics identical to what the
`TestBed` serves over Modbus, so "with control vs without" compares like with like.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from protocols.assets import Points
from simulators.building import Building, build
from simulators.fleet import SiteSpec, fleet_profiles, site_id

__all__ = ["ReferenceRun", "demo_specs", "initialise", "run_reference"]

FloatArray = npt.NDArray[np.float64]


def demo_specs(n_sites: int, *, seed: int) -> tuple[SiteSpec, ...]:
    """A winter-evening-congestion fleet: most sites have a heat pump or an EV, many a battery.

    Shares (seeded per site): heat pump 60 %, EV 50 %, PV 50 %, battery on 90 % of PV
    sites plus 50 % of the others (retrofit storage), sized 13.5 kWh / 5 kW. Household
    consumption 3,000–6,000 kWh/a. Site ids `b001`, `b002`, ...
    """
    if n_sites < 1:
        raise ValueError("n_sites must be >= 1")
    rng = np.random.default_rng(seed)
    specs: list[SiteSpec] = []
    for i in range(n_sites):
        u = rng.random(5)
        has_pv = u[0] < 0.5
        has_bat = u[1] < (0.9 if has_pv else 0.5)
        specs.append(
            SiteSpec(
                site=site_id(i),
                index=i,
                annual_kwh=float(rng.uniform(3000.0, 6000.0)),
                heat_annual_kwh=float(rng.uniform(8000.0, 14000.0)),
                pv_kwp=8.0 if has_pv else None,
                battery_kwh=13.5 if has_bat else None,
                battery_kw=5.0 if has_bat else None,
                ev_kw=11.0 if u[2] < 0.5 else None,
                hp_kw=6.0 if u[3] < 0.6 else None,
            )
        )
    return tuple(specs)


@dataclass(frozen=True)
class ReferenceRun:
    """Per-step physics of every site: times (N,), arrays (N, n_sites)."""

    sites: tuple[str, ...]
    times: tuple[datetime, ...]
    p_net_kw: FloatArray
    series: dict[tuple[str, str], FloatArray]  # Points.BATTERY_P_KW -> (N, n_sites), NaN where absent

    def interval_means_kw(self, interval_s: float) -> tuple[list[datetime], FloatArray]:
        """Mean p_net per site over consecutive intervals (e.g. 900 s): the metered energy view."""
        dt_s = (self.times[1] - self.times[0]).total_seconds() if len(self.times) > 1 else interval_s
        per = max(1, round(interval_s / dt_s))
        n = len(self.times) // per
        blocks = self.p_net_kw[: n * per].reshape(n, per, -1).mean(axis=1)
        starts = [self.times[k * per] - timedelta(seconds=dt_s) for k in range(n)]
        return starts, blocks


def initialise(buildings: list[Building], *, seed: int) -> None:
    """Seeded, per-site initial conditions (tank temperature, battery SOC).

    Identical starting states would switch every heat pump on in the same minute (all
    tanks cross the thermostat together), a synchronisation no real street shows; the
    same draw is applied to the TestBed's buildings and to the no-control twin.
    """
    rng = np.random.default_rng(seed + 104_729)
    for b in buildings:
        t_tank_c, soc_pct = rng.uniform(47.0, 55.0), rng.uniform(30.0, 70.0)
        if b.hp is not None:
            b.hp.t_tank_c = float(t_tank_c)
        if b.battery is not None:
            b.battery.soc_pct = float(soc_pct)


def _record(b: Building) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {Points.METER_P_KW: b.p_net_kw}
    if b.pv is not None:
        out[Points.PV_P_KW] = b.pv.p_kw
    if b.battery is not None:
        out[Points.BATTERY_P_KW] = b.battery.p_kw
        out[Points.BATTERY_SOC_PCT] = b.battery.soc_pct
    if b.ev is not None:
        out[Points.EV_P_KW] = b.ev.p_kw
    if b.hp is not None:
        out[Points.HP_P_KW] = b.hp.p_kw
        out[Points.HP_T_TANK_C] = b.hp.t_tank_c
    return out


def run_reference(
    specs: tuple[SiteSpec, ...],
    *,
    profile_start: datetime,
    seed: int,
    t_from: datetime,
    t_to: datetime,
    dt_s: float = 60.0,
    profile_days: float = 14.0,
) -> ReferenceRun:
    """Step fresh buildings from `t_from` to `t_to` with the owners' own behaviour (no commands).

    Each step ends at the recorded time, as `TestBed.step` does (`now` = end of the step).
    """
    if t_to <= t_from:
        raise ValueError("t_to must be after t_from")
    profiles = fleet_profiles(list(specs), start=profile_start, seed=seed, days=profile_days)
    buildings = [build(s, p) for s, p in zip(specs, profiles, strict=True)]
    for b in buildings:
        b.step(t_from, 0.0)  # as TestBed does on start, before the initial conditions are set
    initialise(buildings, seed=seed)
    n_steps = int((t_to - t_from).total_seconds() // dt_s)
    times: list[datetime] = []
    p_net = np.zeros((n_steps, len(specs)))
    series: dict[tuple[str, str], FloatArray] = {}
    for k in range(n_steps):
        now = t_from + timedelta(seconds=(k + 1) * dt_s)
        times.append(now)
        for j, b in enumerate(buildings):
            p_net[k, j] = b.step(now, dt_s)
            for key, value in _record(b).items():
                arr = series.get(key)
                if arr is None:
                    arr = series[key] = np.full((n_steps, len(specs)), np.nan)
                arr[k, j] = value
    return ReferenceRun(tuple(s.site for s in specs), tuple(times), p_net, series)
