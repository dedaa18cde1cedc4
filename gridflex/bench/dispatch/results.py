"""The figures the dispatch bench measures, and the targets they are printed beside."""

from __future__ import annotations

from dataclasses import dataclass, field

# Targets set in the issue; printed beside the figures, never asserted.
TARGET_COLD_MS = {1000: 20.0, 10000: 250.0}
TARGET_WARM_MS = {1000: 2.0}
TARGET_MPC_S = {1000: 10.0}
TIME_LIMIT_S = 120.0


# -- results ----------------------------------------------------------------------------------


@dataclass
class RundcoppComparison:
    """Engine vs `pp.rundcopp` on the same consecutive steps of the Schutterwald region."""

    n_sites: int
    n_bus: int
    steps: int
    engine_build_ms: float  # DispatchEngine(...) once: numpy-built LP passed to HiGHS
    engine_first_ms: float  # first solve (cold basis)
    engine_warm_ms: float  # median of the solves after the first
    engine_warm_max_ms: float
    rundcopp_ms: float  # median over the steps after the first (pandapower's first call warms caches)
    rundcopp_first_ms: float
    ratio: float  # rundcopp_ms / engine_warm_ms
    max_abs_obj_diff: float
    max_rel_obj_diff: float
    station_limit_binding_steps: int  # steps where the MV/LV station limit binds in rundcopp
    rundcopp_failures: int  # steps where rundcopp did not converge (excluded from the diffs)


@dataclass
class SizeResult:
    """Single-step dispatch for `n_sites` buildings on a feeder replicated `copies` times."""

    n_sites: int
    copies: int
    n_bus: int
    n_bat: int = 0
    n_hp: int = 0
    n_cols: int = 0
    n_rows: int = 0
    build_ms: float | None = None  # DispatchEngine(...) (numpy-built LP + passModel + index)
    pyomo_build_ms: float | None = None  # the same LP through pyomo (write + read), for comparison
    first_solve_ms: float | None = None
    first_iterations: int | None = None  # simplex iterations of the first solve (crash basis)
    cold_ms: float | None = None  # build + first solve
    warm_ms: float | None = None  # median re-solve with changed loads/PV/heat/SOC, COP held
    warm_max_ms: float | None = None
    warm_cop_ms: float | None = None  # same, with the heat-pump COP changing every step too
    warm_cop_max_ms: float | None = None
    warm_steps: int = 0
    network: str = "full LV network"
    lazy_cold_ms: float | None = None  # the same steps through HiGHS, grid rows added lazily
    lazy_warm_ms: float | None = None
    lazy_warm_max_ms: float | None = None
    lazy_rows: int | None = None
    areas: int | None = None  # the same steps by area (DecomposedEngine, 2 threads)
    by_area_cold_ms: float | None = None
    by_area_warm_ms: float | None = None
    by_area_full_lp: int | None = None  # solves the full LP had to answer (certificate failed)
    by_area_warm_max_ms: float | None = None
    by_area_site_cold_ms: float | None = None  # by area, each area site by site where certified
    by_area_site_warm_ms: float | None = None
    by_area_site_warm_max_ms: float | None = None
    by_area_site_full_lp: int | None = None
    by_site_cold_ms: float | None = None  # the same steps with `by_site=True` (dispatch/sites.py)
    by_site_warm_ms: float | None = None
    by_site_warm_max_ms: float | None = None
    by_site_certified: int | None = None  # steps answered site by site (HiGHS answered the rest)
    by_site_grid_binds: int = 0  # of the others: a grid limit binds (the rest: a site's check failed)
    by_site_mended: int = 0  # of those: answered by re-solving the subtrees below overloaded branches
    by_site_steps: int = 0
    skipped: str | None = None


@dataclass
class MpcResult:
    """One multi-period MPC problem: `n_sites` buildings over `horizon` periods of 15 min."""

    n_sites: int
    horizon: int
    copies: int
    n_bus: int
    network: str = "full LV network"
    solver: str = "full LP"  # or "by area": DecomposedEngine, one LP per station, 2 threads
    binding: bool = False  # HV/MV threshold at BINDING_SHARE of the free peak
    binding_periods: int | None = None  # periods where the threshold binds in the plan
    areas: int | None = None
    by_area_certified: bool | None = None  # the cold plan came from the areas (no full-LP fallback)
    full_from_areas: bool = False  # the full LP answered, started from the areas' joined bases
    lazy_rows: int | None = None  # grid rows added lazily (all LPs) in the cold solve
    n_cols: int = 0
    n_rows: int = 0
    build_s: float | None = None
    solve_s: float | None = None
    cold_s: float | None = None  # build + first solve
    resolve_s: float | None = None  # re-solve with the profiles shifted by one period
    skipped: str | None = None


@dataclass
class DispatchBenchResult:
    """Everything `format_result` prints."""

    comparison: RundcoppComparison | None  # None when the "rundcopp" part did not run
    sizes: list[SizeResult]
    mpc: list[MpcResult]  # station-level network (as the planner and the study plan), full LV
    machine: dict[str, str] = field(default_factory=dict)
    total_s: float = 0.0
