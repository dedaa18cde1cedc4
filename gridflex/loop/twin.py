"""The closed loop without sockets: the same physics, the same planner, commands applied directly.

Why: the live loop (`closed_loop.py`) runs real Modbus, BACnet and MQTT and needs minutes
of wall time per simulated day; judging a control strategy needs many fleets (seeds),
which only an offline twin affords. The twin steps the same buildings as the `TestBed`
(same specs, profiles, seed and initial conditions), samples what an agent would
publish every `poll_s` (the controller's history and snapshots), calls the same
`MpcPlanner` at every period boundary, and applies each command the way the edge
agent does (clamped to the point's range; a battery setpoint switches the inverter to
remote mode, a meter `p_setpoint_kw` sets the inverter's grid target; a command that
expires returns the asset to its safe state). What it leaves out is transport: no
message loss, no latency, no deadband.

The live end-to-end test confirms on real sockets what the twin predicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cloud_controller import AssetRef, Plan, SiteRef, SiteSnapshot, build_planner
from gridflex.loop.grid_truth import count_overloads
from gridflex.loop.prior_history import PlannerWithPrior, prior_from_reference
from gridflex.loop.reference_run import initialise
from gridflex.loop.scenario import LoopScenario
from protocols.messages import Command
from simulators.building import Building, build
from simulators.fleet import fleet_profiles
from simulators.siteconfig import GRID_TARGET_RANGE_KW

__all__ = ["GUARANTEED_MIN_KW", "TwinResult", "run_twin", "scenario_planner", "site_refs"]

GUARANTEED_MIN_KW = 4.2  # §14a EnWG: controllable consumers keep at least this much


def site_refs(
    buildings: Mapping[str, Building], household_of_site: Mapping[str, int], *, bacnet: bool = False
) -> tuple[SiteRef, ...]:
    """The registry's view of simulated buildings: asset ids and ratings as the TestBed serves
    them (with `bacnet`, each building's BMS zone too)."""
    refs: list[SiteRef] = []
    for site, b in buildings.items():
        assets = [AssetRef(asset="meter", kind="meter")]
        if b.pv is not None:
            assets.append(AssetRef(asset="pv1", kind="pv", p_nominal_kw=b.pv.inverter_kw))
        if b.battery is not None:
            assets.append(
                AssetRef(
                    asset="bat1",
                    kind="battery",
                    p_nominal_kw=b.battery.p_charge_max_kw,
                    capacity_kwh=b.battery.capacity_kwh,
                )
            )
        if b.ev is not None:
            assets.append(
                AssetRef(
                    asset="ev1", kind="ev", p_nominal_kw=b.ev.p_max_kw, p_guaranteed_min_kw=GUARANTEED_MIN_KW
                )
            )
        if b.hp is not None:
            assets.append(
                AssetRef(
                    asset="hp1",
                    kind="hp",
                    p_nominal_kw=b.hp.p_max_kw,
                    capacity_kwh=round(b.hp.tank_kwh, 3),
                    p_guaranteed_min_kw=GUARANTEED_MIN_KW,
                )
            )
        if bacnet:
            assets.append(AssetRef(asset="zone1", kind="hvac"))
        refs.append(SiteRef(site=site, region_site=household_of_site[site], assets=tuple(assets)))
    return tuple(refs)


def _points(b: Building) -> dict[str, float]:
    """What the site's agent publishes ("asset/point" → value)."""
    out = {"meter/p_kw": b.p_net_kw}
    if b.pv is not None:
        out["pv1/p_kw"] = b.pv.p_kw
    if b.battery is not None:
        out["bat1/p_kw"] = b.battery.p_kw
        out["bat1/soc_pct"] = b.battery.soc_pct
    if b.ev is not None:
        out["ev1/p_kw"] = b.ev.p_kw
    if b.hp is not None:
        out["hp1/p_kw"] = b.hp.p_kw
        out["hp1/t_tank_c"] = b.hp.t_tank_c
    return out


class _MemoryHistory:
    """`History` over the samples the twin recorded."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], list[tuple[datetime, float]]] = {}

    def add(self, site: str, now: datetime, points: Mapping[str, float]) -> None:
        for key, value in points.items():
            asset, point = key.split("/")
            self.rows.setdefault((site, asset, point), []).append((now, value))

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        return [(t, v) for t, v in self.rows.get((site, asset, point), []) if start <= t < end]


def _clamp(value: float, lo: float, hi: float) -> float:
    return min(max(value, lo), hi)


def apply_command(b: Building, cmd: Command) -> None:
    """What the edge agent writes for `cmd` (see simulators/siteconfig.py for the point ranges)."""
    value = float(cmd.value)
    if cmd.asset == "meter" and cmd.kind == "p_setpoint_kw" and b.battery is not None:
        b.battery.remote = False
        b.battery.grid_target_kw = _clamp(value, -GRID_TARGET_RANGE_KW, GRID_TARGET_RANGE_KW)
    elif cmd.asset == "bat1" and cmd.kind == "p_setpoint_kw" and b.battery is not None:
        b.battery.remote = True
        b.battery.setpoint_kw = _clamp(value, -b.battery.p_discharge_max_kw, b.battery.p_charge_max_kw)
    elif cmd.asset == "ev1" and cmd.kind == "p_limit_kw" and b.ev is not None:
        b.ev.p_limit_kw = _clamp(value, 0.0, b.ev.p_max_kw)
    elif cmd.asset == "hp1" and cmd.kind == "p_limit_kw" and b.hp is not None:
        b.hp.p_limit_kw = _clamp(value, 0.0, b.hp.p_max_kw)
    elif cmd.asset == "pv1" and cmd.kind == "p_limit_kw" and b.pv is not None:
        b.pv.limit_enabled = True
        b.pv.limit_pct = _clamp(100.0 * value / b.pv.inverter_kw, 0.0, 100.0)
    else:
        raise ValueError(f"{cmd.site}: no control {cmd.kind} on {cmd.asset}")


def safe_state(b: Building, asset: str) -> None:
    """The site YAML's safe state of `asset` (what the agent writes when a command expires)."""
    if asset == "meter" and b.battery is not None:
        b.battery.grid_target_kw = 0.0
    elif asset == "bat1" and b.battery is not None:
        b.battery.remote = False
    elif asset == "ev1" and b.ev is not None:
        b.ev.p_limit_kw = b.ev.p_max_kw
    elif asset == "hp1" and b.hp is not None:
        b.hp.p_limit_kw = None
    elif asset == "pv1" and b.pv is not None:
        b.pv.limit_enabled = False


@dataclass
class TwinResult:
    """Per-interval mean grid power of every site and the grid truth's HV/MV import."""

    interval_starts: list[datetime] = field(default_factory=list)
    site_p_kw: dict[str, list[float]] = field(default_factory=dict)
    root_kw: list[float] = field(default_factory=list)
    commands: int = 0
    corrections: int = 0
    plans: int = 0
    #: Every polled sample, (site, asset, point) → [(t, value)] (what the controller stored).
    samples: dict[tuple[str, str, str], list[tuple[datetime, float]]] = field(default_factory=dict)
    plans_log: list[Plan] = field(default_factory=list)
    #: At the end: EV energy delivered and still owed, heat owed by heat pumps (kWh, fleet sums).
    ev_delivered_kwh: float = 0.0
    ev_owed_kwh: float = 0.0
    heat_owed_kwh: float = 0.0

    def overloads(self, threshold_kw: float) -> int:
        return count_overloads(self.root_kw, threshold_kw)


def scenario_planner(scenario: LoopScenario, refs: tuple[SiteRef, ...]) -> PlannerWithPrior:
    """The controller's planner for a loop scenario, with yesterday's physics as imported
    history (used by the live loop and the twin alike)."""
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
    )
    return PlannerWithPrior(inner, prior_from_reference(scenario.yesterday))


def run_twin(
    scenario: LoopScenario, *, control: bool = True, guard: bool = True, first_plan_delay_s: float = 60.0
) -> TwinResult:
    """Step the scenario's fleet from start to end under the planner (or, with `control`
    False, the owners' own behaviour); return the grid truth."""
    s = scenario.settings
    profiles = fleet_profiles(list(scenario.specs), start=s.profile_start, seed=s.seed, days=s.profile_days)
    buildings = {spec.site: build(spec, p) for spec, p in zip(scenario.specs, profiles, strict=True)}
    for b in buildings.values():
        b.step(s.start, 0.0)
    initialise(list(buildings.values()), seed=s.seed)
    refs = site_refs(buildings, scenario.household_of_site)
    planner = scenario_planner(scenario, refs)
    history = _MemoryHistory()
    snapshots: dict[str, SiteSnapshot] = {}
    active: dict[tuple[str, str], Command] = {}
    result = TwinResult()
    dt_s = s.physics_step_s
    per_poll = max(1, round(s.poll_s / dt_s))
    per_period = round(s.period_s / dt_s)
    n_steps = round((s.end - s.start).total_seconds() / dt_s)
    next_plan = s.start + timedelta(seconds=first_plan_delay_s)
    energy = {site: 0.0 for site in buildings}

    def poll(now: datetime) -> None:
        for site, b in buildings.items():
            pts = _points(b)
            history.add(site, now, pts)
            snapshots[site] = SiteSnapshot(
                site=site,
                mode="online",
                p_net_kw=pts["meter/p_kw"],
                points=pts,
                last_seen=now,
                measured_at=now,
            )

    poll(s.start)
    for k in range(1, n_steps + 1):
        now = s.start + timedelta(seconds=k * dt_s)
        for key, cmd in list(active.items()):
            if now > cmd.valid_until:
                safe_state(buildings[key[0]], key[1])
                del active[key]
        for site, b in buildings.items():
            energy[site] += b.step(now, dt_s) * dt_s / 3600.0
        if k % per_poll == 0:
            poll(now)
            if control and guard and now < next_plan:
                for cmd in planner.correct(now, snapshots):
                    apply_command(buildings[cmd.site], cmd)
                    active[cmd.site, cmd.asset] = cmd
                    result.commands += 1
                    result.corrections += 1
        if k % per_period == 0:
            result.interval_starts.append(now - timedelta(seconds=s.period_s))
            for site in buildings:
                result.site_p_kw.setdefault(site, []).append(energy[site] * 3600.0 / s.period_s)
                energy[site] = 0.0
        if control and now >= next_plan:
            plan = planner.plan(now, snapshots, history)
            result.plans += 1
            result.plans_log.append(plan)
            for cmd in plan.commands:
                apply_command(buildings[cmd.site], cmd)
                active[cmd.site, cmd.asset] = cmd
                result.commands += 1
            ts = now.timestamp()
            next_plan = datetime.fromtimestamp(ts - ts % s.period_s + s.period_s, tz=now.tzinfo)
    truth = scenario.truth.evaluate_series(result.site_p_kw)
    result.root_kw = [t.root_p_kw for t in truth]
    result.samples = history.rows
    for b in buildings.values():
        if b.ev is not None:
            result.ev_delivered_kwh += b.ev.e_total_kwh
            result.ev_owed_kwh += b.ev.e_remaining_kwh + b.ev.e_unmet_kwh
        if b.hp is not None:
            result.heat_owed_kwh += b.hp.e_deficit_kwh + max(0.0, b.hp.tank_kwh - b.hp.e_tank_kwh)
    return result
