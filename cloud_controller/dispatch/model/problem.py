"""Data of a dispatch problem: static structure (built once) and per-step inputs (changed every call).

Sign convention: positive power = load/charging, negative = feed-in/discharging.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cloud_controller.grid.radial import RadialGrid
from protocols.errors import ConfigError

BIG = 1e6  # stand-in for an unenforced finite limit (a row bound the engine sets per call)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Weights:
    """Virtual cost parameters (per kWh) that encode the Schutterwald study's priorities, not money.

    Self-consumption: import costs `c_import`, export earns `-c_export` (0), stored energy is
    worth `bat_w_*` / `ts_w_*` per kWh stored. Battery before thermal store when charging
    needs bat_w_charge * eta_c > ts_w_charge * COP_max; thermal before battery when
    discharging needs c_import - ts_w_discharge * COP_max > c_import - bat_w_discharge / eta_d.
    `*_w_discharge >= *_w_charge` plus a small throughput cost on every kW discharged
    makes charging and discharging at once cost more than curtailing PV, so
    the LP never burns surplus through storage losses.
    Soft-limit penalties give the relaxation order (cheapest relaxed first): PV curtailment,
    HV/MV congestion threshold, branch thermal limit, voltage band, unmet heat, shed load.
    """

    c_import: float = 1.0
    c_export: float = 0.0
    bat_w_charge: float = 0.6
    bat_w_discharge: float = 0.6
    ts_w_charge: float = 0.05
    ts_w_discharge: float = 0.05
    c_throughput: float = 0.01
    c_curtail: float = 0.01
    pen_station: float = 50.0
    pen_branch: float = 1_000.0
    pen_voltage_per_pu: float = 100_000.0
    pen_heat_unmet: float = 5_000.0
    pen_shed: float = 10_000.0

    def check(self, cop_max: float = 6.0, eta_c: float = 0.95, eta_d: float = 0.95) -> None:
        """Raise ConfigError if the weights break the Schutterwald study priorities or allow cycling."""
        if self.bat_w_discharge < self.bat_w_charge or self.ts_w_discharge < self.ts_w_charge:
            raise ConfigError("discharge weight below charge weight lets storage cycle", key="weights")
        if self.bat_w_charge * eta_c <= self.ts_w_charge * cop_max:
            raise ConfigError("thermal store would charge before the battery", key="weights")
        if self.ts_w_discharge * cop_max >= self.bat_w_discharge / eta_d:
            raise ConfigError("battery would discharge before the thermal store", key="weights")


@dataclass(frozen=True)
class PwlCost:
    """Convex piecewise-linear cost of a unit's power: cost >= slope_k * p + offset_k (p in kW)."""

    slopes: tuple[float, ...]
    offsets: tuple[float, ...]

    @staticmethod
    def from_points(points: list[tuple[float, float, float]], *, kw_per_unit: float = 1.0) -> PwlCost:
        """From pandapower-style segments [(p0, p1, slope)] with p in units of kw_per_unit kW.

        As in pandapower, the cost is slope_0 * p on the first segment and continuous after.
        """
        segs = sorted(points, key=lambda s: s[0])
        slopes: list[float] = []
        offsets: list[float] = []
        x0 = segs[0][0] * kw_per_unit
        f_x = segs[0][2] / kw_per_unit * x0
        for p0, p1, c in segs:
            a = c / kw_per_unit
            if slopes and a < slopes[-1] - 1e-12:
                raise ConfigError("non-convex piecewise-linear cost", key="pwl")
            x_k = p0 * kw_per_unit
            slopes.append(a)
            offsets.append(f_x - a * x_k)
            f_x = f_x + a * (p1 * kw_per_unit - x_k)
        return PwlCost(tuple(slopes), tuple(offsets))


@dataclass(frozen=True)
class Problem:
    """Static part of a dispatch problem, built once per scenario.

    Sites sit on buses; batteries and heat pumps (with optional thermal store) sit at sites.
    `units` are generic controllable injections at buses with a convex pwl cost (used to
    mirror pandapower OPF cases); their power is load-positive and `unit_sign` maps it to
    the sign the cost is written in (+1 load, -1 generation).
    """

    grid: RadialGrid
    site_bus: IntArray
    horizon: int = 1
    dt_h: float = 0.25
    bat_site: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    bat_e_max_kwh: FloatArray = field(default_factory=lambda: np.zeros(0))
    bat_e_min_kwh: FloatArray = field(default_factory=lambda: np.zeros(0))
    bat_p_max_kw: FloatArray = field(default_factory=lambda: np.zeros(0))
    bat_eta_c: float = 0.95
    bat_eta_d: float = 0.95
    hp_site: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    hp_p_max_kw: FloatArray = field(default_factory=lambda: np.zeros(0))
    ts_e_max_kwh: FloatArray = field(default_factory=lambda: np.zeros(0))  # 0 = no thermal store
    ts_loss_per_step: float = 0.0
    unit_bus: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    unit_p_min_kw: FloatArray = field(default_factory=lambda: np.zeros(0))
    unit_p_max_kw: FloatArray = field(default_factory=lambda: np.zeros(0))
    unit_sign: FloatArray = field(default_factory=lambda: np.zeros(0))
    unit_cost: tuple[PwlCost, ...] = ()
    root_p_min_kw: float = -np.inf
    root_p_max_kw: float = np.inf
    root_cost: PwlCost | None = None
    enforce_voltage: bool = True
    enforce_branches: bool = True
    weights: Weights = field(default_factory=Weights)
    # Sites whose PV can be curtailed (None: every site). Sites without PV get no
    # curtailment column: in the study that is half the sites, and every column costs
    # HiGHS time on every one of 35,040 re-solves.
    site_pv: npt.NDArray[np.bool_] | None = None

    @property
    def pv_sites(self) -> IntArray:
        """Sites with a curtailment variable."""
        if self.site_pv is None:
            return np.arange(self.n_sites, dtype=np.int64)
        return np.flatnonzero(self.site_pv).astype(np.int64)

    @property
    def has_shed(self) -> bool:
        """Whether load shedding (the last relaxation) exists: only where it can be needed.

        That is when the slack bus's own power is bounded. Otherwise import is unbounded and
        never infeasible.
        """
        return bool(np.isfinite(self.root_p_min_kw) or np.isfinite(self.root_p_max_kw))

    @property
    def n_sites(self) -> int:
        """Number of sites."""
        return len(self.site_bus)

    @property
    def n_bat(self) -> int:
        """Number of batteries."""
        return len(self.bat_site)

    @property
    def n_hp(self) -> int:
        """Number of heat pumps."""
        return len(self.hp_site)

    @property
    def n_units(self) -> int:
        """Number of dispatchable units (each at its bus, with power bounds and a piecewise-linear cost)."""
        return len(self.unit_bus)


@dataclass(frozen=True)
class BatterySteps:
    """Per-period battery bounds, (T, n_bat) each, that tighten the per-battery limits.

    Why per period: a site's connection limit leaves the battery a different charge headroom
    in every period (import max minus the forecast load), and a load above the limit needs
    a discharge in just those periods (cloud_controller/live/site_limits.py). The caller
    keeps them feasible: `dis_min_kw <= dis_max_kw`, energy floors reachable from the state.
    """

    ch_max_kw: FloatArray
    dis_min_kw: FloatArray
    dis_max_kw: FloatArray
    e_min_kwh: FloatArray

    def take(self, bats: IntArray) -> BatterySteps:
        """The same bounds for a subset of the batteries (an area's)."""
        return BatterySteps(
            self.ch_max_kw[:, bats],
            self.dis_min_kw[:, bats],
            self.dis_max_kw[:, bats],
            self.e_min_kwh[:, bats],
        )


@dataclass
class StepInputs:
    """What changes every call; arrays are (T, n). Missing optional arrays take defaults."""

    base_kw: FloatArray  # (T, n_sites) household + EV load minus PV, load positive
    pv_kw: FloatArray | None = None  # (T, n_sites) PV available for curtailment (>= 0)
    heat_kw: FloatArray | None = None  # (T, n_hp) thermal demand
    cop: FloatArray | None = None  # (T,) heat-pump COP
    bus_fixed_kw: FloatArray | None = None  # (T, n_bus) non-site loads
    c_import: FloatArray | None = None  # (T,) or (T, n_sites)
    bat_w_discharge: FloatArray | None = None  # (T,) or (T, n_bat)
    ts_w_discharge: FloatArray | None = None  # (T,) or (T, n_hp)
    hp_cap_frac: FloatArray | None = None  # (T, n_hp) HP electric cap as a fraction (CurB)
    station_limit_kw: FloatArray | None = None  # (T,) HV/MV load threshold, inf = off
    station_feed_limit_kw: FloatArray | None = None  # (T,) feed-in threshold (positive number)
    unit_p_min_kw: FloatArray | None = None
    unit_p_max_kw: FloatArray | None = None
    #: (T, n_branch) or (n_branch,) branch ratings for this call (kW; inf = unlimited in that
    #: interval), e.g. a DSO's operating envelope; None = the grid's fixed `rating_kw`. Only
    #: branches the LP limits (finite `rating_kw`, `enforce_branches`) may get a finite value.
    branch_rating_kw: FloatArray | None = None


def branch_rating(problem: Problem, x: StepInputs) -> FloatArray | None:
    """The call's (T, K) branch ratings, checked; None when the call keeps the grid's fixed ones.

    Why checked here, once: every route reads them (the LP's row bounds, the lazy rows, the
    per-site certificate, the subtree and area LPs), and a rating on a branch the LP has no
    row for would be ignored by some routes and honoured by others.
    """
    if x.branch_rating_kw is None:
        return None
    g = problem.grid
    T, K = problem.horizon, g.n_branch
    raw = np.asarray(x.branch_rating_kw, dtype=float)
    try:
        rating = np.broadcast_to(raw, (T, K))
    except ValueError:
        raise ValueError(f"branch_rating_kw has shape {raw.shape}, the problem has ({T}, {K})") from None
    if np.isnan(rating).any() or (rating < 0).any():
        raise ValueError("branch_rating_kw holds a NaN or a negative rating")
    limited = np.isfinite(g.rating_kw) & problem.enforce_branches
    loose = ~limited[None, :] & np.isfinite(rating)
    if loose.any():
        k = int(np.flatnonzero(loose.any(axis=0))[0])
        raise ValueError(
            f"branch_rating_kw rates branch {g.branch_names[k]}, which the LP does not limit "
            "(no finite rating_kw in the grid, or enforce_branches off)"
        )
    return rating


@dataclass
class StorageState:
    """Energy in each store at the start of the step."""

    e_bat_kwh: FloatArray
    e_ts_kwh: FloatArray
