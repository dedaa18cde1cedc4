"""The full probabilistic congestion forecast: every transformer, every line, every bus, every interval.

Seed 002 (the FlexiGrid guide for DSOs, its probabilistic congestion forecasting): a power-flow
based forecast that accounts for the uncertainty of loads and PV, and shows per element the
cumulative probability of three indicators — node voltage deviation, branch overload and
transformer load. Each scenario draws every fleet site's net load per interval from its
forecast (median + σ × a standard normal, independent between sites and intervals; the
draws of interval t depend only on the seed and t, so both methods see the same scenarios).

Two methods, one answer shape:

* `"fast"` (default): one power-grid-model AC batch of the T interval medians, then the
  linear scenario model of `sensitivity.py` for every scenario (100 x 96 on the 319-household
  region: ~0.2 s instead of ~2-4 s); `ac_intervals` re-runs the intervals nearest a decision
  (P(exceed) most uncertain) through the full AC batch and takes its numbers there;
* `"ac"`: the reference, every scenario x interval through the AC batch.

On a meshed or multi-feed region (`grid.meshed.planning.meshed_region`: a loop, several
ext_grids) there is no tree for the linear model's sweeps, so every scenario goes through the
AC batch whatever `options.method` says (power-grid-model solves loops and several sources;
the net's sgens, storages and shunts are held at their values); the result's `method` says
which ran ("ac"). Same answer shape, same limits in force.

The error of the fast method against the AC batch is tested (tests/unit/forecast/) and printed
by `gridflex bench congestion`. Pure computation on arrays: no store, no clock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cloud_controller.forecast.ac_batch import ElementPowerFlow
from cloud_controller.forecast.indicators import BlockStats
from cloud_controller.forecast.result import ForecastOptions, ProbabilisticForecast, build_alerts
from cloud_controller.forecast.sensitivity import BaseCase, TreeModel
from cloud_controller.grid import Region
from cloud_controller.grid.meshed.planning import DcGrid

__all__ = ["ForecastOptions", "ProbabilisticCongestion", "ProbabilisticForecast"]

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
#: Scenario-interval columns per block: bounds memory (~12 MB per indicator block on the region).
#: Small enough that the blocks after the first reuse the first's freed memory: a first call
#: at 9,600 columns paid ~0.15 s of page faults on fresh ~25 MB arrays that warm calls do not.
BLOCK_COLUMNS = 2400
#: Standard normals kept between calls (float32 values: 64 MB).
DRAW_CACHE_VALUES = 16_000_000


@dataclass
class _Fleet:
    """What one call forecasts: site medians and spreads, and the loads of everyone else."""

    p50_kw: FloatArray  # (T, n_sites)
    sigma_kw: FloatArray  # (T, n_sites)
    background_kw: FloatArray  # (T, n_loads)
    hvmv_limit_kw: float | None = None
    totals: list[F32] = field(default_factory=list)
    #: (K, T) each branch's loading limit in % per interval (the limits in force: net, override, envelope)
    branch_limit_pct: FloatArray | None = None
    #: (n_bus,) each bus's band (pu), else the options' one band
    v_lo_pu: FloatArray | None = None
    v_hi_pu: FloatArray | None = None


class ProbabilisticCongestion:
    """Built once per region and fleet (PGM model, tree, sensitivities' structure); run every period."""

    def __init__(self, region: Region, site_households: list[int]) -> None:
        self.region = region
        self.households = np.asarray(site_households, dtype=np.int64)
        if self.households.size and (self.households.min() < 0 or self.households.max() >= region.n_sites):
            raise ValueError(f"site households must be in 0..{region.n_sites - 1}")
        self.pf = ElementPowerFlow(region.net, region.grid, region.site_load_idx)
        #: the radial tree of the fast method; None on a meshed / multi-feed region (AC batch only)
        self.tree: TreeModel | None = (
            None
            if isinstance(region.grid, DcGrid)
            else TreeModel(region.net, region.grid, region.site_bus[self.households])
        )
        self._lock = threading.Lock()  # one PGM model: one calculation at a time
        self._z: dict[tuple[int, int, int], F32] = {}
        self._z_values = 0
        self._base_failed = 0
        net, grid = region.net, region.grid
        self._branch_el = np.asarray(
            [k for k, kd in enumerate(self.pf.branch_kind) if kd in ("line", "trafo")], dtype=np.int64
        )
        #: each reported branch's loading limit (%): the net's max_loading_percent, else 100
        self._limit_pct = self.pf.branch_limit_pct[self._branch_el]
        self._all_branches = len(self._branch_el) == grid.n_branch
        ids, names, kinds = [], [], []
        for k in self._branch_el:
            table, idx = grid.branch_names[k].split(":")
            tbl = net.trafo if table == "trafo" else net.line
            raw = tbl.name.at[int(idx)] if "name" in tbl.columns else None
            ids.append(grid.branch_names[k])
            names.append(str(raw) if raw is not None and str(raw) not in ("", "nan", "None") else ids[-1])
            kinds.append("transformer" if table == "trafo" else "line")
        for b in grid.bus_ids:
            raw = net.bus.name.at[int(b)] if "name" in net.bus.columns else None
            ids.append(f"bus:{int(b)}")
            names.append(str(raw) if raw is not None and str(raw) not in ("", "nan", "None") else ids[-1])
            kinds.append("bus")
        self._ids, self._names, self._kinds = ids, names, kinds
        # site -> load column (several sites on one household add up)
        self._to_loads = np.zeros((len(self.households), self.pf.n_loads))
        self._to_loads[np.arange(len(self.households)), self.households] = 1.0

    def prepare(self, n_intervals: int, options: ForecastOptions | None = None) -> float:
        """Make the first real forecast as fast as the later ones; returns the seconds it took.

        Draws and caches the standard normals of `n_intervals` intervals for `options`' seed
        and scenario count, and runs one forecast of an empty fleet so power-grid-model's
        first calculation and the blocks' memory are paid here (the planner's build), not by
        the first period's forecast.
        """
        opt = options or ForecastOptions()
        if n_intervals < 1:
            raise ValueError("n_intervals must be >= 1")
        t0 = time.perf_counter()
        zeros = np.zeros((n_intervals, self.n_sites))
        with self._lock:
            self._draws(opt, np.arange(n_intervals, dtype=np.int64))
        self.forecast(zeros, zeros, opt)
        return time.perf_counter() - t0

    @property
    def branch_refs(self) -> tuple[str, ...]:
        """The transformers and lines the forecast reports, as `<table>:<index>`, in its order."""
        return tuple(self._ids[: len(self._branch_el)])

    @property
    def bus_refs(self) -> tuple[str, ...]:
        """The buses the forecast reports, as `bus:<index>`, in its order."""
        return tuple(self._ids[len(self._branch_el) :])

    def method_for(self, options: ForecastOptions | None = None) -> str:
        """The method a forecast with `options` runs: "ac" on a meshed region (no tree), else the options'."""
        opt = options or ForecastOptions()
        return "ac" if self.tree is None else opt.method

    @property
    def n_sites(self) -> int:
        """Fleet sites the forecast takes medians and spreads of."""
        return len(self.households)

    def forecast(
        self,
        p50_kw: npt.ArrayLike,
        sigma_kw: npt.ArrayLike,
        options: ForecastOptions | None = None,
        *,
        background_kw: npt.ArrayLike | None = None,
        hvmv_limit_kw: float | None = None,
        branch_limit_pct: npt.ArrayLike | None = None,
        bus_band_pu: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    ) -> ProbabilisticForecast:
        """The forecast over T intervals of per-site medians and standard deviations (T, n_sites), kW.

        `background_kw` (T, households) is the load of the region's households outside the fleet
        (median, no spread; default 0: the controller knows only its sites). `hvmv_limit_kw`: the
        planner's limit on the fleet's load plus that background (the planner gives it where station
        meters measure it), reported as an extra element "fleet_limit".
        `branch_limit_pct` (T, branches in `branch_refs` order): each branch's limit in % of its
        nominal loading per interval — the limits in force (grid/limits.py: the net's, the
        config's overrides, a DSO's envelopes); default the net's `max_loading_percent`.
        `bus_band_pu` (low, high), each per bus in `bus_refs` order; default the options' band.
        An element's reported limit (`limit_hi`) is the tightest over the horizon; P(exceed) is
        judged against the limit of each interval.
        """
        opt = options or ForecastOptions()
        p50 = np.atleast_2d(np.asarray(p50_kw, dtype=float))
        sigma = np.broadcast_to(np.maximum(np.asarray(sigma_kw, dtype=float), 0.0), p50.shape).copy()
        T, n = p50.shape
        if n != self.n_sites:
            raise ValueError(f"forecast for {n} sites, the fleet has {self.n_sites}")
        if not (np.all(np.isfinite(p50)) and np.all(np.isfinite(sigma))):
            raise ValueError("p50_kw and sigma_kw must be finite")
        bg = np.zeros((T, self.pf.n_loads)) if background_kw is None else np.asarray(background_kw, float)
        if bg.shape != (T, self.pf.n_loads):
            raise ValueError(f"background_kw must have shape ({T}, {self.pf.n_loads}), got {bg.shape}")
        if hvmv_limit_kw is not None and not hvmv_limit_kw > 0:
            raise ValueError("hvmv_limit_kw must be > 0")
        fleet = _Fleet(p50, sigma, bg, hvmv_limit_kw)
        n_b = len(self._branch_el)
        if branch_limit_pct is not None:
            lim = np.asarray(branch_limit_pct, dtype=float)
            if lim.shape != (T, n_b) or np.any(np.isnan(lim)) or np.any(lim <= 0):
                raise ValueError(f"branch_limit_pct must be ({T}, {n_b}) and > 0, got {lim.shape}")
            fleet.branch_limit_pct = np.ascontiguousarray(lim.T)
        if bus_band_pu is not None:
            lo = np.asarray(bus_band_pu[0], dtype=float)
            hi = np.asarray(bus_band_pu[1], dtype=float)
            n_v = self.region.grid.n_bus
            if lo.shape != (n_v,) or hi.shape != (n_v,) or not np.all((lo > 0) & (lo < hi)):
                raise ValueError(f"bus_band_pu must be two ({n_v},) arrays with 0 < low < high")
            fleet.v_lo_pu, fleet.v_hi_pu = lo, hi
        with self._lock:
            t0 = time.perf_counter()
            load_st, volt_st, failed, checked = self._run(fleet, opt)
            return self._assemble(fleet, opt, load_st, volt_st, failed, checked, time.perf_counter() - t0)

    def scenario_values(
        self,
        p50_kw: npt.ArrayLike,
        sigma_kw: npt.ArrayLike,
        intervals: npt.ArrayLike,
        options: ForecastOptions | None = None,
    ) -> tuple[F32, F32]:
        """Every scenario's branch loading (% , (K, Tb, S)) and bus voltage (pu, (N, Tb, S)) at `intervals`.

        The raw values behind the statistics, for comparing the two methods scenario by
        scenario (the same draws: they depend on the seed and the interval only).
        """
        opt = options or ForecastOptions()
        p50 = np.atleast_2d(np.asarray(p50_kw, dtype=float))
        sigma = np.broadcast_to(np.maximum(np.asarray(sigma_kw, dtype=float), 0.0), p50.shape).copy()
        t_idx = np.asarray(intervals, dtype=np.int64)
        fleet = _Fleet(p50, sigma, np.zeros((p50.shape[0], self.pf.n_loads)))
        with self._lock:
            z = self._draws(opt, t_idx)
            if self.tree is None or opt.method == "ac":
                draws = p50[t_idx].T[:, :, None] + sigma[t_idx].T[:, :, None] * z
                loads = np.einsum("nts,nl->tsl", draws, self._to_loads)
                res = self.pf.run_elements(loads.reshape(len(t_idx) * opt.n_scenarios, -1), threading=0)
                tb, s = len(t_idx), opt.n_scenarios
                loading = res.branch_loading.T.reshape(-1, tb, s)[self._branch_el].astype(np.float32)
                return loading * np.float32(100.0), res.vm_pu.T.reshape(-1, tb, s).astype(np.float32)
            base = self._base(self.tree, fleet)
            dp = z * (sigma[t_idx].T / 1e3).astype(np.float32)[:, :, None]
            loading, vm = self.tree.scenarios(base, t_idx, dp, _mw(p50, t_idx))
            return loading[self._branch_el] * np.float32(100.0), vm

    # -- computation -------------------------------------------------------------------

    def _base(self, tree: TreeModel, fleet: _Fleet) -> BaseCase:
        """The AC base case of the interval medians and the sensitivities around it."""
        res = self.pf.run_elements(fleet.background_kw + fleet.p50_kw @ self._to_loads)
        self._base_failed = len(res.failed_steps)
        return tree.base_case(
            np.nan_to_num(res.branch_loading),
            np.nan_to_num(res.p_rec_mw),
            np.nan_to_num(res.q_rec_mvar),
            np.nan_to_num(res.vm_pu, nan=1.0),
            fleet.sigma_kw / 1e3,
        )

    def _draws(self, opt: ForecastOptions, t_idx: IntArray) -> F32:
        """Standard normals (n_sites, Tb, S): interval t's depend only on (seed, t).

        Kept between calls (common random numbers: the next period's forecast moves because
        the medians and spreads moved, not because the dice did), up to DRAW_CACHE_VALUES.
        """
        z = np.empty((self.n_sites, len(t_idx), opt.n_scenarios), dtype=np.float32)
        for j, t in enumerate(t_idx):
            key = (opt.seed, int(t), opt.n_scenarios)
            cached = self._z.get(key)
            if cached is None:
                rng = np.random.default_rng([opt.seed, int(t)])
                cached = rng.standard_normal((self.n_sites, opt.n_scenarios), dtype=np.float32)
                if self._z_values + cached.size <= DRAW_CACHE_VALUES:
                    self._z[key] = cached
                    self._z_values += cached.size
            z[:, j, :] = cached
        return z

    def _blocks(self, T: int, S: int) -> list[IntArray]:
        per = max(1, BLOCK_COLUMNS // S)
        return [np.arange(a, min(a + per, T), dtype=np.int64) for a in range(0, T, per)]

    def _run(
        self, fleet: _Fleet, opt: ForecastOptions
    ) -> tuple[BlockStats, BlockStats, int, tuple[int, ...]]:
        T = fleet.p50_kw.shape[0]
        S = opt.n_scenarios
        load_st = BlockStats.empty(len(self._branch_el), T, S)
        volt_st = BlockStats.empty(self.region.grid.n_bus, T, S)
        failed = 0
        tree = self.tree
        if tree is None or opt.method == "ac":
            for t_idx in self._blocks(T, S):
                failed += self._ac_block(fleet, opt, t_idx, load_st, volt_st)
            return load_st, volt_st, failed, ()
        base = self._base(tree, fleet)
        failed += self._base_failed
        for t_idx in self._blocks(T, S):
            z = self._draws(opt, t_idx)
            dp = z * (fleet.sigma_kw[t_idx].T / 1e3).astype(np.float32)[:, :, None]
            loading, vm = tree.scenarios(base, t_idx, dp, _mw(fleet.p50_kw, t_idx))
            if not self._all_branches:
                loading = loading[self._branch_el]
            self._add(fleet, opt, t_idx, loading, vm, load_st, volt_st)
            self._fleet_total(fleet, t_idx, z)
        checked: tuple[int, ...] = ()
        if opt.ac_intervals:
            checked = _uncertain_intervals(load_st.p_exceed, volt_st.p_exceed, opt.ac_intervals)
            if checked:
                # their statistics are replaced; the horizon-worst (CDF) is the max of both methods
                idx = np.asarray(checked, dtype=np.int64)
                failed += self._ac_block(fleet, opt, idx, load_st, volt_st, totals=False)
        return load_st, volt_st, failed, checked

    def _ac_block(
        self,
        fleet: _Fleet,
        opt: ForecastOptions,
        t_idx: IntArray,
        load_st: BlockStats,
        volt_st: BlockStats,
        *,
        totals: bool = True,
    ) -> int:
        S = opt.n_scenarios
        z = self._draws(opt, t_idx)  # (n, Tb, S)
        draws = fleet.p50_kw[t_idx].T[:, :, None] + fleet.sigma_kw[t_idx].T[:, :, None] * z
        loads = np.einsum("nts,nl->tsl", draws, self._to_loads) + fleet.background_kw[t_idx][:, None, :]
        res = self.pf.run_elements(loads.reshape(len(t_idx) * S, -1), threading=0)
        tb = len(t_idx)
        loading = res.branch_loading.T.reshape(-1, tb, S)[self._branch_el].astype(np.float32)
        vm = res.vm_pu.T.reshape(-1, tb, S).astype(np.float32)
        if totals:
            self._fleet_total(fleet, t_idx, z)
        self._add(fleet, opt, t_idx, loading, vm, load_st, volt_st)
        return len(res.failed_steps)

    def _add(
        self,
        fleet: _Fleet,
        opt: ForecastOptions,
        t_idx: IntArray,
        loading: F32,
        vm: F32,
        load_st: BlockStats,
        volt_st: BlockStats,
    ) -> None:
        """Both indicators' statistics of one block (the blocks are consumed: sorted in place)."""
        lo: float | F32 = opt.v_band_pu[0] if fleet.v_lo_pu is None else _per_row(fleet.v_lo_pu)
        hi: float | F32 = opt.v_band_pu[1] if fleet.v_hi_pu is None else _per_row(fleet.v_hi_pu)
        if fleet.branch_limit_pct is None:
            limit = self._limit_pct.astype(np.float32)[:, None, None] / 100.0
        else:
            limit = fleet.branch_limit_pct[:, t_idx].astype(np.float32)[:, :, None] / np.float32(100.0)
        n_over = np.count_nonzero(loading > limit, axis=-1)
        loading *= np.float32(100.0)
        load_st.add(t_idx, loading, n_over, loading.max(axis=1))
        n_out = np.count_nonzero(vm < lo, axis=-1) + np.count_nonzero(vm > hi, axis=-1)
        worst = np.maximum(vm.max(axis=1) - np.float32(1.0), np.float32(1.0) - vm.min(axis=1))
        volt_st.add(t_idx, vm, n_out, worst)

    def _fleet_total(self, fleet: _Fleet, t_idx: IntArray, z: F32) -> None:
        if fleet.hvmv_limit_kw is None:
            return
        sig = fleet.sigma_kw[t_idx].T.astype(np.float32)[:, :, None]
        # the planner's threshold is of the fleet plus the load it knows outside the fleet
        known = fleet.p50_kw[t_idx].sum(axis=1) + fleet.background_kw[t_idx].sum(axis=1)
        total = known.astype(np.float32)[:, None] + (sig * z).sum(axis=0)
        fleet.totals.append(total)

    # -- answer --------------------------------------------------------------------------

    def _assemble(
        self,
        fleet: _Fleet,
        opt: ForecastOptions,
        load_st: BlockStats,
        volt_st: BlockStats,
        failed: int,
        checked: tuple[int, ...],
        compute_s: float,
    ) -> ProbabilisticForecast:
        lo, hi = opt.v_band_pu
        n_b = len(self._branch_el)
        n_v = self.region.grid.n_bus
        ids, names, kinds = list(self._ids), list(self._names), list(self._kinds)
        bus_lo = np.full(n_v, lo) if fleet.v_lo_pu is None else fleet.v_lo_pu
        bus_hi = np.full(n_v, hi) if fleet.v_hi_pu is None else fleet.v_hi_pu
        branch_hi = (
            self._limit_pct
            if fleet.branch_limit_pct is None
            else fleet.branch_limit_pct.min(axis=1).astype(float)
        )
        limit_lo = np.concatenate([np.full(n_b, -np.inf), bus_lo])
        limit_hi = np.concatenate([branch_hi, bus_hi])
        expected = np.concatenate([load_st.expected, volt_st.expected])
        quant = np.concatenate([load_st.quantiles, volt_st.quantiles], axis=1)
        p_exc = np.concatenate([load_st.p_exceed, volt_st.p_exceed])
        cdf = np.concatenate([load_st.cdf(), volt_st.cdf()])
        if fleet.hvmv_limit_kw is not None and fleet.totals:
            st = BlockStats.empty(1, fleet.p50_kw.shape[0], opt.n_scenarios)
            pct = np.float32(100.0 / fleet.hvmv_limit_kw) * np.concatenate(fleet.totals)[None]
            st.add(
                np.arange(pct.shape[1], dtype=np.int64),
                pct,
                np.count_nonzero(pct > 100.0, axis=-1),
                pct.max(axis=1),
            )
            ids.append("fleet_limit")
            names.append(f"fleet load vs {fleet.hvmv_limit_kw:g} kW")
            kinds.append("fleet_limit")
            limit_lo = np.append(limit_lo, -np.inf)
            limit_hi = np.append(limit_hi, 100.0)
            expected = np.concatenate([expected, st.expected])
            quant = np.concatenate([quant, st.quantiles], axis=1)
            p_exc = np.concatenate([p_exc, st.p_exceed])
            cdf = np.concatenate([cdf, st.cdf()])
        alerts = build_alerts(ids, kinds, expected, quant, p_exc, limit_hi, opt)
        return ProbabilisticForecast(
            method=self.method_for(opt),
            n_scenarios=opt.n_scenarios,
            elements=tuple(ids),
            names=tuple(names),
            kinds=tuple(kinds),
            limit_lo=limit_lo,
            limit_hi=limit_hi,
            expected=expected,
            quantiles=quant,
            p_exceed=p_exc,
            cdf=cdf,
            alerts=tuple(alerts),
            options=opt,
            compute_s=compute_s,
            ac_checked=checked,
            failed_steps=failed,
        )


def _per_row(v: FloatArray) -> F32:
    """A per-bus value as float32 (n, 1, 1): broadcast against a block's (n, Tb, S) voltages."""
    return v.astype(np.float32)[:, None, None]


def _mw(p_kw: FloatArray, t_idx: IntArray) -> F32:
    """Rows `t_idx` of a (T, n) kW array as (n, Tb) MW float32."""
    return (p_kw[t_idx].T / 1e3).astype(np.float32)


def _uncertain_intervals(p_load: FloatArray, p_volt: FloatArray, n: int) -> tuple[int, ...]:
    """The `n` intervals where some element's P(exceed) is most uncertain (nearest 0.5, never 0 or 1)."""
    p = np.concatenate([p_load, p_volt])
    score = np.nanmax(np.where((p > 0) & (p < 1), p * (1 - p), 0.0), axis=0)
    order = np.argsort(-score, kind="stable")
    return tuple(sorted(int(t) for t in order[:n] if score[t] > 0))
