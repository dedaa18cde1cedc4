"""The closed loop without sockets: the same physics, the same planner, commands applied directly.

Why: the live loop (`gridflex.loop.closed_loop`) runs real Modbus, BACnet and MQTT and needs minutes
of wall time per simulated day; judging a control strategy needs many fleets (seeds),
which only an offline twin affords. The twin steps the same buildings as the `TestBed`
(same specs, profiles, seed and initial conditions), samples what an agent would
publish every `poll_s` (the controller's history and snapshots), calls the same
`MpcPlanner` at every period boundary, and applies each command through the edge
agent's own decision and the building's site YAML (`twin_site.TwinSite`: clamped as
the agent clamps, written as its driver writes, back to the YAML's safe state when a
command expires). What it leaves out is transport: no message loss, no latency, no
deadband.

The live end-to-end test confirms on real sockets what the twin predicts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from cloud_controller import AssetRef, GridMeterRef, Plan, SiteRef, SiteSnapshot, build_planner
from gridflex.loop.grid_truth import TruthInterval, count_overloads
from gridflex.loop.prior_history import PlannerWithPrior, merge_prior, prior_from_meters, prior_from_reference
from gridflex.loop.reference_run import initialise
from gridflex.loop.scenario import LoopScenario
from gridflex.loop.twin_site import TwinSite
from protocols.assets import BATTERY, EV, HP, METER, PV, ZONE, PointKey, Points, substation_site_id
from protocols.messages import Command
from protocols.signing import SigningKey
from simulators.building import Building, build
from simulators.fleet import fleet_profiles
from simulators.siteconfig import GUARANTEED_MIN_KW

__all__ = ["TwinHook", "TwinResult", "run_twin", "scenario_planner", "site_refs"]


def site_refs(
    buildings: Mapping[str, Building], household_of_site: Mapping[str, int], *, bacnet: bool = False
) -> tuple[SiteRef, ...]:
    """The registry's view of simulated buildings: asset ids and ratings as the TestBed serves them.

    With `bacnet`, each building's BMS zone too.
    """
    refs: list[SiteRef] = []
    for site, b in buildings.items():
        assets = [AssetRef(asset=METER, kind="meter")]
        if b.pv is not None:
            assets.append(AssetRef(asset=PV, kind="pv", p_nominal_kw=b.pv.inverter_kw))
        if b.battery is not None:
            assets.append(
                AssetRef(
                    asset=BATTERY,
                    kind="battery",
                    p_nominal_kw=b.battery.p_charge_max_kw,
                    capacity_kwh=b.battery.capacity_kwh,
                )
            )
        if b.ev is not None:
            assets.append(
                AssetRef(
                    asset=EV, kind="ev", p_nominal_kw=b.ev.p_max_kw, p_guaranteed_min_kw=GUARANTEED_MIN_KW
                )
            )
        if b.hp is not None:
            assets.append(
                AssetRef(
                    asset=HP,
                    kind="hp",
                    p_nominal_kw=b.hp.p_max_kw,
                    capacity_kwh=round(b.hp.tank_kwh, 3),
                    p_guaranteed_min_kw=GUARANTEED_MIN_KW,
                )
            )
        if bacnet:
            assets.append(AssetRef(asset=ZONE, kind="hvac"))
        refs.append(SiteRef(site=site, region_site=household_of_site[site], assets=tuple(assets)))
    return tuple(refs)


def _points(b: Building) -> dict[str, float]:
    """What the site's agent publishes ("asset/point" → value)."""
    out = {str(Points.METER_P_KW): b.p_net_kw}
    if b.pv is not None:
        out[str(Points.PV_P_KW)] = b.pv.p_kw
    if b.battery is not None:
        out[str(Points.BATTERY_P_KW)] = b.battery.p_kw
        out[str(Points.BATTERY_SOC_PCT)] = b.battery.soc_pct
    if b.ev is not None:
        out[str(Points.EV_P_KW)] = b.ev.p_kw
    if b.hp is not None:
        out[str(Points.HP_P_KW)] = b.hp.p_kw
        out[str(Points.HP_T_TANK_C)] = b.hp.t_tank_c
    return out


class _MemoryHistory:
    """`History` over the samples the twin recorded."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], list[tuple[datetime, float]]] = {}

    def add(self, site: str, now: datetime, points: Mapping[str, float]) -> None:
        for key, value in points.items():
            asset, point = PointKey.parse(key)
            self.rows.setdefault((site, asset, point), []).append((now, value))

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        return [(t, v) for t, v in self.rows.get((site, asset, point), []) if start <= t < end]


@dataclass
class TwinResult:
    """Per-interval mean grid power of every site and the grid truth's HV/MV import."""

    interval_starts: list[datetime] = field(default_factory=list)
    site_p_kw: dict[str, list[float]] = field(default_factory=dict)
    root_kw: list[float] = field(default_factory=list)
    #: The grid truth of every interval (element loadings, voltages).
    truth: list[TruthInterval] = field(default_factory=list)
    commands: int = 0
    corrections: int = 0
    #: Commands the agent's decision rejected or found expired (never written).
    refused: int = 0
    plans: int = 0
    #: Every polled sample, (site, asset, point) → [(t, value)] (what the controller stored).
    samples: dict[tuple[str, str, str], list[tuple[datetime, float]]] = field(default_factory=dict)
    plans_log: list[Plan] = field(default_factory=list)
    #: At the end: EV energy delivered and still owed, heat owed by heat pumps (kWh, fleet sums).
    ev_delivered_kwh: float = 0.0
    ev_owed_kwh: float = 0.0
    heat_owed_kwh: float = 0.0

    def overloads(self, threshold_kw: float) -> int:
        """Intervals whose HV/MV import exceeds `threshold_kw`."""
        return count_overloads(self.root_kw, threshold_kw)


def _apply(site: TwinSite, cmd: Command, now: datetime, result: TwinResult) -> None:
    """Hand `cmd` to the site's agent logic; count it, and count what the agent refused."""
    result.commands += 1
    if site.apply(cmd, now).status in ("rejected", "expired"):
        result.refused += 1


def scenario_planner(
    scenario: LoopScenario,
    refs: tuple[SiteRef, ...],
    *,
    signing_keys: Mapping[str, bytes | SigningKey] | None = None,
    market_only_sites: Collection[str] = (),
) -> PlannerWithPrior:
    """The controller's planner for a loop scenario, with yesterday's physics as imported history.

    Yesterday's history holds the buildings' points and the substation meters' readings
    (grid truth incl. the background). The planner's limits are the net's (with the
    constructed scenario, also its HV/MV threshold).
    Used by the live loop (which signs its commands, `signing_keys`) and the twin alike.
    `market_only_sites`: sites the planner and guard leave to the market's orders.
    """
    s = scenario.settings
    inner = build_planner(
        scenario.region,
        refs,
        period_s=s.period_s,
        horizon_steps=s.horizon_steps,
        margin_s=s.margin_s,
        station_limit_kw=scenario.controller_limit_kw,
        battery_control=s.battery_control,
        forecast_z=s.forecast_z,
        signing_keys=signing_keys,
        market_only_sites=market_only_sites,
    )
    return PlannerWithPrior(inner, scenario_prior(scenario))


def scenario_prior(scenario: LoopScenario) -> dict[tuple[str, str, str], list[tuple[datetime, float]]]:
    """The imported history: the buildings' points and the substation meters, older days and yesterday."""
    s = scenario.settings
    parts = [
        prior_from_reference(scenario.yesterday),
        prior_from_meters(*scenario.yesterday_meters, period_s=s.period_s, sample_s=s.poll_s),
    ]
    if scenario.older is not None:
        parts += [
            prior_from_reference(scenario.older),
            prior_from_meters(*scenario.older_meters, period_s=s.period_s, sample_s=s.poll_s),
        ]
    return merge_prior(parts)


class TwinHook(Protocol):
    """Something beside the planner that commands sites on simulated time (the market, gridflex/loop/twin_market.py)."""

    def step(self, now: datetime, plan: Plan | None, planner: PlannerWithPrior) -> list[Command]:
        """Called after every physics step (`plan`: the plan made at `now`, else None); the commands to apply now."""
        ...


def run_twin(
    scenario: LoopScenario,
    *,
    control: bool = True,
    guard: bool = True,
    first_plan_delay_s: float = 60.0,
    market_only_sites: Collection[str] = (),
    hook: TwinHook | None = None,
) -> TwinResult:
    """Step the scenario's fleet from start to end under the planner; return the grid truth.

    With `control` False, the fleet follows the owners' own behaviour instead.
    `market_only_sites`: left alone by the planner and guard (the market demo's FSP sites);
    `hook`: its commands are applied as the planner's are (the agent's decision, no transport).
    """
    s = scenario.settings
    buildings = _fleet(scenario)
    refs = site_refs(buildings, scenario.household_of_site)
    planner = scenario_planner(scenario, refs, market_only_sites=market_only_sites)
    history = _MemoryHistory()
    snapshots: dict[str, SiteSnapshot] = {}
    sites = {site: TwinSite(b) for site, b in buildings.items()}
    result = TwinResult()
    dt_s = s.physics_step_s
    per_poll = max(1, round(s.poll_s / dt_s))
    per_period = round(s.period_s / dt_s)
    n_steps = round((s.end - s.start).total_seconds() / dt_s)
    next_plan = s.start + timedelta(seconds=first_plan_delay_s)
    energy = {site: 0.0 for site in buildings}

    meters = _Meters(scenario) if scenario.background is not None else None
    _poll(buildings, history, snapshots, s.start)
    if meters is not None:
        meters.update(buildings, s.start)
        meters.poll(history, s.start)
    for k in range(1, n_steps + 1):
        now = s.start + timedelta(seconds=k * dt_s)
        _step(buildings, sites, energy, now, dt_s)
        if k % per_poll == 0:
            _poll(buildings, history, snapshots, now)
            if meters is not None:
                if k % (2 * per_poll) == 0:  # as the live loop: a power flow every other poll
                    meters.update(buildings, now)
                meters.poll(history, now)
                meters.observe(planner)
            if control and guard and now < next_plan:
                for cmd in planner.correct(now, snapshots):
                    _apply(sites[cmd.site], cmd, now, result)
                    result.corrections += 1
        if k % per_period == 0:
            _close_interval(result, energy, now, s.period_s)
        plan = None
        if control and now >= next_plan:
            next_plan = _plan(planner, now, snapshots, history, sites, result, s.period_s)
            plan = result.plans_log[-1]
        if hook is not None:
            for cmd in hook.step(now, plan, planner):
                _apply(sites[cmd.site], cmd, now, result)
    truth = scenario.truth.evaluate_series(result.site_p_kw, starts=result.interval_starts)
    result.root_kw = [t.root_p_kw for t in truth]
    result.truth = truth
    result.samples = history.rows
    _tally_owed(buildings, result)
    return result


class _Meters:
    """The substation meters of a physical scenario: the grid truth (fleet + background) at the poll.

    What the live loop's `Substations` serve and the station agents publish, without
    sockets: history rows and a snapshot per meter, handed to a planner that reads
    meters (`observe_meters`, where the planner has it).
    """

    def __init__(self, scenario: LoopScenario) -> None:
        self.truth = scenario.truth
        self.refs = tuple(GridMeterRef(site=substation_site_id(st), station=st) for st in self.truth.stations)
        self.flows: dict[str, tuple[float, float]] = {}
        self.snapshots: dict[str, SiteSnapshot] = {}

    def update(self, buildings: Mapping[str, Building], now: datetime) -> None:
        """One power flow over what the buildings draw now, with the background of now's interval."""
        interval = self.truth.evaluate({site: b.p_net_kw for site, b in buildings.items()}, at=now)
        self.flows = {st: (f.p_kw, f.q_kvar) for st, f in interval.station_flow.items()}

    def poll(self, history: _MemoryHistory, now: datetime) -> None:
        """Each meter's latest flow as its agent publishes it: history rows and a snapshot."""
        for ref in self.refs:
            p_kw, q_kvar = self.flows[ref.station]
            pts = {str(Points.METER_P_KW): p_kw, str(Points.METER_Q_KVAR): q_kvar}
            history.add(ref.site, now, pts)
            self.snapshots[ref.site] = SiteSnapshot(
                site=ref.site, mode="online", p_net_kw=p_kw, points=pts, last_seen=now, measured_at=now
            )

    def observe(self, planner: PlannerWithPrior) -> None:
        """Hand the planner the meters and their snapshots, as the service does before plan and correct."""
        observe = getattr(planner, "observe_meters", None)
        if observe is not None:
            observe(self.refs, dict(self.snapshots))


def _fleet(scenario: LoopScenario) -> dict[str, Building]:
    """The scenario's buildings on their profiles, stepped to the start and initialised as the TestBed's."""
    s = scenario.settings
    profiles = fleet_profiles(list(scenario.specs), start=s.profile_start, seed=s.seed, days=s.profile_days)
    buildings = {spec.site: build(spec, p) for spec, p in zip(scenario.specs, profiles, strict=True)}
    for b in buildings.values():
        b.step(s.start, 0.0)
    initialise(list(buildings.values()), seed=s.seed)
    return buildings


def _poll(
    buildings: Mapping[str, Building],
    history: _MemoryHistory,
    snapshots: dict[str, SiteSnapshot],
    now: datetime,
) -> None:
    """What the agents publish at `now`: into the history, and as each site's snapshot."""
    for site, b in buildings.items():
        pts = _points(b)
        history.add(site, now, pts)
        snapshots[site] = SiteSnapshot(
            site=site,
            mode="online",
            p_net_kw=pts[str(Points.METER_P_KW)],
            points=pts,
            last_seen=now,
            measured_at=now,
        )


def _step(
    buildings: Mapping[str, Building],
    sites: Mapping[str, TwinSite],
    energy: dict[str, float],
    now: datetime,
    dt_s: float,
) -> None:
    """One physics step to `now`: expired commands back to safe state, then every building's energy."""
    for twin_site in sites.values():
        twin_site.expire(now)
    for site, b in buildings.items():
        energy[site] += b.step(now, dt_s) * dt_s / 3600.0


def _close_interval(result: TwinResult, energy: dict[str, float], now: datetime, period_s: float) -> None:
    """At a period boundary: each site's mean power over the period just ended; energy restarts at 0."""
    result.interval_starts.append(now - timedelta(seconds=period_s))
    for site, e_kwh in energy.items():
        result.site_p_kw.setdefault(site, []).append(e_kwh * 3600.0 / period_s)
        energy[site] = 0.0  # a value, not a key: safe while iterating


def _plan(
    planner: PlannerWithPrior,
    now: datetime,
    snapshots: Mapping[str, SiteSnapshot],
    history: _MemoryHistory,
    sites: Mapping[str, TwinSite],
    result: TwinResult,
    period_s: float,
) -> datetime:
    """Plan at `now` and apply the plan's commands; returns the next period boundary."""
    plan = planner.plan(now, snapshots, history)
    result.plans += 1
    result.plans_log.append(plan)
    for cmd in plan.commands:
        _apply(sites[cmd.site], cmd, now, result)
    ts = now.timestamp()
    return datetime.fromtimestamp(ts - ts % period_s + period_s, tz=now.tzinfo)


def _tally_owed(buildings: Mapping[str, Building], result: TwinResult) -> None:
    """At the end: the fleet's EV energy delivered and still owed, and the heat still owed."""
    for b in buildings.values():
        if b.ev is not None:
            result.ev_delivered_kwh += b.ev.e_total_kwh
            result.ev_owed_kwh += b.ev.e_remaining_kwh + b.ev.e_unmet_kwh
        if b.hp is not None:
            result.heat_owed_kwh += b.hp.e_deficit_kwh + max(0.0, b.hp.tank_kwh - b.hp.e_tank_kwh)
