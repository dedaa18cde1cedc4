"""The live planner: every control period, forecasts + measured state → MPC → per-site commands.

One `DispatchEngine` is built per planner (the LP structure is fixed by the registry) and
re-solved warm every period with new forecasts, storage state and limits, so a period
costs milliseconds. The LP schedules the batteries over the horizon under the HV/MV
limit (pre-charging before a forecast peak, discharging in it).

Heat pumps and EV chargers are not LP variables here: what a utility can do to them is
cap their power (§14a EnWG: never below 4.2 kW), and a real heat pump's thermostat, not
the controller, decides when it runs. Caps, and corrections of the batteries between
plans, belong to the fleet guard (guard.py): a fast loop on measurements that keeps
each interval's mean under the limit; `correct` runs it between plans, and every plan
runs it once with the plan's battery values counted as pending (the Schutterwald study's CurA/CurB as
real-time rules).

A registered asset the site never reported (`SiteSnapshot.missing_assets`, from ingest's
registry check) is not there: a missing battery is pinned to zero, no asset of them is commanded.

Sites that are offline (or unknown, or ignored their last commands) are "excluded", and so
are the market-only sites (`market_only_sites`, config `control.market_only_sites`): an
FSP's portfolio that only the market's orders move, so that what an order buys is not
what the planner or the guard would have done anyway (docs/market.md). Excluded sites:
their forecast stays in the grid balance, their batteries are pinned to zero in the LP
and they get no commands. Sites in fallback are commanded: a valid command is what
ends an agent's fallback after a controller outage.

Stations with a meter (`observe_meters`; live/stations.py): their load outside the fleet
(the background, measured and forecast) is a fixed load at the station's bus, so every
limit is held against the total (live/station_plan.py says how, reactive power included);
the guard watches their measured loading. Stations without one: the fleet alone, as before.

DR reservations (`set_reservations`, live/reservations.py): a battery a DR request selected keeps
its event's energy from selection on and has the DR setpoint as a fixed injection during the
event, through the per-period battery bounds; the guard starts from the DR setpoint and stops
its extra discharge at the SoC the event still needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

import numpy as np

from cloud_controller.config import GridConfig
from cloud_controller.dispatch import (
    Answer,
    AreaExecution,
    Engine,
    Schedule,
    SiteAssets,
    StepInputs,
)
from cloud_controller.forecast.congestion import CongestionForecast
from cloud_controller.forecast.result import ForecastOptions, ProbabilisticForecast
from cloud_controller.grid import Region
from cloud_controller.grid.limits import GridLimits
from cloud_controller.grid.limits_check import branch_violations, interval_starts
from cloud_controller.grid.limits_config import LimitsBook, envelopes_from_json, limits_for_region
from cloud_controller.live.battery_state import battery_asset, battery_bounds, storage_state
from cloud_controller.live.commands import CommandBuilder
from cloud_controller.live.guard import FleetGuard, GuardElement
from cloud_controller.live.plan_forecasts import PlanForecasts, hvmv_congestion
from cloud_controller.live.planner_guard import guard_needed, new_guard, station_elements
from cloud_controller.live.planner_reservations import PlannerReservations
from cloud_controller.live.planning_network import planning_engine, planning_network, planning_problem
from cloud_controller.live.reservations import Reservation, ReservedSteps
from cloud_controller.live.site_forecast import FleetForecast, fleet_forecast, period_start, with_measurements
from cloud_controller.live.site_limits import (
    SentCapLog,
    SiteLimits,
    clamp_battery_values,
    fleet_limits,
    limit_battery_steps,
    shortfalls,
)
from cloud_controller.live.station_load import SharedReads
from cloud_controller.live.stations import StationMeters
from cloud_controller.live.types import GridMeterRef, History, Plan, SiteRef, SiteSnapshot
from protocols.assets import Role
from protocols.errors import ConfigError
from protocols.messages import Command
from protocols.signing import SigningKey

__all__ = ["MpcPlanner", "build_planner"]

log = logging.getLogger(__name__)
Z_90 = 1.2816  # p90 of a standard normal
EARLY_IMPORT_PREFERENCE = 0.01  # relative import-cost rise over the horizon
BAT_SOC_MIN = 0.05


class MpcPlanner:
    """`Planner` (see `types.py`) over one region and a fixed list of registered sites."""

    def __init__(
        self,
        region: Region,
        sites: Sequence[SiteRef],
        *,
        period_s: float = 900.0,
        horizon_steps: int = 48,
        margin_s: float = 120.0,
        station_limit_kw: float | None = None,
        signing_keys: Mapping[str, bytes | SigningKey] | None = None,
        battery_control: str = "setpoint",
        forecast_z: float = Z_90,
        by_area: bool = False,
        grid_limits: GridConfig | None = None,
        market_only_sites: Collection[str] = (),
        area_execution: AreaExecution | None = None,
    ) -> None:
        """Set up the planner; `by_area`, `battery_control` and `forecast_z` choose how it plans.

        `market_only_sites`: registered sites the planner and the guard never steer (always
        excluded); only the market's orders (DR requests) move them. An unknown id is a ValueError.

        `by_area`: solve one LP per MV/LV station while the HV/MV threshold idles (answers
        certified optimal for the whole LP; `DecomposedEngine`), the whole LP when it binds.
        `battery_control`: "setpoint" commands the battery's power for the period;
        "grid_target" commands the site's grid exchange (the meter's `p_setpoint_kw`), which
        the battery inverter holds on its own at its control rate, so the household's
        deviations from the forecast are absorbed locally within the period (sites without
        a meter control fall back to "setpoint"). `forecast_z`: the limit is planned against
        the fleet's forecast at this many standard deviations above the median.
        `area_execution` (with `by_area`): where the areas are solved (worker processes,
        Dask); started here, once, and stopped by `close`.
        """
        if battery_control not in ("setpoint", "grid_target"):
            raise ValueError(f"battery_control must be setpoint or grid_target, got {battery_control!r}")
        self.forecast_z = forecast_z
        if not sites:
            raise ValueError("no sites to plan for")
        self.region = region
        self.sites = list(sites)
        unknown = sorted(set(market_only_sites) - {s.site for s in self.sites})
        if unknown:
            raise ValueError(f"market-only site {unknown[0]!r} is not a registered site")
        self.market_only_sites = frozenset(market_only_sites)
        self._market_only_idx = {i for i, s in enumerate(self.sites) if s.site in self.market_only_sites}
        self.period_s = period_s
        self.horizon = horizon_steps
        self.limit_kw = float(station_limit_kw) if station_limit_kw is not None else float("inf")
        # every element's limits (grid/limits.py): the net's, the config's overrides and
        # envelopes, and the operator's envelopes (PUT /grid/limits, kept in the store)
        self.limits_book = LimitsBook(
            limits_for_region(region, grid_limits, station_limit_kw=station_limit_kw)
        )
        self.commands = CommandBuilder(
            period_s=period_s, margin_s=margin_s, signing_keys=signing_keys, battery_control=battery_control
        )
        n = len(self.sites)

        def rating(kind: str, attr: str) -> np.ndarray:
            out = np.zeros(n)
            for i, s in enumerate(self.sites):
                a = s.asset_of(kind)
                if a is not None:
                    out[i] = float(getattr(a, attr) or 0.0)
            return out

        self.bat_e_kwh = rating("battery", "capacity_kwh")
        self.bat_p_kw = np.where(self.bat_e_kwh > 0, rating("battery", "p_nominal_kw"), 0.0)
        self.hp_p_kw = rating("hp", "p_nominal_kw")  # not LP variables (see the module docstring)
        # The planning network (live/planning_network.py): a radial region's station level
        # (the full LV network would triple the LP for limits it never sets), a meshed or
        # multi-feed region's whole DC network with its feeding points.
        self.planning = planning_network(
            region, [s.region_site for s in self.sites], [s.site for s in self.sites]
        )
        problem = planning_problem(
            self.planning,
            SiteAssets(self.bat_e_kwh, self.bat_p_kw, np.zeros(n), np.zeros(n)),
            horizon=horizon_steps,
            dt_h=period_s / 3600.0,
            bat_soc_min=BAT_SOC_MIN,
        )
        self.problem = problem
        self.engine: Engine = planning_engine(problem, by_area=by_area, execution=area_execution)
        self.bat_index = {int(s): k for k, s in enumerate(problem.bat_site)}
        self.forecasts = PlanForecasts(region, [s.region_site for s in self.sites], period_s=period_s)
        self.last_schedule: Schedule | None = None
        self.last_answer: Answer | None = None  # the last plan's route and certificate
        self._battery_control = battery_control
        # the registered sites below each MV/LV station (by the station's "<table>:<index>")
        self._station_sites: dict[str, frozenset[str]] = self.planning.station_sites
        self.guard = self._new_guard() if np.isfinite(self.limit_kw) else None
        self._caps_sent = SentCapLog()  # site_import_max_kw commands sent (note_sent)
        self._site_limits: dict[int, SiteLimits] = {}  # the last plan's, by site index
        self._base_kw: np.ndarray | None = None  # the last plan's forecast, for its limits
        self.stations = StationMeters(region, self.sites, problem.grid.branch_names, period_s=period_s)
        self._guard_base: list[GuardElement] = []  # the guard's station elements before backgrounds
        self._names: dict[str, str] = {}  # station transformer "<table>:<index>" -> element name
        #: DR-selected batteries (live/planner_reservations.py): set before each plan and guard step
        self.dr = PlannerReservations(
            problem,
            {
                (s.site, battery_asset(s)): self.bat_index[i]
                for i, s in enumerate(self.sites)
                if i in self.bat_index
            },
            horizon=horizon_steps,
            period_s=period_s,
        )

    # -- inputs ----------------------------------------------------------------------

    def observe_meters(self, meters: Sequence[GridMeterRef], snapshots: Mapping[str, SiteSnapshot]) -> None:
        """The grid meters (registry) and their snapshots now: the service calls it before plan and correct."""
        self.stations.observe(meters, snapshots)

    def forecast(self, now: datetime, history: History) -> FleetForecast:
        """Per-site forecasts: net load without the battery (see live/site_forecast.py)."""
        return fleet_forecast(
            self.sites,
            (self.bat_e_kwh > 0).tolist(),
            history,
            now,
            period_s=self.period_s,
            horizon=self.horizon,
        )

    def set_reservations(self, reservations: Sequence[Reservation]) -> None:
        """The DR-selected batteries from now on (the DR activator's, live/reservations.py); () clears them."""
        self.dr.set(reservations)

    @property
    def reservations(self) -> tuple[Reservation, ...]:
        """The DR reservations in force (`set_reservations`)."""
        return self.dr.reservations

    @property
    def last_reserved(self) -> ReservedSteps | None:
        """The last plan's reservations, with what it could not keep (None: none in force)."""
        return self.dr.last

    # -- limits ----------------------------------------------------------------------

    def refresh_envelopes(self, history: History, now: datetime) -> None:
        """Take the operator's envelopes from the store (`PUT /grid/limits` wrote them; a restart reads them)."""
        read = getattr(history, "read_envelopes", None)
        if read is None:
            return
        try:
            self.limits_book.set_operator(envelopes_from_json(read(now.timestamp())))
        except ConfigError as exc:  # the net or the config changed under a stored envelope
            log.warning("stored grid envelopes ignored: %s", exc)

    def _guard_elements(self, limits: GridLimits, now: datetime, sites: Mapping[str, SiteSnapshot]) -> None:
        """Give the fleet guard each MV/LV station with the fleet's sites below it and its limit now."""
        if self.guard is None and guard_needed(limits, has_meters=bool(self.stations.meters)):
            self.guard = self._new_guard()
        if self.guard is None:
            return
        self._guard_base, self._names = station_elements(limits, self._station_sites, now, self.period_s)
        self._guard_backgrounds(now, sites)

    def _guard_backgrounds(self, now: datetime, sites: Mapping[str, SiteSnapshot]) -> None:
        """The guard's elements with the stations' measured backgrounds now (live/stations.py)."""
        if self.guard is None:
            return
        measured = self.stations.measured(now, sites)
        self.guard.set_elements(self.stations.guard_elements(self._guard_base, measured, self._names))

    def _new_guard(self) -> FleetGuard:
        return new_guard(
            self.sites,
            limit_kw=self.limit_kw,
            period_s=self.period_s,
            battery_control=self._battery_control,
            fleet_name=self.limits_book.base.hvmv or "hvmv",
            market_only_sites=self.market_only_sites,
        )

    # -- plan ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop what the engine runs besides this process (the areas' worker processes or Dask actors)."""
        close = getattr(self.engine, "close", None)  # a DispatchEngine holds nothing to stop
        if close is not None:
            close()

    def plan(self, now: datetime, sites: Mapping[str, SiteSnapshot], history: History) -> Plan:
        """Plan the horizon from now: forecast, solve the dispatch, and build the first period's commands."""
        t0 = time.perf_counter()
        history = SharedReads(history)  # the fleet's baselines and the backgrounds read the same series
        excluded = {
            i
            for i, s in enumerate(self.sites)
            if (snap := sites.get(s.site)) is None
            or snap.mode in ("offline", "unknown")
            or snap.uncontrollable
        } | self._market_only_idx
        missing = _missing_assets(sites)
        no_battery = {  # a battery the site never reported: pinned to 0, never commanded
            i
            for i, s in enumerate(self.sites)
            if (bat := s.asset_of(Role.BATTERY)) is not None and (s.site, bat.asset) in missing
        }
        self.refresh_envelopes(history, now)
        limits = self.limits_book.current(now)
        starts = interval_starts(period_start(now, self.period_s), self.horizon, self.period_s)
        # every branch of the planning network at the limit in force in each interval
        # (the net's rating, the config's override, a DSO envelope): the engine honours them
        rating = limits.ratings_kw(self.problem.grid.branch_names, starts, self.period_s)
        self._guard_elements(limits, now, sites)
        fc = with_measurements(
            self.forecast(now, history),
            self.sites,
            (self.bat_e_kwh > 0).tolist(),
            sites,
            period_s=self.period_s,
        )
        # each metered station's load outside the fleet, a fixed load at its bus (live/station_plan.py)
        fallback = {s.site: float(fc.base_kw[0, i]) for i, s in enumerate(self.sites)}
        backgrounds, st = self.stations.plan_inputs(
            now, sites, history, fallback, rating, self.problem.grid, z=self.forecast_z, horizon=self.horizon
        )
        background_total = st.bus_fixed_kw.sum(axis=1)
        base_total = fc.base_kw.sum(axis=1) + background_total
        sigma_total = np.sqrt(fc.sigma_kw**2 + st.sigma_kw**2)
        state = storage_state(self.problem, self.sites, self.bat_index, sites)
        bounds = battery_bounds(self.problem, self.sites, self.bat_index, excluded | no_battery, sites, state)
        # each site's connection limit / DSO cap: per-interval battery bounds (live/site_limits.py)
        start = period_start(now, self.period_s)
        caps = self._caps_sent.valid(now)
        self._site_limits = site_lims = fleet_limits(
            self.sites, sites, caps, start, self.horizon, self.period_s
        )
        self._base_kw = fc.base_kw
        steps = limit_battery_steps(self.problem, self.bat_index, fc.base_kw, site_lims, bounds, state)
        steps = self.dr.apply(steps, bounds, state, starts)  # DR-selected batteries (live/reservations.py)
        self.engine.set_battery_limits(*bounds, steps)
        # Chance constraint: plan against the fleet's p90, not its median (forecast error is
        # what breaks a plan); never tighter than half the limit.
        limit_t = np.maximum(self.limit_kw - self.forecast_z * sigma_total, 0.5 * self.limit_kw)
        # A slight preference for earlier imports makes the LP charge as soon as headroom
        # allows instead of "just in time" (ties are otherwise broken arbitrarily), and hold
        # energy for later: pre-charging, the Schutterwald study's ProA, without a separate rule.
        c_import = 1.0 + EARLY_IMPORT_PREFERENCE * np.arange(self.horizon) / self.horizon
        # The window moves one period between plans: the last basis, unshifted, is the better
        # start (measured, 100 sites: 105 ms per plan; shifted with engine.shift_basis: 998 ms).
        answer = self.engine.answer(
            StepInputs(
                base_kw=fc.base_kw,
                station_limit_kw=limit_t,
                c_import=c_import,
                branch_rating_kw=st.rating_kw,
                bus_fixed_kw=st.bus_fixed_kw if st.any else None,
            ),
            state,
        )
        self.last_answer = answer
        self.last_schedule = schedule = answer.schedule
        planned = schedule.p_site_kw.sum(axis=1) + background_total
        battery_kw = self.commands.battery_values(self.sites, excluded | no_battery, schedule, self.bat_index)
        held: set[tuple[str, str]] = set()
        if self.guard is not None:
            self.guard.on_plan(now, battery_kw, {self.sites[i].site for i in excluded}, sites)
            self.dr.feed_guard(self.guard, now)
            self.guard.step(now, sites, force=True)
            battery_kw = {site: self.guard.battery_value(site) for site in battery_kw}
            held = set(self.guard.caps)
        battery_kw = clamp_battery_values(
            battery_kw, self.sites, site_lims, fc.base_kw, self.commands.grid_target_sites(self.sites)
        )
        commands, setpoints = self.commands.build(now, self.sites, excluded, schedule, battery_kw, held)
        commands = [c for c in commands if (c.site, c.asset) not in missing]
        setpoints = {
            site: {a: v for a, v in plan.items() if (site, a) not in missing}
            for site, plan in setpoints.items()
        }
        congestion = hvmv_congestion(start, base_total, sigma_total, self.limit_kw, self.period_s)
        return Plan(
            at=now,
            period_s=self.period_s,
            commands=commands,
            root_baseline_kw=[float(v) for v in base_total],
            root_planned_kw=[float(v) for v in planned],
            station_limit_kw=self.limit_kw,
            congestion=congestion,
            site_setpoints=setpoints,
            solve_ms=(time.perf_counter() - t0) * 1000.0,
            excluded_sites=sorted(self.sites[i].site for i in excluded),
            site_forecast_kw=fc.base_kw,
            site_sigma_kw=fc.site_sigma_kw,
            violations=branch_violations(
                limits, self.problem.grid.branch_names, schedule.branch_flow_kw, starts, self.period_s
            ),
            site_limit_shortfalls=shortfalls(self.sites, site_lims, schedule.p_site_kw, start, self.period_s),
            station_background=backgrounds,
        )

    def congestion_forecast(self, plan: Plan, n_scenarios: int = 100) -> CongestionForecast:
        """The on-demand AC scenario forecast of `plan` (API; seconds of CPU; live/plan_forecasts.py)."""
        return self.forecasts.scenarios(
            plan, n_scenarios, self.limit_kw if np.isfinite(self.limit_kw) else None
        )

    def probabilistic_forecast(
        self, plan: Plan, options: ForecastOptions | None = None
    ) -> ProbabilisticForecast:
        """The full probabilistic congestion forecast of `plan`: every element, the limits in force.

        Reads only the plan and models built once per planner, never the LP: the service runs
        it in a worker thread after every plan without holding the plan lock.
        """
        return self.forecasts.probabilistic(
            plan,
            options,
            limits=self.limits_book.current(plan.at),
            limit_kw=self.limit_kw if np.isfinite(self.limit_kw) else None,
            background_kw=self.stations.households_kw(plan.station_background),
        )

    def note_sent(self, commands: Sequence[Command]) -> None:
        """Commands the service sent: a `site_import_max_kw` among them caps that site's plan while valid."""
        self._caps_sent.note(commands)

    def correct(self, now: datetime, sites: Mapping[str, SiteSnapshot]) -> list[Command]:
        """The fleet guard's step between plans (see guard.py): commands for what changed."""
        if self.guard is None:
            return []
        if self.stations.meters:
            self._guard_backgrounds(now, sites)  # the meters' newest samples
        self.dr.feed_guard(self.guard, now)
        changes = self.guard.step(now, sites)
        if not changes:
            return []
        battery_kw = changes.battery_kw
        if self._site_limits and self._base_kw is not None:
            battery_kw = clamp_battery_values(
                battery_kw,
                self.sites,
                self._site_limits,
                self._base_kw,
                self.commands.grid_target_sites(self.sites),
            )
        out = self.commands.corrections(
            now, self.sites, battery_kw, changes.capped | changes.released, self.guard.caps
        )
        missing = _missing_assets(sites)
        return [c for c in out if (c.site, c.asset) not in missing]


def _missing_assets(sites: Mapping[str, SiteSnapshot]) -> set[tuple[str, str]]:
    """(site, asset) of registered assets that never reported (ingest's registry check): never commanded."""
    return {(site, asset) for site, snap in sites.items() for asset in snap.missing_assets}


def build_planner(
    region: Region,
    sites: Sequence[SiteRef],
    *,
    period_s: float,
    horizon_steps: int,
    margin_s: float,
    station_limit_kw: float | None,
    signing_keys: Mapping[str, bytes | SigningKey] | None = None,
    battery_control: str = "setpoint",
    forecast_z: float = Z_90,
    by_area: bool = False,
    grid_limits: GridConfig | None = None,
    market_only_sites: Collection[str] = (),
    area_execution: AreaExecution | None = None,
) -> MpcPlanner:
    """The default planner of the cloud service (see `MpcPlanner`)."""
    return MpcPlanner(
        region,
        sites,
        period_s=period_s,
        horizon_steps=horizon_steps,
        margin_s=margin_s,
        station_limit_kw=station_limit_kw,
        signing_keys=signing_keys,
        battery_control=battery_control,
        forecast_z=forecast_z,
        by_area=by_area,
        grid_limits=grid_limits,
        market_only_sites=market_only_sites,
        area_execution=area_execution,
    )
