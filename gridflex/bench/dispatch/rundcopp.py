"""The engine against pandapower's DC OPF (`pp.rundcopp`) on the same steps of the Schutterwald region."""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from cloud_controller.dispatch import (
    KW_PER_MW,
    DispatchEngine,
    EngineOptions,
    FloatArray,
    StepInputs,
    StorageState,
    problem_from_pandapower,
)
from gridflex.bench.dispatch.fleet import BAT_P_KW
from gridflex.bench.dispatch.results import RundcoppComparison
from gridflex.bench.dispatch.step import ms

N_RUNDCOPP_BATTERIES = 40


# -- engine vs rundcopp -----------------------------------------------------------------------


def _rundcopp_net(region: Any, rng: np.random.Generator) -> tuple[Any, list[int], int]:
    """The case of test_vs_rundcopp.py plus battery-like loads; returns (net, fixed-load ids, trafo).

    Batteries are controllable loads with a symmetric range: in a single-period DC OPF that is
    all a battery is (its SOC only bounds the range), and pandapower's storage element is
    not mirrored by `problem_from_pandapower`.
    """
    import pandapower as pp

    net = copy.deepcopy(region.net)
    fixed_ids = [int(i) for i in net.load.index]
    under_77 = [int(b) for b, st in zip(net.load.bus, region.site_station, strict=True) if st == "T_idx_77"]
    net.load["p_mw"] = rng.uniform(0.0005, 0.004, len(net.load))
    net.load["controllable"] = False
    net.line["max_loading_percent"] = 100.0
    net.trafo["max_loading_percent"] = 100.0
    st = int(net.trafo.index[net.trafo.name == "T_idx_77"][0])
    buses = net.load.bus.to_numpy()
    for i, bus in enumerate(rng.choice(buses, 25, replace=False)):
        s = pp.create_sgen(net, int(bus), p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=0.008)
        pp.create_pwl_cost(net, s, "sgen", [[0, 1, -1.0 - 0.013 * i]])
    flex = list(rng.choice(buses, 10, replace=False)) + list(rng.choice(under_77, 6, replace=False))
    for i, bus in enumerate(flex):
        ld = pp.create_load(net, int(bus), p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=0.011)
        pp.create_pwl_cost(net, ld, "load", [[0, 1, -1.0 - 0.017 * i]])
    # 40 households get a 10 kW battery; stored energy is worth 0.6..0.8 against an import
    # price of 0.7, so about half charge and half discharge at full power unless a limit binds
    for i, bus in enumerate(rng.choice(buses, N_RUNDCOPP_BATTERIES, replace=False)):
        b = pp.create_load(
            net, int(bus), p_mw=0.0, controllable=True, min_p_mw=-BAT_P_KW / 1e3, max_p_mw=BAT_P_KW / 1e3
        )
        pp.create_pwl_cost(net, b, "load", [[-1, 1, -0.6 - 0.2 * i / (N_RUNDCOPP_BATTERIES - 1)]])
    eg = int(net.ext_grid.index[0])
    pp.create_pwl_cost(net, eg, "ext_grid", [[-100, 100, 0.7]])
    pp.rundcopp(net)
    load_77 = -float(net.res_trafo.p_lv_mw.at[st])
    limit_mw = load_77 - 0.5 * 6 * 0.011
    net.trafo.loc[st, "max_loading_percent"] = 100 * limit_mw / float(net.trafo.sn_mva.at[st])
    return net, fixed_ids, st


def compare_with_rundcopp(
    steps: int, seed: int = 0, progress: Callable[[str], None] | None = None
) -> RundcoppComparison:
    """Engine (built once, warm re-solves) vs `pp.rundcopp` on `steps` consecutive steps.

    Household loads follow a shared daily shape with per-household noise, so consecutive
    steps differ the way a rolling horizon sees them. The engine gets each step's fixed loads
    as `bus_fixed_kw`; pandapower gets them in `net.load.p_mw`.
    """
    import pandapower as pp

    from cloud_controller.grid import build_schutterwald_region

    rng = np.random.default_rng(seed)
    region = build_schutterwald_region()
    net, fixed_ids, st = _rundcopp_net(region, rng)
    base_mw = net.load.loc[fixed_ids, "p_mw"].to_numpy(dtype=float).copy()
    problem, inputs = problem_from_pandapower(net)
    bus_of = np.asarray([problem.grid.index_of(int(b)) for b in net.load.loc[fixed_ids, "bus"]], np.int64)

    def bus_kw(p_mw: FloatArray) -> FloatArray:
        return np.bincount(bus_of, p_mw * KW_PER_MW, problem.grid.n_bus).astype(float)

    if inputs.bus_fixed_kw is None or not np.allclose(inputs.bus_fixed_kw[0], bus_kw(base_mw)):
        raise AssertionError("fixed loads are not the only non-unit injections")  # the mirror changed
    no_storage = StorageState(np.zeros(0), np.zeros(0))
    tb = time.perf_counter()
    engine = DispatchEngine(problem, EngineOptions(lazy_grid=False))  # the whole LP, as rundcopp solves it
    build_ms = ms(time.perf_counter() - tb)
    eng_t: list[float] = []
    pp_t: list[float] = []
    diffs: list[float] = []
    rels: list[float] = []
    binding = failures = 0
    limit = float(net.trafo.max_loading_percent.at[st])
    for k in range(steps):
        shape = 1.0 + 0.15 * math.sin(2 * math.pi * k / 96.0)
        p_mw = base_mw * shape * rng.uniform(0.9, 1.1, len(base_mw))
        net.load.loc[fixed_ids, "p_mw"] = p_mw
        fixed_kw = bus_kw(p_mw)[None, :]
        ta = time.perf_counter()
        res = engine.solve(StepInputs(base_kw=np.zeros((1, 0)), bus_fixed_kw=fixed_kw), no_storage)
        eng_t.append(time.perf_counter() - ta)
        ta = time.perf_counter()
        try:
            pp.rundcopp(net)
            ok = bool(net.OPF_converged)
        except Exception:  # pandapower raises OPFNotConverged; its hard limits may be infeasible
            ok = False
        pp_t.append(time.perf_counter() - ta)
        if not ok:
            failures += 1
            continue
        theirs = float(net.res_cost)
        diffs.append(abs(res.objective - theirs))
        rels.append(abs(res.objective - theirs) / max(1e-9, abs(theirs)))
        if float(net.res_trafo.loading_percent.at[st]) >= limit * (1 - 1e-4):
            binding += 1
        if progress is not None:
            progress(f"engine vs rundcopp: step {k + 1}/{steps}")
    warm = eng_t[1:] or eng_t
    pp_rest = pp_t[1:] or pp_t
    warm_ms = ms(statistics.median(warm))
    pp_ms = ms(statistics.median(pp_rest))
    return RundcoppComparison(
        n_sites=region.n_sites,
        n_bus=problem.grid.n_bus,
        steps=steps,
        engine_build_ms=build_ms,
        engine_first_ms=ms(eng_t[0]),
        engine_warm_ms=warm_ms,
        engine_warm_max_ms=ms(max(warm)),
        rundcopp_ms=pp_ms,
        rundcopp_first_ms=ms(pp_t[0]),
        ratio=pp_ms / warm_ms if warm_ms > 0 else math.inf,
        max_abs_obj_diff=max(diffs) if diffs else math.nan,
        max_rel_obj_diff=max(rels) if rels else math.nan,
        station_limit_binding_steps=binding,
        rundcopp_failures=failures,
    )
