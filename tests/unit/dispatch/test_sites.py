"""Per-site answers without HiGHS (`dispatch/sites.py`): certified ones equal the LP's optimum."""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest

from cloud_controller.dispatch import (
    DispatchEngine,
    EngineOptions,
    Problem,
    PwlCost,
    Schedule,
    StepInputs,
    StorageState,
    build_problem,
)
from cloud_controller.dispatch.routes.sites import SiteSolver
from tests.unit.dispatch.helpers import mixed_assets
from tests.unit.dispatch.test_decompose import _inputs, _problem, _state, stations_grid


def _pair(p: Problem) -> tuple[DispatchEngine, DispatchEngine]:
    return DispatchEngine(p), DispatchEngine(p, EngineOptions(by_site=True))


def _same_optimum(a: Schedule, b: Schedule) -> None:
    assert b.objective == pytest.approx(a.objective, rel=1e-9, abs=1e-9)


def _varied(rng: np.random.Generator, p: Problem, k: int) -> tuple[StepInputs, StorageState]:
    """Steps that reach every regime: storage empty/full, unmet heat, no heat, other
    discharge costs, capped heat pumps, cheap import per site, a COP of 1 or 6."""
    x, st = _inputs(rng, p), _state(rng, p)
    if k == 0:
        st = StorageState(
            np.where(rng.random(p.n_bat) < 0.5, 0.0, 10.0), np.where(rng.random(p.n_hp) < 0.5, 0.0, 11.6)
        )
    elif k == 1:
        x = dataclasses.replace(x, heat_kw=np.asarray(x.heat_kw) * 5.0)
    elif k == 2:
        x = dataclasses.replace(x, heat_kw=np.zeros((1, p.n_hp)), base_kw=np.asarray(x.base_kw) - 3.0)
    elif k == 3:
        x = dataclasses.replace(
            x,
            bat_w_discharge=np.array([rng.choice([0.6, 1.5])]),
            ts_w_discharge=np.array([rng.choice([0.05, 0.3])]),
        )
    elif k == 4:
        x = dataclasses.replace(x, hp_cap_frac=rng.choice([0.0, 0.3, 1.0], (1, p.n_hp)))
    elif k == 5:
        x = dataclasses.replace(x, c_import=rng.uniform(0.05, 1.0, (1, p.n_sites)))
    elif k == 6:
        x = dataclasses.replace(x, cop=np.array([rng.choice([1.0, 6.0])]))
    return x, st


def test_without_binding_grid_limits_every_step_is_answered_by_site_and_optimal() -> None:
    rng = np.random.default_rng(2)
    p = _problem(rng, n_sites=60, grid=stations_grid(3, 4, station_kw=4000.0))
    lp, fast = _pair(p)
    for i in range(140):
        x, st = _varied(rng, p, i % 7)
        _same_optimum(lp.solve(x, st), fast.solve(x, st))
    assert fast.sites is not None
    assert (fast.sites.certified, fast.sites.declined) == (140, 0)


def test_certified_answers_meet_every_row_and_bound_and_never_cycle_storage() -> None:
    rng = np.random.default_rng(3)
    p = _problem(rng, n_sites=40, grid=stations_grid(2, 4, station_kw=4000.0))
    fast = DispatchEngine(p, EngineOptions(by_site=True))
    assert fast.sites is not None
    dt = p.dt_h
    hs = np.flatnonzero(p.ts_e_max_kwh > 0)
    for i in range(70):
        x, st = _varied(rng, p, i % 7)
        s = fast.solve(x, st)
        assert fast.sites.certified == i + 1
        pv = np.asarray(x.pv_kw)[0]
        cap = p.hp_p_max_kw * (1.0 if x.hp_cap_frac is None else np.asarray(x.hp_cap_frac)[0])
        cop = float(np.asarray(x.cop)[0])
        heat = np.asarray(x.heat_kw)[0]
        # site balance: exchange = base + curtailment + battery + heat pump
        site = np.asarray(x.base_kw)[0] + s.curtail_kw[0]
        np.add.at(site, p.bat_site, s.p_bat_kw[0])
        np.add.at(site, p.hp_site, s.p_hp_kw[0])
        np.testing.assert_allclose(s.p_site_kw[0], site, atol=1e-9)
        # storage balances and windows
        e_next = st.e_bat_kwh + dt * (p.bat_eta_c * s.p_bat_ch_kw[0] - s.p_bat_dis_kw[0] / p.bat_eta_d)
        np.testing.assert_allclose(s.e_bat_kwh[0], e_next, atol=1e-9)
        assert np.all(s.p_bat_ch_kw[0] * s.p_bat_dis_kw[0] == 0.0)
        assert np.all((s.e_bat_kwh >= -1e-9) & (s.e_bat_kwh <= 10.0 + 1e-9))
        np.testing.assert_allclose(s.e_ts_kwh[0, hs], st.e_ts_kwh[hs] + dt * s.q_ts_kw[0, hs], atol=1e-9)
        assert np.all((s.e_ts_kwh[0] >= -1e-9) & (s.e_ts_kwh[0] <= p.ts_e_max_kwh + 1e-9))
        # heat balance: heat pump + store + unmet = demand
        unmet = np.zeros(p.n_hp)
        for v in s.violations:
            assert v.kind == "heat_unmet"
            unmet[int(v.element.split(":")[1])] = v.amount
        np.testing.assert_allclose(cop * s.p_hp_kw[0] - s.q_ts_kw[0] + unmet, heat, atol=1e-6)
        assert np.all((s.p_hp_kw[0] >= 0.0) & (s.p_hp_kw[0] <= cap + 1e-9))
        assert np.all((s.curtail_kw[0] >= 0.0) & (s.curtail_kw[0] <= np.maximum(pv, 0.0) + 1e-9))


def test_unmet_heat_is_reported_as_the_lp_reports_it() -> None:
    rng = np.random.default_rng(4)
    p = _problem(rng, n_sites=24, grid=stations_grid(2, 3, station_kw=4000.0))
    lp, fast = _pair(p)
    x = dataclasses.replace(_inputs(rng, p), heat_kw=np.full((1, p.n_hp), 40.0))
    st = StorageState(np.zeros(p.n_bat), np.zeros(p.n_hp))
    a, b = lp.solve(x, st), fast.solve(x, st)
    _same_optimum(a, b)
    assert fast.sites is not None and fast.sites.certified == 1
    got = {v.element: v.amount for v in b.violations}
    want = {v.element: v.amount for v in a.violations if v.kind == "heat_unmet"}
    assert got.keys() == want.keys() and len(got) == p.n_hp
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9)


@pytest.mark.parametrize("limit", ["station_load", "station_feed", "branch", "voltage"])
def test_a_binding_grid_limit_goes_to_highs(limit: str) -> None:
    rng = np.random.default_rng(5)
    grid = stations_grid(3, 4, station_kw=4000.0)
    if limit == "branch":
        grid = dataclasses.replace(
            grid, rating_kw=np.where(np.arange(grid.n_branch) == 1, 5.0, grid.rating_kw)
        )
    if limit == "voltage":
        grid = dataclasses.replace(grid, r_pu_per_kw=grid.r_pu_per_kw * 300.0)
    p = _problem(rng, n_sites=36, grid=grid)
    lp, fast = _pair(p)
    x, st = _inputs(rng, p), _state(rng, p)
    free = lp.solve(x, st)
    if limit == "station_load":
        x = dataclasses.replace(x, station_limit_kw=np.array([free.p_root_kw[0] - 20.0]))
    if limit == "station_feed":
        x = dataclasses.replace(x, base_kw=np.asarray(x.base_kw) - 10.0)
        free = lp.solve(x, st)
        x = dataclasses.replace(x, station_feed_limit_kw=np.array([-free.p_root_kw[0] - 20.0]))
    a, b = lp.solve(x, st), fast.solve(x, st)
    _same_optimum(a, b)
    assert fast.sites is not None
    assert (fast.sites.certified, fast.sites.declined) == (0, 1)


def test_weights_that_would_let_a_battery_cycle_go_to_highs() -> None:
    rng = np.random.default_rng(6)
    p = _problem(rng, n_sites=24, grid=stations_grid(2, 3, station_kw=4000.0))
    lp, fast = _pair(p)
    x = dataclasses.replace(_inputs(rng, p), bat_w_discharge=np.array([0.2]))
    st = _state(rng, p)
    _same_optimum(lp.solve(x, st), fast.solve(x, st))
    assert fast.sites is not None and fast.sites.declined == 1


def test_battery_limits_set_later_are_the_ones_the_sites_use() -> None:
    rng = np.random.default_rng(7)
    p = _problem(rng, n_sites=30, grid=stations_grid(2, 4, station_kw=4000.0))
    lp, fast = _pair(p)
    for i in range(20):
        p_max = rng.uniform(0.0, 5.0, p.n_bat)
        e_min = rng.uniform(0.0, 3.0, p.n_bat)
        e_max = e_min + rng.uniform(1.0, 7.0, p.n_bat)
        for e in (lp, fast):
            e.set_battery_limits(p_max, e_min, e_max)
        x = _inputs(rng, p)
        st = StorageState(rng.uniform(e_min, e_max), _state(rng, p).e_ts_kwh)
        a, b = lp.solve(x, st), fast.solve(x, st)
        _same_optimum(a, b)
        assert np.all(b.p_bat_ch_kw[0] <= p_max + 1e-9) and np.all(b.e_bat_kwh[0] <= e_max + 1e-9)
        assert fast.sites is not None and fast.sites.certified == i + 1


def test_a_state_outside_its_window_goes_to_highs() -> None:
    rng = np.random.default_rng(8)
    p = _problem(rng, n_sites=20, grid=stations_grid(2, 3, station_kw=4000.0))
    lp, fast = _pair(p)
    for e in (lp, fast):
        e.set_battery_limits(np.full(p.n_bat, 5.0), np.full(p.n_bat, 2.0), np.full(p.n_bat, 8.0))
    x = _inputs(rng, p)
    st = StorageState(np.full(p.n_bat, 9.0), _state(rng, p).e_ts_kwh)
    _same_optimum(lp.solve(x, st), fast.solve(x, st))
    assert fast.sites is not None and fast.sites.declined == 1


def test_problems_the_sites_cannot_answer_are_named() -> None:
    g = stations_grid(2, 3)
    sites = np.array([3, 4, 5, 8])
    assert SiteSolver.why_not(build_problem(g, sites, mixed_assets(4), horizon=4)) is not None
    two = dataclasses.replace(build_problem(g, sites, mixed_assets(4)), bat_site=np.array([0, 0]))
    assert two.n_bat == 2 and SiteSolver.why_not(two) is not None
    units = dataclasses.replace(
        build_problem(g, sites, mixed_assets(4)),
        unit_bus=np.array([3]),
        unit_p_min_kw=np.array([0.0]),
        unit_p_max_kw=np.array([10.0]),
        unit_sign=np.array([1.0]),
        unit_cost=(PwlCost((1.0,), (0.0,)),),
    )
    assert SiteSolver.why_not(units) is not None
    assert DispatchEngine(units, EngineOptions(by_site=True)).sites is None
    assert SiteSolver.why_not(build_problem(g, sites, mixed_assets(4))) is None


@pytest.mark.parametrize("rigged", ["batteries idle", "heat pumps off"])
def test_the_check_rejects_a_wrong_answer_and_highs_answers_instead(
    monkeypatch: pytest.MonkeyPatch, rigged: str
) -> None:
    """The certificate, not the construction, decides: with the market rigged to leave every
    battery idle or every heat pump off (wrong wherever one should run), no step is taken
    site by site."""
    rng = np.random.default_rng(9)
    p = _problem(rng, n_sites=30, grid=stations_grid(2, 4, station_kw=4000.0))
    lp, fast = _pair(p)
    true_market = SiteSolver._market_same

    def rig(self: SiteSolver, *args: object) -> tuple[np.ndarray, ...] | None:
        got = true_market(self, *args)  # type: ignore[arg-type]
        if got is None:
            return None
        lam, bl, bh, cl, ch, hl, hh = got
        zero = np.zeros_like(lam)
        if rigged == "batteries idle":
            return (lam, zero, zero, cl, ch, hl, hh)
        return (lam, bl, bh, cl, ch, zero, zero)

    monkeypatch.setattr(SiteSolver, "_market_same", rig)
    for _ in range(10):
        x, st = _inputs(rng, p), _state(rng, p)
        a, b = lp.solve(x, st), fast.solve(x, st)
        _same_optimum(a, b)
        assert np.abs(a.p_bat_kw).max() > 0.1 and a.p_hp_kw.max() > 0.1  # both act at the optimum
    assert fast.sites is not None
    assert (fast.sites.certified, fast.sites.declined_by_site) == (0, 10)


def test_highs_gets_the_lp_only_when_a_period_needs_it_with_the_limits_set_before() -> None:
    rng = np.random.default_rng(10)
    p = _problem(rng, n_sites=24, grid=stations_grid(2, 3, station_kw=4000.0))
    lp, fast = _pair(p)
    x, st = _inputs(rng, p), _state(rng, p)
    _same_optimum(lp.solve(x, st), fast.solve(x, st))
    assert not fast.lp_built  # answered site by site: no LP was built
    limits = (np.full(p.n_bat, 2.0), np.full(p.n_bat, 1.0), np.full(p.n_bat, 9.0))
    for e in (lp, fast):
        e.set_battery_limits(*limits)
    st = StorageState(np.clip(st.e_bat_kwh, 1.0, 9.0), st.e_ts_kwh)
    free = lp.solve(x, st)
    # a binding threshold with import prices of each site's own: neither the sites nor the
    # threshold's price can answer, HiGHS does
    own_prices = rng.uniform(0.5, 1.0, (1, p.n_sites))
    x = dataclasses.replace(x, station_limit_kw=np.array([free.p_root_kw[0] - 10.0]), c_import=own_prices)
    a, b = lp.solve(x, st), fast.solve(x, st)
    assert fast.lp_built  # HiGHS answered, with the limits set above
    _same_optimum(a, b)
    assert np.all(b.p_bat_ch_kw <= 2.0 + 1e-9) and np.all(b.p_bat_dis_kw <= 2.0 + 1e-9)


@pytest.mark.parametrize(
    "field", ["base_kw", "heat_kw", "hp_cap_frac", "bat_w_discharge", "bus_fixed_kw", "state"]
)
def test_a_nan_input_is_never_certified(field: str) -> None:
    rng = np.random.default_rng(11)
    p = _problem(rng, n_sites=12, grid=stations_grid(1, 3, station_kw=4000.0))
    fast = DispatchEngine(p, EngineOptions(by_site=True))
    assert fast.sites is not None
    x, st = _inputs(rng, p), _state(rng, p)
    shapes = {"hp_cap_frac": (1, p.n_hp), "bat_w_discharge": (1,), "bus_fixed_kw": (1, p.grid.n_bus)}
    if field == "state":
        e = st.e_bat_kwh.copy()
        e[0] = np.nan
        st = StorageState(e, st.e_ts_kwh)
    else:
        value = np.asarray(getattr(x, field), float).copy() if field in ("base_kw", "heat_kw") else None
        if value is None:
            value = np.ones(shapes[field]) * (0.6 if field == "bat_w_discharge" else 1.0)
            if field == "bus_fixed_kw":
                value[:] = 0.0
        value.reshape(-1)[-1] = np.nan
        x = dataclasses.replace(x, **{field: value})
    with contextlib.suppress(Exception):  # what HiGHS makes of a NaN is not the point here
        fast.solve(x, st)
    assert fast.sites.certified == 0


def test_a_problem_without_sites_is_left_to_highs() -> None:
    g = stations_grid(1, 2)
    p = build_problem(g, np.zeros(0, dtype=np.int64), mixed_assets(0))
    assert SiteSolver.why_not(p) == "no sites"
    assert DispatchEngine(p, EngineOptions(by_site=True)).sites is None


@pytest.mark.parametrize("side", ["load", "feed-in"])
def test_a_binding_hv_mv_threshold_is_priced_into_every_site(side: str) -> None:
    """With the HV/MV threshold binding, its dual is a price on every site's exchange: the
    fleet cleared at that price meets the threshold exactly, at the LP's optimum."""
    rng = np.random.default_rng(12)
    p = _problem(rng, n_sites=60, grid=stations_grid(3, 4, station_kw=4000.0))
    lp, fast = _pair(p)
    for i in range(40):
        x, st = _varied(rng, p, i % 7)
        if i % 7 == 5:  # prices of each site's own: left to HiGHS
            continue
        if side == "load":
            free = lp.solve(x, st).p_root_kw[0]
            limit = free - rng.uniform(1.0, 40.0)
            x = dataclasses.replace(x, station_limit_kw=np.array([limit]))
        else:
            x = dataclasses.replace(x, base_kw=np.asarray(x.base_kw) - 6.0)
            free = lp.solve(x, st).p_root_kw[0]
            limit = -free - rng.uniform(1.0, 40.0)
            x = dataclasses.replace(x, station_feed_limit_kw=np.array([limit]))
        priced = fast.priced
        a, b = lp.solve(x, st), fast.solve(x, st)
        _same_optimum(a, b)
        if fast.priced > priced:
            bound = limit if side == "load" else -limit
            assert b.p_root_kw[0] == pytest.approx(bound, abs=1e-6)
    assert fast.sites is not None and fast.priced >= 30
