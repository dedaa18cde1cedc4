"""`gridflex study`: every scenario × stress level over the year, in parallel, then outputs.

Stress-free runs (status quo, 2030 without control, Stor) are computed once and counted
against each stress level's limit; policy runs depend on the limit (it decides the
congestion onsets) and run once per level. `--jobs N` forks N workers that share the
profiles copy-on-write (the second core helps only across scenarios, not within one).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import pickle
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cloud_controller.study.config import BEYOND, SCENARIOS, STRESS_LEVELS, StudyConfig
from cloud_controller.study.inputs import StudyInputs
from cloud_controller.study.results import STRESS_FREE, ScenarioRun
from cloud_controller.study.runner import run_scenario

if TYPE_CHECKING:
    from cloud_controller.grid.region import Region

TOL_KW = 0.1  # a step violates the limit only if it exceeds it by more than this

Job = tuple[str, str | None]
_INPUTS: StudyInputs | None = None  # set in the parent before forking workers
REFERENCE = "stor"


@dataclass
class StudyResult:
    """Every run of a study, the limit per stress level, and how long it took."""

    inputs: StudyInputs
    runs: dict[Job, ScenarioRun]
    limits_kw: dict[str, float]
    quick: bool
    wall_s: float

    def run_for(self, scenario: str, stress: str) -> ScenarioRun | None:
        """The run of `scenario` at `stress` (stress-free scenarios have one run for all), or None."""
        key: Job = (scenario, None) if scenario in STRESS_FREE else (scenario, stress)
        return self.runs.get(key)

    def has(self, scenario: str, stress: str) -> bool:
        """Whether the study has a run of `scenario` at `stress`."""
        return self.run_for(scenario, stress) is not None


def load_inputs(cfg: StudyConfig, *, quick: bool, region: Region | None = None) -> StudyInputs:
    """Region, household population and profiles for `cfg` (`quick`: only the quick weeks of the year).

    `region`: the one `cfg` names, already built (a sweep reuses it across points: reading
    `lv_schutterwald` is most of the inputs' cost).
    """
    from cloud_controller.grid.region import build_schutterwald_region, region_from_json
    from cloud_controller.study.population import draw_population
    from cloud_controller.study.profiles import build_profiles

    if region is None and cfg.network_json:
        region = region_from_json(cfg.network_json)
    elif region is None:
        region = build_schutterwald_region(cfg.stations, hvmv_sn_mva=cfg.hvmv_sn_mva)
    pop = draw_population(cfg, region.site_station)
    prof = build_profiles(cfg, pop, quick=quick)
    return StudyInputs(cfg, region, pop, prof)


def plan_jobs(
    scenarios: tuple[str, ...], stresses: tuple[str, ...], *, mpc_all_stress: bool = True
) -> list[Job]:
    """Stress-free runs once, the others per stress level; the slowest runs first.

    With `mpc_all_stress` off (--quick), MPC runs only at the most severe level asked for.
    """
    jobs: list[Job] = []
    severe = max(stresses, key=lambda st: STRESS_LEVELS[st])
    for sc in scenarios:
        if sc in STRESS_FREE:
            jobs.append((sc, None))
        elif sc == "mpc" and not mpc_all_stress:
            jobs.append((sc, severe))
        else:
            jobs.extend((sc, st) for st in stresses)
    # Longest first, so that with --jobs N the MPC overlaps the per-step runs.
    order = {"mpc": -1, "status_quo": 9, "no_control": 9}
    return sorted(jobs, key=lambda j: order.get(j[0], 0))


def _execute(
    inp: StudyInputs, job: Job, *, validate: bool, reference: ScenarioRun | None = None
) -> ScenarioRun:
    """One run plus its AC check.

    The (T, H) site powers are dropped afterwards to save memory, except Stor's, which later
    runs take steps over from (`runner.run_opf`).
    """
    if job[0] == "mpc":
        from cloud_controller.study.mpc import run_mpc

        assert job[1] is not None
        run = run_mpc(inp, job[1], horizon_h=inp.cfg.mpc.horizon_h, replan_h=inp.cfg.mpc.replan_h)
    else:
        run = run_scenario(inp, job[0], job[1], reference)
    is_reference = job[0] == REFERENCE
    if validate:
        from cloud_controller.study.validate import validate_run

        run.ac = validate_run(inp, run, reference, keep_steps=is_reference)
    if not is_reference:
        run.p_site_kw = np.zeros((0, 0), dtype=np.float32)
    return run


_REFERENCE_CACHE: dict[str, ScenarioRun] = {}  # per worker process: reference file -> run


def _save_reference(run: ScenarioRun, folder: Path) -> Path:
    """Write what policy runs need of the Stor run (workers were forked before it existed)."""
    path = folder / "stor_reference.pkl"
    with path.open("wb") as fh:
        pickle.dump(run, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _load_reference(path: str) -> ScenarioRun:
    if path not in _REFERENCE_CACHE:
        _REFERENCE_CACHE.clear()
        with open(path, "rb") as fh:  # our own file, written by _save_reference in this run
            _REFERENCE_CACHE[path] = pickle.load(fh)
    return _REFERENCE_CACHE[path]


def _worker(args: tuple[Job, bool, str | None]) -> ScenarioRun:
    assert _INPUTS is not None
    job, validate, ref_path = args
    reference = _load_reference(ref_path) if ref_path else None
    return _execute(_INPUTS, job, validate=validate, reference=reference)


# While Stor is still running, idle workers take policy runs that will solve every step
# anyway; these go first: their policy acts on every congested day (ProB's discharge hold,
# the grid-aware limit), so they take few steps over from Stor (measured: 3 % of the
# year at any stress level, against 38-57 % for CurA/CurB).
_LEAST_REUSE_FIRST = (
    "grid_opf",
    "stor_proa_prob_curb",
    "stor_proa_prob",
    "stor_proa",
    "stor_curb",
    "stor_cura",
)


def _queue(plan: list[Job]) -> list[Job]:
    """Stor and the runs that never need it first (longest first), then the policy runs."""
    first = [j for j in plan if j[0] in (*STRESS_FREE, "mpc")]
    first.sort(key=lambda j: {REFERENCE: 0, "mpc": 1}.get(j[0], 2))
    rest = [j for j in plan if j not in first]
    rank = {sc: i for i, sc in enumerate(_LEAST_REUSE_FIRST)}
    rest.sort(key=lambda j: rank.get(j[0], -1))
    return first + rest


def run_study(
    cfg: StudyConfig,
    *,
    quick: bool = False,
    jobs: int = 1,
    scenarios: tuple[str, ...] | None = None,
    stresses: tuple[str, ...] | None = None,
    inputs: StudyInputs | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    validate: bool = True,
    reuse: bool = True,
) -> StudyResult:
    """Run the study; `on_progress(label, done, total)` is called after each finished run.

    `reuse` (default): policy runs started after Stor has finished take over the steps
    where their LP is Stor's LP instead of solving them again (`runner.run_opf`); runs
    started earlier (to keep every worker busy) and `reuse=False` solve every step.
    """
    t0 = time.perf_counter()
    scen = scenarios or cfg.scenarios
    # Counting violations needs the status quo (the limit) and the no-control reference.
    scen = tuple(dict.fromkeys(("status_quo", "no_control", *scen)))
    stress = stresses or cfg.stress
    inp = inputs or load_inputs(cfg, quick=quick)
    queue = _queue(plan_jobs(scen, stress, mpc_all_stress=not quick))
    runs: dict[Job, ScenarioRun] = {}
    total = len(queue)

    def finished(job: Job, run: ScenarioRun) -> None:
        runs[job] = run
        if on_progress:
            on_progress(_label(job), len(runs), total)

    if jobs <= 1 or total <= 1:
        _run_serial(inp, queue, finished, validate=validate, reuse=reuse)
    else:
        _run_parallel(inp, queue, finished, jobs=jobs, validate=validate, reuse=reuse)
    ref = runs.get((REFERENCE, None))
    if ref is not None:  # its per-step state and AC results were only for the other runs
        ref.state_kwh = None
        ref.ac_steps = None
        ref.p_site_kw = np.zeros((0, 0), dtype=np.float32)
    limits = {st: inp.limit_kw(st) for st in stress}
    return StudyResult(inp, runs, limits, quick, time.perf_counter() - t0)


def _run_serial(
    inp: StudyInputs,
    queue: list[Job],
    finished: Callable[[Job, ScenarioRun], None],
    *,
    validate: bool,
    reuse: bool,
) -> None:
    """`run_study`'s runs one after the other in this process, Stor's steps reused when `reuse`."""
    reference: ScenarioRun | None = None
    for job in queue:
        run = _execute(inp, job, validate=validate, reference=reference)
        finished(job, run)
        if reuse and job == (REFERENCE, None):
            reference = run


def _run_parallel(
    inp: StudyInputs,
    queue: list[Job],
    finished: Callable[[Job, ScenarioRun], None],
    *,
    jobs: int,
    validate: bool,
    reuse: bool,
) -> None:
    """`run_study`'s runs on `jobs` forked workers sharing `inp`; Stor's result is passed on via a file."""
    global _INPUTS
    total = len(queue)
    _INPUTS = inp
    with (
        tempfile.TemporaryDirectory(prefix="gridflex-study-") as tmp,
        cf.ProcessPoolExecutor(max_workers=min(jobs, total), mp_context=mp.get_context("fork")) as pool,
    ):
        ref_path: str | None = None
        pending: dict[cf.Future[ScenarioRun], Job] = {}

        def submit_next() -> None:
            job = queue.pop(0)
            pending[pool.submit(_worker, (job, validate, ref_path))] = job

        while queue and len(pending) < min(jobs, total):
            submit_next()
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                run = fut.result()
                if reuse and job == (REFERENCE, None):
                    ref_path = str(_save_reference(run, Path(tmp)))
                finished(job, run)
            while queue and len(pending) < jobs:
                submit_next()
    _INPUTS = None


def _label(job: Job) -> str:
    return job[0] if job[1] is None else f"{job[0]} @ {job[1]}"


def summarise(res: StudyResult) -> dict[str, Any]:
    """Per scenario × stress: violation counts at the HV/MV station, energies, max loading."""
    inp = res.inputs
    dt = inp.prof.dt_h
    out: dict[str, Any] = {
        "quick": res.quick,
        "steps": inp.prof.n_steps,
        "period": [str(inp.prof.index[0]), str(inp.prof.index[-1])],
        "households": inp.pop.counts(),
        "limits_kw": {k: round(v, 1) for k, v in res.limits_kw.items()},
        "status_quo_peak_kw": round(float(res.runs[("status_quo", None)].p_root_kw.max()), 1),
        "wall_s": round(res.wall_s, 1),
        "results": {},
    }
    scenarios = [s for s in (*SCENARIOS, *BEYOND) if any(k[0] == s for k in res.runs)]
    sq_ac = res.runs[("status_quo", None)].ac
    out["limits_ac_kw"] = {}
    for st, limit in res.limits_kw.items():
        # The AC counts use the same definition on the AC station load: status-quo AC peak = s × limit.
        limit_ac = float(np.nanmax(sq_ac["p_root_kw"])) / STRESS_LEVELS[st] if sq_ac else limit
        out["limits_ac_kw"][st] = round(limit_ac, 1)
        table: dict[str, Any] = {}
        for sc in scenarios:
            run = res.run_for(sc, st)
            if run is None:
                continue
            p = run.p_root_kw
            row: dict[str, Any] = {
                "load_violations": int((p > limit + TOL_KW).sum()),
                "feed_in_violations": int((p < -limit - TOL_KW).sum()),
                "max_load_pct": round(float(p.max() / limit * 100.0), 1),
                "max_feed_in_pct": round(float(max(0.0, -p.min()) / limit * 100.0), 1),
                "energy_over_limit_kwh": round(float(np.clip(p - limit, 0, None).sum() * dt), 1),
                "energy_kwh": {k: round(v, 1) for k, v in run.energy_kwh.items()},
                "solve_s": round(run.solve_s, 1),
                # steps taken over from Stor (its LP was this run's LP there), not solved again
                "steps_reused": int(run.reused.sum()) if run.reused is not None else 0,
                # steps answered site by site, certified optimal, without HiGHS (dispatch/sites.py)
                "steps_by_site": run.steps_by_site,
            }
            ac = run.ac
            if ac is not None:
                row["ac_load_violations"] = int((ac["p_root_kw"] > limit_ac + TOL_KW).sum())
                row["ac_feed_in_violations"] = int((ac["p_root_kw"] < -limit_ac - TOL_KW).sum())
                row["ac_dc_max_rel_diff_pct"] = round(ac["ac_dc_max_rel_pct"], 2)
                row["ac_dc_mean_rel_diff_pct"] = round(ac["ac_dc_mean_rel_pct"], 2)
                row["mvlv_max_loading_pct"] = {
                    k: round(v, 1) for k, v in ac["station_max_loading_pct"].items()
                }
                row["v_min_pu"] = round(ac["v_min_pu"], 4)
                row["v_max_pu"] = round(ac["v_max_pu"], 4)
                row["line_max_loading_pct"] = round(ac["line_max_loading_pct"], 1)
            table[sc] = row
        base = table["no_control"]["load_violations"]
        base_ac = table["no_control"].get("ac_load_violations")
        stor = table.get("stor", {}).get("load_violations")
        for row in table.values():
            row["load_violations_resolved_pct"] = (
                round(100.0 * (base - row["load_violations"]) / base, 1) if base else None
            )
            if base_ac:
                row["ac_load_violations_resolved_pct"] = round(
                    100.0 * (base_ac - row["ac_load_violations"]) / base_ac, 1
                )
            if stor:
                row["of_stor_remaining_resolved_pct"] = round(
                    100.0 * (stor - row["load_violations"]) / stor, 1
                )
        out["results"][st] = table
    return out


def write_steps(res: StudyResult, path: Path) -> None:
    """Per-step results, long format: one row per (run, step)."""
    import pandas as pd

    frames = []
    idx = res.inputs.prof.index
    for (sc, st), run in res.runs.items():
        cols: dict[str, Any] = {"ts": idx, "scenario": sc, "stress": st or "any", "p_root_kw": run.p_root_kw}
        ac = run.ac
        if ac is not None:
            cols["p_root_ac_kw"] = ac["p_root_kw"]
        for k, v in run.extras.items():
            cols[k] = v
        frames.append(pd.DataFrame(cols))
    df = pd.concat(frames, ignore_index=True)
    for k in ("scenario", "stress"):
        df[k] = df[k].astype("category")
    df.to_parquet(path, index=False)
