"""Per-area decomposition (`dispatch/decompose.py`): certified answers equal the full LP's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cloud_controller.dispatch import (
    DecomposedEngine,
    DispatchEngine,
    EngineOptions,
    Problem,
    PwlCost,
    Schedule,
    StepInputs,
    StorageState,
    Weights,
    build_problem,
)
from cloud_controller.dispatch.areas.areas import split_areas, subtree_matrix
from cloud_controller.grid.radial import RadialGrid
from tests.unit.dispatch.helpers import mixed_assets


def stations_grid(n_stations: int = 3, lv_buses: int = 4, *, station_kw: float = 400.0) -> RadialGrid:
    """Slack - HV/MV trafo - MV bus - n stations, each a trafo and a chain of LV buses."""
    parent = [0]
    child = [1]
    rating = [25_000.0]
    r_pu = [2e-7]
    names = ["trafo:hvmv"]
    bus = 2
    for s in range(n_stations):
        parent.append(1)
        child.append(bus)
        rating.append(station_kw)
        r_pu.append(3e-5)
        names.append(f"trafo:st{s}")
        top = bus
        bus += 1
        for j in range(lv_buses):
            parent.append(top if j == 0 else bus - 1)
            child.append(bus)
            rating.append(150.0)
            r_pu.append(2e-4)
            names.append(f"line:{s}.{j}")
            bus += 1
    return RadialGrid(
        bus_ids=np.arange(bus, dtype=np.int64),
        root=0,
        parent=np.asarray(parent, dtype=np.int64),
        child=np.asarray(child, dtype=np.int64),
        rating_kw=np.asarray(rating),
        r_pu_per_kw=np.asarray(r_pu),
        branch_names=tuple(names),
        v_root_pu=1.0,
        v_min_pu=np.full(bus, 0.9),
        v_max_pu=np.full(bus, 1.1),
    )


def _lv_buses(grid: RadialGrid) -> np.ndarray:
    names = grid.branch_names
    return np.asarray([int(grid.child[k]) for k, n in enumerate(names) if n.startswith("line:")])


def _problem(
    rng: np.random.Generator, *, n_sites: int = 36, horizon: int = 1, grid: RadialGrid | None = None
) -> Problem:
    g = grid or stations_grid()
    sites = rng.choice(_lv_buses(g), n_sites)
    return build_problem(g, sites, mixed_assets(n_sites), horizon=horizon)


def _inputs(rng: np.random.Generator, p: Problem, **extra: object) -> StepInputs:
    T = p.horizon
    pv = rng.uniform(0.0, 8.0, (T, p.n_sites))
    return StepInputs(
        base_kw=rng.uniform(0.2, 4.0, (T, p.n_sites)) - pv,
        pv_kw=pv,
        heat_kw=rng.uniform(0.0, 6.0, (T, p.n_hp)),
        cop=rng.uniform(2.5, 4.0, T),
        **extra,  # type: ignore[arg-type]
    )


def _state(rng: np.random.Generator, p: Problem) -> StorageState:
    return StorageState(rng.uniform(0.0, 10.0, p.n_bat), rng.uniform(0.0, 11.6, p.n_hp))


def test_areas_are_the_station_subtrees_and_cover_every_site_once() -> None:
    rng = np.random.default_rng(0)
    p = _problem(rng)
    areas = split_areas(p.grid, p.site_bus, max_sites=20)
    assert [p.grid.branch_names[a.top_branch] for a in areas] == ["trafo:st0", "trafo:st1", "trafo:st2"]
    for a in areas:
        assert a.path_buses.tolist() == [0, 1] and a.path_branches.tolist() == [0]
    sites = np.sort(np.concatenate([a.sites for a in areas]))
    assert sites.tolist() == list(range(p.n_sites))
    # a large max_sites keeps the whole region in one area below the slack
    (one,) = split_areas(p.grid, p.site_bus, max_sites=1000)
    assert one.top_branch == 0 and len(one.sites) == p.n_sites


def test_sites_on_a_shared_bus_keep_their_subtree_whole() -> None:
    g = stations_grid()
    sites = np.array([1, 3, 8, 13])  # one household on the MV bus itself
    (area,) = split_areas(g, sites, max_sites=1)
    assert area.top_branch == 0 and len(area.sites) == 4
    with pytest.raises(ValueError, match="slack"):
        split_areas(g, np.array([0, 3]))


def test_subtree_matrix_gives_the_radial_flows_and_voltages() -> None:
    g = stations_grid()
    rng = np.random.default_rng(1)
    loads = rng.uniform(-5, 5, (2, g.n_bus))
    d = subtree_matrix(g)
    np.testing.assert_allclose((d @ loads.T).T, g.branch_flows_kw(loads), atol=1e-12)


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("horizon", [1, 6])
@pytest.mark.parametrize("threads", [1, 2])
def test_certified_answer_equals_the_full_lp(horizon: int, threads: int, lazy: bool) -> None:
    rng = np.random.default_rng(10 + horizon)
    p = _problem(rng, horizon=horizon)
    full = DispatchEngine(p)
    dec = DecomposedEngine(p, EngineOptions(lazy_grid=lazy), max_sites=20, threads=threads)
    assert dec.n_areas == 3
    state = _state(rng, p)
    for _ in range(4):
        x = _inputs(rng, p)
        a = full.solve(x, state)
        b = dec.solve(x, state)
        assert dec.last_by_area
        assert b.objective == pytest.approx(a.objective, rel=1e-9, abs=1e-9)
        # the flows and voltages reported are the radial model's for the sites' exchange
        loads = b.p_site_kw @ (p.site_bus[:, None] == np.arange(p.grid.n_bus)[None, :])
        np.testing.assert_allclose(b.branch_flow_kw, p.grid.branch_flows_kw(loads), atol=1e-8)
        np.testing.assert_allclose(b.p_root_kw, loads.sum(axis=1), atol=1e-8)
        # storage and sites: one entry per asset of the full problem, within bounds
        assert b.e_bat_kwh.shape == a.e_bat_kwh.shape and b.q_ts_kw.shape == a.q_ts_kw.shape
        assert np.all(b.e_bat_kwh <= p.bat_e_max_kwh[None, :] + 1e-7)
        # both roll on from the same state: with ties between stores (thermal stores of
        # equal weight) two optimal plans may leave different states behind
        state = a.next_state()
    dec.close()
    assert dec.stats.certified_first + dec.stats.certified_second == 4 and dec.stats.full_lp == 0


def test_a_binding_hv_mv_threshold_goes_to_the_full_lp() -> None:
    rng = np.random.default_rng(3)
    p = _problem(rng)
    state = _state(rng, p)
    x = _inputs(rng, p)
    x.base_kw = np.abs(x.base_kw) + 2.0  # an evening: every site imports
    x.pv_kw = np.zeros_like(x.base_kw)
    free = DispatchEngine(p).solve(x, state)  # self-consumption alone: storage already discharges
    limit = float(free.p_root_kw[0]) - 5.0
    x.station_limit_kw = np.array([limit])  # binds: the stores must give 5 kW more
    full = DispatchEngine(p)
    dec = DecomposedEngine(p, max_sites=20, retry_after=1)
    a, b = full.solve(x, state), dec.solve(x, state)
    assert not dec.last_by_area and dec.stats.full_lp == 1
    assert dec.stats.failed_checks.get("hv/mv threshold", 0) >= 1
    assert b.objective == pytest.approx(a.objective, rel=1e-9)
    assert b.p_root_kw[0] <= limit + 1e-6 and not b.violations
    dec.solve(x, state)  # the next solve goes straight to the full LP ...
    assert dec.stats.full_lp_direct == 1
    x.station_limit_kw = None
    dec.solve(x, state)  # ... and the one after tries the areas again
    assert dec.last_by_area


def _full_lp_answers(
    p: Problem,
    x: StepInputs,
    state: StorageState,
    *,
    v_min: float | None = None,
    v_max: float | None = None,
    lazy: bool = True,
) -> tuple[Schedule, Schedule]:
    """With the band set to v_min/v_max everywhere: the areas must not answer, and the
    answer must be the full LP's. Returns (full LP, decomposed)."""
    g = p.grid
    grid = g
    if v_min is not None:
        grid = dataclasses.replace(grid, v_min_pu=np.full(g.n_bus, v_min))
    if v_max is not None:
        grid = dataclasses.replace(grid, v_max_pu=np.full(g.n_bus, v_max))
    tight = dataclasses.replace(p, grid=grid)
    a = DispatchEngine(tight).solve(x, state)
    dec = DecomposedEngine(tight, EngineOptions(lazy_grid=lazy), max_sites=20)
    b = dec.solve(x, state)
    assert not dec.last_by_area
    assert b.objective == pytest.approx(a.objective, rel=1e-9)
    return a, b


def test_a_binding_voltage_band_is_never_answered_by_area() -> None:
    """Every area's voltage depends on the others' flows through the HV/MV and MV path;
    where a band binds, only the full LP is exact."""
    rng = np.random.default_rng(4)
    g = stations_grid()
    p = _problem(rng, grid=g)
    x = _inputs(rng, p)
    x.base_kw = np.abs(x.base_kw) + 3.0
    x.pv_kw = np.zeros_like(x.base_kw)
    state = _state(rng, p)
    loose = DispatchEngine(p).solve(x, state)
    _full_lp_answers(p, x, state, v_min=float(loose.v_pu.min()) + 2e-4)


def test_problems_that_couple_through_the_slack_are_refused() -> None:
    rng = np.random.default_rng(5)
    p = _problem(rng)
    with pytest.raises(ValueError, match="slack"):
        DecomposedEngine(dataclasses.replace(p, root_cost=PwlCost((1.0,), (0.0,))))
    with pytest.raises(ValueError, match="slack"):
        DecomposedEngine(dataclasses.replace(p, root_p_max_kw=100.0))


@pytest.mark.parametrize("lazy", [False, True])
def test_a_voltage_band_binding_with_a_small_dual_is_not_taken_for_idle(lazy: bool) -> None:
    """Cheap curtailment makes a binding band's dual small (3e-3 per pu here); a tolerance
    scaled by the voltage penalty once let that through (found in review)."""
    rng = np.random.default_rng(0)
    g = stations_grid()
    p = build_problem(g, rng.choice(_lv_buses(g), 36), mixed_assets(36), weights=Weights(c_curtail=1e-5))
    full_stores = StorageState(p.bat_e_max_kwh.copy(), p.ts_e_max_kwh.copy())  # relief only by curtailing
    x = _inputs(rng, p)
    assert x.pv_kw is not None
    x.pv_kw = x.pv_kw + 6.0
    x.base_kw = x.base_kw - 6.0
    v_max = float(DispatchEngine(p).solve(x, full_stores).v_pu.max()) - 3e-4
    a, b = _full_lp_answers(p, x, full_stores, v_max=v_max, lazy=lazy)
    assert b.curtail_kw.sum() == pytest.approx(a.curtail_kw.sum(), rel=1e-7)


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("seed", [3, 4])
def test_a_breach_beyond_round_off_is_never_certified(seed: int, lazy: bool) -> None:
    """The band just inside the areas' answer: a breach of 1e-6 pu costs the full LP 0.1
    (the voltage penalty), so it redispatches; the areas' answer must not be returned."""
    rng = np.random.default_rng(seed)
    p = _problem(rng)
    state = _state(rng, p)
    x = _inputs(np.random.default_rng(seed + 100), p)
    v_low = float(DecomposedEngine(p, max_sites=20).solve(x, state).v_pu.min())
    _full_lp_answers(p, x, state, v_min=v_low + 0.9e-6, lazy=lazy)


def test_inputs_are_read_in_every_shape_the_engine_reads() -> None:
    rng = np.random.default_rng(6)
    p = _problem(rng, horizon=2)
    state = _state(rng, p)
    x = _inputs(rng, p)
    x.base_kw = x.base_kw[0]  # one row for both periods (broadcast)
    x.hp_cap_frac = np.full(p.n_hp, 0.5)  # per heat pump, every period
    x.c_import = np.array([1.0, 0.5])  # per period
    x.bat_w_discharge = np.tile(np.linspace(0.6, 0.8, p.n_bat), (2, 1))  # per battery and period
    a = DispatchEngine(p).solve(x, state)
    dec = DecomposedEngine(p, max_sites=20)
    b = dec.solve(x, state)
    assert dec.last_by_area
    assert b.objective == pytest.approx(a.objective, rel=1e-9, abs=1e-9)
    assert np.all(b.p_hp_kw <= 0.5 * p.hp_p_max_kw[None, :] + 1e-7)
    assert np.any(b.p_hp_kw >= 0.5 * p.hp_p_max_kw[None, :] - 1e-7)  # the cap is what limits them
