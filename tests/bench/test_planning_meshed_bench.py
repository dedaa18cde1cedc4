"""Plan time radial vs meshed (`pytest -m bench -s tests/bench/test_planning_meshed_bench.py`).

The same synthetic 20 kV feeder (a binary tree of `N_BUS` buses, `N_SITES` households, half
with a 5 kW / 10 kWh battery, one line limit that binds at the peak) planned over a 48-step
horizon as the live planner does (presolve + interior point cold, then warm dual simplex):

- radial: the tree on the radial engine (LinDistFlow rows, the whole-LP route, as the
  planner's `DispatchEngine` without `by_area`) — the anchor, measured in the same run;
- meshed: the same tree with `N_LOOPS` extra lines closing loops and a second ext_grid at
  its far end, on the DC network (`DcGrid`: B-theta rows, both feeds as import columns).

Per variant: LP size, the cold first plan, and the median warm re-plan (ms and simplex
pivots) over `STEPS` rolling periods (new forecasts every period, the storage carried on). Prints figures and the ratio
meshed / radial; a loose sanity bound only (no timing assertion beyond "it finished").
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any

import numpy as np
import pytest

from cloud_controller.dispatch import DispatchEngine, EngineOptions, SiteAssets, StepInputs, StorageState
from cloud_controller.grid.meshed import dc_network_from_pandapower
from cloud_controller.grid.meshed.planning import meshed_region
from cloud_controller.grid.radial import radial_from_pandapower
from cloud_controller.live.planning_network import planning_network, planning_problem

pytestmark = pytest.mark.bench

N_BUS = 120
N_SITES = 240
N_LOOPS = 4
HORIZON = 48
STEPS = 20


def _feeder(*, meshed: bool) -> Any:
    import pandapower as pp

    net = pp.create_empty_network(sn_mva=1.0)
    buses = [pp.create_bus(net, vn_kv=20.0) for _ in range(N_BUS)]
    pp.create_ext_grid(net, buses[0])
    ends = [(i, (i - 1) // 2) for i in range(1, N_BUS)]
    if meshed:
        leaves = list(range(N_BUS // 2, N_BUS))
        ends += [(leaves[2 * j], leaves[-(2 * j + 1)]) for j in range(N_LOOPS)]
        pp.create_ext_grid(net, buses[N_BUS - 1])
        pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=40.0)
        pp.create_poly_cost(net, 1, "ext_grid", cp1_eur_per_mw=55.0)
    for k, (a, b) in enumerate(ends):
        pp.create_line_from_parameters(
            net,
            buses[b],
            buses[a],
            length_km=0.5 + 0.01 * k,
            r_ohm_per_km=0.2,
            x_ohm_per_km=0.35,
            c_nf_per_km=0.0,
            max_i_ka=0.1,
            max_loading_percent=4.33 if k == 1 else 100.0,  # line 1 (bus 0 - bus 2): 150 kW
        )
    for s in range(N_SITES):
        pp.create_load(net, buses[1 + s % (N_BUS - 1)], p_mw=0.0, name=f"h{s}")
    return net


def _assets() -> SiteAssets:
    bat = (np.arange(N_SITES) % 2 == 0).astype(float)
    return SiteAssets(10.0 * bat, 5.0 * bat, np.zeros(N_SITES), np.zeros(N_SITES))


def _problem(*, meshed: bool) -> Any:
    net = _feeder(meshed=meshed)
    if meshed:
        region = meshed_region(net)
        pn = planning_network(region, range(N_SITES), [f"h{s}" for s in range(N_SITES)])
        return planning_problem(pn, _assets(), horizon=HORIZON, dt_h=0.25, bat_soc_min=0.05)
    from cloud_controller.dispatch import build_problem

    grid = radial_from_pandapower(net)
    site_bus = np.asarray([grid.index_of(int(b)) for b in net.load.bus], dtype=np.int64)
    return build_problem(
        grid, site_bus, _assets(), horizon=HORIZON, dt_h=0.25, bat_soc_min=0.05, enforce_voltage=False
    )


def _base_kw(rng: np.random.Generator, t0: int) -> np.ndarray:
    hours = (t0 + np.arange(HORIZON)) * 0.25
    evening = 0.6 + 1.4 * np.exp(-(((hours % 24) - 18.5) ** 2) / 4.0)
    return np.asarray(evening[:, None] * rng.uniform(0.5, 1.5, (HORIZON, N_SITES)), dtype=float)


def _run(meshed: bool) -> tuple[int, int, float, float, int, float]:
    problem = _problem(meshed=meshed)
    engine = DispatchEngine(problem, EngineOptions(presolve_first=True, cold_solver="ipm"))
    rng = np.random.default_rng(7)
    state = StorageState(problem.bat_e_max_kwh * 0.5, np.zeros(0))
    t0 = time.perf_counter()
    s = engine.solve(StepInputs(base_kw=_base_kw(rng, 64)), state)
    cold_ms = 1e3 * (time.perf_counter() - t0)
    warm = []
    pivots = []
    binding = 0
    for step in range(1, STEPS + 1):
        state = s.next_state()
        x = StepInputs(base_kw=_base_kw(rng, 64 + step))
        t0 = time.perf_counter()
        s = engine.solve(x, state)
        warm.append(time.perf_counter() - t0)
        pivots.append(engine.h.getInfo().simplex_iteration_count)
        k = problem.grid.branch_names.index("line:1")
        binding += int(np.isclose(np.abs(s.branch_flow_kw[:, k]), problem.grid.rating_kw[k], atol=1e-6).any())
    return (
        engine.n_rows,
        engine.n_cols,
        cold_ms,
        1e3 * statistics.median(warm),
        binding,
        statistics.median(pivots),
    )


def test_plan_time_radial_vs_meshed() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _feeder(meshed=True)  # warm imports
        dc_network_from_pandapower(_feeder(meshed=True))
        radial = _run(meshed=False)
        meshed = _run(meshed=True)
    print()
    print(
        f"{N_BUS} buses, {N_SITES} sites ({N_SITES // 2} batteries), horizon {HORIZON}, {STEPS} warm re-plans"
    )
    print(
        f"{'variant':8s} {'rows':>7s} {'cols':>7s} {'cold ms':>9s} {'warm ms':>9s} {'pivots':>7s} {'binding':>8s}"
    )
    for name, (rows, cols, cold, warm, binding, piv) in (("radial", radial), ("meshed", meshed)):
        print(f"{name:8s} {rows:7d} {cols:7d} {cold:9.1f} {warm:9.1f} {piv:7.0f} {binding:>5d}/{STEPS}")
    print(f"meshed / radial: cold {meshed[2] / radial[2]:.2f}x, warm {meshed[3] / radial[3]:.2f}x")
    assert meshed[4] > 0 and radial[4] > 0  # the line limit binds in some plans of both
