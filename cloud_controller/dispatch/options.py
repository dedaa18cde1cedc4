"""The engine's options in one frozen value: how HiGHS starts, which routes run, how the grid is held."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cloud_controller.dispatch.model.problem import Problem

DEFAULT_TIME_LIMIT_S = 450.0  # half of the default 15-min control period (see EngineOptions)


@dataclass(frozen=True)
class EngineOptions:
    """How a `DispatchEngine` builds and solves its LP (the same for every call).

    `threads`: HiGHS's own parallelism (one count per process: `highs.threads`).

    `cop_rtol` > 0 keeps a heat pump's COP coefficient until the new COP differs by more
    than that share: changing a matrix coefficient makes HiGHS refactor the basis, while
    ambient temperature, and so COP, drifts by well under 1 % per 15 min. An answer that
    HiGHS gave with a held COP is not certified for the step's own LP.

    `presolve_first`: the first (cold) solve presolves, the re-solves start from the optimal
    basis it leaves (presolve would discard a basis, so it is off afterwards).

    `builder`: "numpy" assembles the LP with `model.lp.build_lp` in one call; "pyomo" writes
    `model.pyomo_model`'s pyomo model and reads it (the same LP, checked by tests; slower).

    `crash`: the first single-period solve starts from a basis built from its inputs
    (`highs.crash`) instead of the all-slack one.

    `cold_solver`: "ipm" solves the first LP by interior point + crossover (which leaves the
    basis the re-solves start from): pays where the limit cannot be met all day, not on an
    MPC whose limit never binds.

    `by_site` (single-period problems, `routes.sites.SiteSolver.why_not`): each call is first
    answered site by site without HiGHS, returned only if certified optimal (every site's KKT
    conditions, no grid limit broken); HiGHS answers the rest. `mend` (with `by_site`): a
    per-site answer that overloads branches or breaks an HV/MV threshold is mended where that
    can be certified (routes "mend" and "threshold"); off for the areas of `DecomposedEngine`,
    whose certificate needs every binding row's dual.

    `lazy_grid=True`: HiGHS holds the LP without its grid rows and gets a branch limit or
    voltage band only where an answer breaks it (`routes.lazy`; the answer is optimal for the
    whole LP). Pays where the grid is most of the LP and few of its rows bind (an LV network),
    not on a station-level network of a few buses. `None` decides by that: lazily where the
    grid has more buses than there are sites (`lazy_for`).

    `time_limit_s`: HiGHS's wall-time limit for each solve (`highs.limit`). The default is
    half of the default 15-min control period: a plan later than that is worth less than the
    sites' own fallback, and the slowest measured cold start (1,000 sites, interior point,
    ~221 s) fits in it. A solve that hits it raises `DispatchTimeLimit`, counted in
    `DispatchEngine.time_limit_hits`: never a silent partial answer.
    """

    threads: int = 1
    cop_rtol: float = 0.0
    presolve_first: bool = False
    builder: Literal["numpy", "pyomo"] = "numpy"
    crash: bool = True
    cold_solver: Literal["simplex", "ipm"] = "simplex"
    by_site: bool = False
    mend: bool = True
    lazy_grid: bool | None = None
    time_limit_s: float = DEFAULT_TIME_LIMIT_S

    def __post_init__(self) -> None:
        if self.builder not in ("numpy", "pyomo"):
            raise ValueError(f"builder must be 'numpy' or 'pyomo', not {self.builder!r}")
        if self.cold_solver not in ("simplex", "ipm"):
            raise ValueError(f"cold_solver must be 'simplex' or 'ipm', not {self.cold_solver!r}")
        if not 0.0 < self.time_limit_s < float("inf"):
            raise ValueError(f"time_limit_s must be a positive number of seconds, not {self.time_limit_s!r}")

    def lazy_for(self, problem: Problem) -> bool:
        """Whether HiGHS holds `problem`'s grid rows lazily (never on a meshed grid: `lazy.py` reads a tree)."""
        if problem.meshed:
            if self.lazy_grid:
                raise ValueError("lazy_grid=True needs a radial grid; a meshed problem holds its grid rows")
            return False
        return problem.grid.n_bus > problem.n_sites if self.lazy_grid is None else self.lazy_grid
