"""Per-area decomposition of the dispatch LP, certified against the full LP.

Why: the cost of a HiGHS solve grows faster than the LP (a cold solve of the 1,000-building
single step factorises a 17,000-row basis; the 96-step MPC over 1,000 buildings is one
600,000-column LP), while the LP is almost separable: buildings below different MV/LV
stations interact only through what they share above the stations (the HV/MV transformer,
the MV lines, the voltage at the stations' MV buses, the HV/MV congestion threshold).

`split_areas` cuts the radial network into areas (the subtrees below the stations, or
smaller), `DecomposedEngine` keeps one `DispatchEngine` per area. An area's LP is its own
network and sites plus the *path* from the slack bus down to its station, where the other
areas' load (from their last solution) sits as a fixed load, so its flows and voltages are
what the full LP would see. The HV/MV thresholds are left out of the areas' LPs and
checked on the assembled answer.

Exactness. Let R be the full LP without its coupling rows (voltage bands, limits of shared
branches, HV/MV thresholds). R separates into one LP per area. If in every area's LP the
coupling rows have zero duals, that area's solution is optimal for its part of R (the KKT
conditions of R's part are those of the area's LP without the rows whose duals are zero),
so the assembled solution is optimal for R. If it also meets every coupling row of the
full LP with the *true* flows (checked here with the exact linear model, no slack used),
it is feasible for the full LP, which R relaxes: it is then optimal for the full LP, with
the same objective. `Schedule`s returned are certified that way. When the certificate
fails on a voltage or a shared branch (which may come from a wrong guess of the others'
load) the areas are solved once more with the others' true loads; when it fails on the
HV/MV threshold (the relaxation's optimum breaks it, so it truly binds: a congested hour),
or fails twice, the full LP answers (built on first need, warm after). `stats` counts
each outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from cloud_controller.dispatch.areas.areas import (
    columns,
    decomposable,
    fold_matrix,
    per_entry,
    split_areas,
    sub_problem,
    sub_rating,
    subtree_matrix,
)
from cloud_controller.dispatch.areas.execution import AreaExecution, SerialAreas
from cloud_controller.dispatch.areas.group import AreaCall, AreaLimits, AreaSpec
from cloud_controller.dispatch.areas.join import AreaLp, assemble, start_from_areas
from cloud_controller.dispatch.engine import DispatchEngine
from cloud_controller.dispatch.model.problem import (
    BatterySteps,
    FloatArray,
    Problem,
    StepInputs,
    StorageState,
    branch_rating,
)
from cloud_controller.dispatch.model.schedule import Schedule
from cloud_controller.dispatch.options import EngineOptions
from cloud_controller.dispatch.routes.base import AREAS, Answer

# The assembled answer may break a coupling row of the full LP only by round-off: what the
# full LP would charge for it (penalty x violation) bounds the answer's distance from the
# optimum, and must stay below GAP_TOL x max(1, |objective|).
GAP_TOL = 1e-9
# The whole LP starts from the areas' joined bases only where their answer breaks the HV/MV
# threshold (by more than THRESHOLD_TOL_KW) in at most 1/JOINED_START_SHARE of the periods.
JOINED_START_SHARE = 4
THRESHOLD_TOL_KW = 1e-6


@dataclass
class DecompositionStats:
    """How each solve was answered."""

    certified_first: int = 0  # areas solved once, certificate held
    certified_second: int = 0  # needed a second round with the others' true loads
    full_lp: int = 0  # the certificate failed (twice, or once on the HV/MV threshold): the full LP answered
    full_lp_direct: int = 0  # straight to the full LP: it answered one of the last solves
    full_from_areas: int = 0  # of full_lp: first solve started from the areas' joined bases
    failed_checks: dict[str, int] = field(default_factory=dict)


class DecomposedEngine:
    """The `Engine` protocol by area: `answer`/`solve`, `set_battery_limits`, `shift_basis`.

    `execution` says where the areas' engines live and are solved (execution.py: in this
    process, worker processes or Dask; the answers are the same); without one, `threads` > 1
    solves areas in a thread pool here (HiGHS releases the GIL while it solves; the HiGHS
    thread count of each LP is `options.threads`). The engine takes the execution over and
    closes it. The engine options apply to every area's engine and to the full LP when it
    is needed. With `cop_rtol` > 0 each engine holds the COP it saw
    first, so a full LP built late may hold another COP than the areas did (within cop_rtol).
    Where the LP has ties (e.g. which store moves first), the areas and the full LP may
    return different optimal schedules with the same objective.
    """

    def __init__(
        self,
        problem: Problem,
        options: EngineOptions | None = None,
        *,
        max_sites: int = 200,
        max_buses: int = 300,
        threads: int = 1,
        retry_after: int = 8,
        execution: AreaExecution | None = None,
    ) -> None:
        """Set up the per-area engine; `retry_after` and `options.lazy_grid` tune when and how it solves.

        `retry_after`: once the full LP had to answer (a coupling limit binds, which in a
        congested hour stays so for a while), the next `retry_after` solves go to the full
        LP directly instead of paying for two decomposed rounds first.

        Every LP holds its grid rows lazily unless `options.lazy_grid` is False (`lazy.py`):
        by area, lazily is faster on both kinds of network, and where the HV/MV threshold
        binds in a few periods it lets the whole LP start from the areas' bases.
        """
        reason = decomposable(problem)
        if reason:
            raise ValueError(f"cannot decompose by area: {reason}")
        self.problem = problem
        options = options or EngineOptions()
        self._options = options if options.lazy_grid is not None else replace(options, lazy_grid=True)
        self.areas = split_areas(problem.grid, problem.site_bus, max_sites=max_sites, max_buses=max_buses)
        g = problem.grid
        self._d = subtree_matrix(g)
        self._dt = self._d.T.tocsr()
        self._shared_branch = np.ones(g.n_branch, dtype=bool)
        self._subs: list[AreaLp] = []
        self._site_of_bus = sp.csr_matrix(
            (np.ones(problem.n_sites), (problem.site_bus, np.arange(problem.n_sites))),
            shape=(g.n_bus, problem.n_sites),
        )
        lift = np.arange(g.n_bus, dtype=np.int64)
        for area in self.areas:
            lift[area.buses] = area.path_buses[-1]
        specs: list[AreaSpec] = []
        for i, area in enumerate(self.areas):
            self._shared_branch[area.branches] = False
            sub, buses, bats, hps = sub_problem(problem, area)
            specs.append(AreaSpec(i, area, sub))
            self._subs.append(AreaLp(area, bats, hps, fold_matrix(g, area, buses, lift), sub))
        self._in_area = [np.zeros(problem.n_sites, dtype=bool) for _ in self._subs]
        for mask, s in zip(self._in_area, self._subs, strict=True):
            mask[s.area.sites] = True
        # the areas' engines (no mending inside an area: a mended answer binds rows whose
        # duals the certificate needs; AreaGroup turns it off)
        self.execution: AreaExecution = execution if execution is not None else SerialAreas(threads)
        self.execution.start(specs, self._options)
        self._idle = [False] * len(self._subs)  # per area: coupling rows idle in its last answer
        self._last_p_site: FloatArray | None = None
        self._full: DispatchEngine | None = None
        self.stats = DecompositionStats()
        self.last_answer: Answer | None = None
        self._battery_limits: tuple[FloatArray, FloatArray, FloatArray] | None = None
        self._battery_steps: BatterySteps | None = None
        self._retry_after = retry_after
        self._direct_left = 0
        self._threshold_periods = 0  # periods where the last assembled answer broke the threshold

    @property
    def n_areas(self) -> int:
        """How many areas the network is cut into (one LP each)."""
        return len(self._subs)

    @property
    def area_engines(self) -> list[DispatchEngine]:
        """The areas' engines in area order, where they run in this process (`SerialAreas`)."""
        if not isinstance(self.execution, SerialAreas):
            raise TypeError("the areas' engines run elsewhere (not SerialAreas)")
        return self.execution.engines()

    def lazy_rows(self) -> int:
        """Grid rows added lazily: over the areas, and the whole LP once built."""
        whole = 0 if self._full is None or self._full.lazy is None else len(self._full.lazy.rows.row)
        return self.execution.lazy_rows() + whole

    def close(self) -> None:
        """Stop the areas' execution (its thread pool, worker processes or Dask actors)."""
        self.execution.close()

    def __enter__(self) -> DecomposedEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- control ------------------------------------------------------------------------
    def set_battery_limits(
        self,
        p_max_kw: FloatArray,
        e_min_kwh: FloatArray,
        e_max_kwh: FloatArray,
        steps: BatterySteps | None = None,
    ) -> None:
        """Set the batteries' power and energy limits on every area's LP (and the whole LP, once built)."""
        self.execution.set_battery_limits(
            [
                AreaLimits(
                    i,
                    np.asarray(p_max_kw)[s.bats],
                    np.asarray(e_min_kwh)[s.bats],
                    np.asarray(e_max_kwh)[s.bats],
                    None if steps is None else steps.take(s.bats),
                )
                for i, s in enumerate(self._subs)
            ]
        )
        self._battery_limits = (p_max_kw, e_min_kwh, e_max_kwh)
        self._battery_steps = steps
        if self._full is not None:
            self._full.set_battery_limits(p_max_kw, e_min_kwh, e_max_kwh, steps)

    def shift_basis(self, k: int) -> bool:
        """Shift every area's basis (and the whole LP's) `k` periods on; True if every area's shift took."""
        done = self.execution.shift_basis(k)
        if self._full is not None:
            self._full.shift_basis(k)
        return done

    # -- solving ------------------------------------------------------------------------
    def _bus_loads(self, inputs: StepInputs, p_site_kw: FloatArray) -> FloatArray:
        """(T, N) bus loads for the sites' exchange `p_site_kw` plus the fixed bus loads."""
        loads = np.asarray((self._site_of_bus @ p_site_kw.T).T)
        if inputs.bus_fixed_kw is not None:
            loads = loads + np.asarray(inputs.bus_fixed_kw, dtype=float)
        return loads

    def _sub_inputs(
        self, s: AreaLp, inputs: StepInputs, others_kw: FloatArray, rating_kw: FloatArray | None
    ) -> StepInputs:
        T = self.problem.horizon
        fixed = np.asarray((s.fold @ others_kw.T).T)
        p = self.problem
        base = columns(inputs.base_kw, T, p.n_sites, s.area.sites)
        assert base is not None
        return StepInputs(
            base_kw=base,
            pv_kw=columns(inputs.pv_kw, T, p.n_sites, s.area.sites),
            heat_kw=columns(inputs.heat_kw, T, p.n_hp, s.hps),
            cop=inputs.cop,
            bus_fixed_kw=fixed,
            c_import=per_entry(inputs.c_import, T, s.area.sites),
            bat_w_discharge=per_entry(inputs.bat_w_discharge, T, s.bats),
            ts_w_discharge=per_entry(inputs.ts_w_discharge, T, s.hps),
            hp_cap_frac=columns(inputs.hp_cap_frac, T, p.n_hp, s.hps),
            # The HV/MV thresholds stay out of the areas' LPs: with the others' load fixed, each
            # area would try to meet the whole threshold alone. They are checked on the
            # assembled answer instead; where that breaks one, the threshold truly binds.
            station_limit_kw=None,
            station_feed_limit_kw=None,
            branch_rating_kw=sub_rating(rating_kw, s.area),
        )

    def _round(
        self, inputs: StepInputs, state: StorageState, guess_kw: FloatArray, rating_kw: FloatArray | None
    ) -> list[Schedule]:
        """Solve every area with the other areas' site loads taken from `guess_kw` (T, n_sites).

        Each area's call is numpy data only: the areas may be solved in other processes.
        """
        calls: list[AreaCall] = []
        for i, s in enumerate(self._subs):
            others = np.where(self._in_area[i][None, :], 0.0, guess_kw)
            sub_state = StorageState(
                e_bat_kwh=np.asarray(state.e_bat_kwh)[s.bats], e_ts_kwh=np.asarray(state.e_ts_kwh)[s.hps]
            )
            sub_inputs = self._sub_inputs(s, inputs, self._bus_loads(inputs, others), rating_kw)
            calls.append(AreaCall(i, sub_inputs, sub_state, sub_rating(rating_kw, s.area)))
        out: list[Schedule | None] = [None] * len(self._subs)
        for r in self.execution.solve(calls):
            out[r.index] = r.schedule
            self._idle[r.index] = r.coupling_idle
        assert all(o is not None for o in out), "an area went unanswered"
        return [o for o in out if o is not None]

    def _coupling_idle(self) -> bool:
        """Every area's coupling rows off their bound or with a round-off dual (at the call's ratings).

        Checked where each area was solved (`AreaGroup`), next to its duals.
        """
        return all(self._idle)

    def _check(
        self, inputs: StepInputs, p_site_kw: FloatArray, objective: float, rating_kw: FloatArray | None
    ) -> tuple[str | None, FloatArray, FloatArray, FloatArray]:
        """Which coupling family the assembled solution breaks beyond round-off (None if none).

        Also its flows, voltages and slack-bus power (lossless: the sum of the bus loads).

        "Beyond round-off": what the full LP would charge for the breaches (each soft limit's
        penalty times the breach) exceeds GAP_TOL x max(1, |objective|).
        """
        p = self.problem
        g = p.grid
        w = p.weights
        T = p.horizon
        loads = self._bus_loads(inputs, p_site_kw)
        flows = np.asarray((self._d @ loads.T).T)
        v = g.v_root_pu - np.asarray((self._dt @ (flows * g.r_pu_per_kw[None, :]).T).T)
        root = loads.sum(axis=1)
        cost: dict[str, float] = {}
        if p.enforce_voltage:
            over = np.maximum(v - g.v_max_pu[None, :], 0.0) + np.maximum(g.v_min_pu[None, :] - v, 0.0)
            cost["voltage"] = w.pen_voltage_per_pu * float(over.sum())
        if p.enforce_branches:
            shared = self._shared_branch & np.isfinite(g.rating_kw)
            rating = g.rating_kw[None, :] if rating_kw is None else rating_kw
            over_kw = np.maximum(np.abs(flows[:, shared]) - rating[:, shared], 0.0)
            cost["shared branch"] = w.pen_branch * p.dt_h * float(over_kw.sum())
        lim = (
            np.full(T, np.inf)
            if inputs.station_limit_kw is None
            else np.asarray(inputs.station_limit_kw, float)
        )
        flim = (
            np.full(T, np.inf)
            if inputs.station_feed_limit_kw is None
            else np.asarray(inputs.station_feed_limit_kw, float)
        )
        over_st = np.maximum(root - lim, 0.0) + np.maximum(-root - flim, 0.0)
        cost["hv/mv threshold"] = w.pen_station * p.dt_h * float(over_st.sum())
        self._threshold_periods = int((over_st > THRESHOLD_TOL_KW).sum())
        if sum(cost.values()) <= GAP_TOL * max(1.0, abs(objective)):
            return None, flows, v, root
        return max(cost, key=lambda k: cost[k]), flows, v, root

    @property
    def last_by_area(self) -> bool:
        """The last answer came from the areas (certified), not the full LP."""
        return self.last_answer is not None and self.last_answer.route == AREAS

    def solve(self, inputs: StepInputs, state: StorageState) -> Schedule:
        """`answer(...).schedule`."""
        return self.answer(inputs, state).schedule

    def answer(self, inputs: StepInputs, state: StorageState) -> Answer:
        """Solve by area; certify; solve again or fall back to the full LP if needed."""
        self.last_answer = got = self._answer(inputs, state)
        return got

    def _answer(self, inputs: StepInputs, state: StorageState) -> Answer:
        T = self.problem.horizon
        if self._direct_left > 0:
            self._direct_left -= 1
            self.stats.full_lp_direct += 1
            return self._solve_full(inputs, state)
        guess = self._last_p_site
        if guess is None or guess.shape[0] != T:
            guess = np.broadcast_to(np.asarray(inputs.base_kw, dtype=float), (T, self.problem.n_sites))
        rating = branch_rating(self.problem, inputs)
        for attempt in (1, 2):
            parts = self._round(inputs, state, guess, rating)
            p_site = self._gather_p_site(parts)
            objective = float(sum(part.objective for part in parts))
            failed, flows, v, root = self._check(inputs, p_site, objective, rating)
            if failed is None and not self._coupling_idle():
                failed = "coupling row binding in an area"
            if failed is None:
                if attempt == 1:
                    self.stats.certified_first += 1
                else:
                    self.stats.certified_second += 1
                self._last_p_site = p_site
                return Answer(assemble(self.problem, self._subs, parts, p_site, flows, v, root), AREAS, True)
            self.stats.failed_checks[failed] = self.stats.failed_checks.get(failed, 0) + 1
            if failed == "hv/mv threshold":
                break  # the areas' optimum (of a relaxation) breaks it: only the full LP can help
            guess = p_site
        self.stats.full_lp += 1
        self._direct_left = self._retry_after
        # The areas' bases are a good start where the threshold breaks in few periods (the
        # dual simplex pulls those in); where it breaks in most (a fleet that cannot meet it
        # all day) the engine's own cold start is better (docs/benchmarks.md).
        from_areas = self._threshold_periods <= max(1, T // JOINED_START_SHARE)
        return self._solve_full(inputs, state, from_areas=from_areas)

    def _solve_full(self, inputs: StepInputs, state: StorageState, *, from_areas: bool = False) -> Answer:
        """The whole LP answers.

        Its first solve after a round of the areas starts from their joined bases where they
        map exactly (`lazy_grid`: every LP gridless), else cold.
        """
        if self._full is None:
            self._full = DispatchEngine(self.problem, self._options)
            if self._battery_limits is not None:
                self._full.set_battery_limits(*self._battery_limits, self._battery_steps)
            if (
                from_areas
                and self._full.lazy_grid
                and start_from_areas(self.problem, self._subs, self.execution.starts(), self._full)
            ):
                self.stats.full_from_areas += 1
        got = self._full.answer(inputs, state)
        self._last_p_site = got.schedule.p_site_kw
        return got

    def _gather_p_site(self, parts: list[Schedule]) -> FloatArray:
        T = self.problem.horizon
        out = np.zeros((T, self.problem.n_sites))
        for s, part in zip(self._subs, parts, strict=True):
            out[:, s.area.sites] = part.p_site_kw
        return out
