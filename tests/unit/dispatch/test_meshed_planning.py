"""The dispatch LP on a DC network (`DcGrid`): one period equals `solve_dc_opf` and `rundcopp`; routes refused."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from cloud_controller.dispatch import (
    LP,
    DecomposedEngine,
    DispatchEngine,
    EngineOptions,
    StepInputs,
    StorageState,
)
from cloud_controller.dispatch.model.meshed_case import problem_from_dc_network
from cloud_controller.grid import dc_network_from_pandapower, solve_dc_opf
from cloud_controller.grid.meshed import dc_power_flow
from cloud_controller.grid.meshed.planning import DcGrid, dc_grid
from protocols.errors import ConfigError
from tests.unit.grid.meshed.nets import case, loop_two_feeds, rundcopp, unit_p_mw

P_ABS_MW = 1e-4
NO_STORE = StorageState(np.zeros(0), np.zeros(0))


def _engine_answer(net: object) -> tuple[object, np.ndarray, np.ndarray, float]:
    """The dispatch engine's one-period answer: (schedule, p per network unit in MW, flows in MW, objective)."""
    network = dc_network_from_pandapower(net)
    problem, inputs = problem_from_dc_network(network)
    engine = DispatchEngine(problem)
    answer = engine.answer(inputs, NO_STORE)
    assert answer.route == LP
    s = answer.schedule
    grid = problem.grid
    assert isinstance(grid, DcGrid)
    p = np.zeros(network.n_unit)
    others = [g for g, name in enumerate(network.unit_names) if name != grid.root_name]
    p[others] = -s.p_unit_kw[0] / 1000.0
    p[network.unit_names.index(grid.root_name)] = s.p_root_kw[0] / 1000.0
    return s, p, s.branch_flow_kw[0] / 1000.0, float(s.objective)


def test_one_period_on_a_loop_with_two_feeds_equals_solve_dc_opf_and_rundcopp() -> None:
    net = loop_two_feeds()  # line 0 at 30 %: 1,039 kW, binding
    ours = solve_dc_opf(net)
    assert ours.engine == "meshed" and ours.binding == ("line:0",)
    s, p, flow_mw, objective = _engine_answer(net)
    np.testing.assert_allclose(p, ours.p_mw, atol=P_ABS_MW)
    np.testing.assert_allclose(flow_mw, ours.flow_mw, atol=P_ABS_MW)
    assert objective == pytest.approx(ours.objective_eur, rel=1e-4)
    theirs = copy.deepcopy(net)
    rundcopp(theirs)
    np.testing.assert_allclose(p, unit_p_mw(theirs, ours.unit_names), atol=P_ABS_MW)
    np.testing.assert_allclose(flow_mw, theirs.res_line.p_from_mw.to_numpy(), atol=P_ABS_MW)
    assert objective == pytest.approx(float(theirs.res_cost), rel=1e-4)
    assert flow_mw[0] == pytest.approx(1.039230, abs=1e-6)  # at its rating
    assert s.violations == []  # type: ignore[attr-defined]


def test_case9_with_linear_costs_and_a_binding_line_equals_rundcopp() -> None:
    net = case("case9")
    net.poly_cost["cp2_eur_per_mw2"] = 0.0
    free = solve_dc_opf(net)
    k = int(np.argmax(np.abs(free.flow_mw)))
    net.line.loc[k, "max_loading_percent"] *= 0.8 * abs(free.flow_mw[k]) / free.rating_mw[k]
    ours = solve_dc_opf(net)
    assert f"line:{k}" in ours.binding
    _, p, flow_mw, objective = _engine_answer(net)
    np.testing.assert_allclose(p, ours.p_mw, atol=P_ABS_MW)
    np.testing.assert_allclose(flow_mw, ours.flow_mw, atol=P_ABS_MW)
    assert objective == pytest.approx(ours.objective_eur, rel=1e-4)
    rundcopp(net)
    assert objective == pytest.approx(float(net.res_cost), rel=1e-4)
    np.testing.assert_allclose(p, unit_p_mw(net, ours.unit_names), atol=P_ABS_MW)


def test_a_quadratic_cost_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="gen:0 has a quadratic cost"):
        problem_from_dc_network(dc_network_from_pandapower(case("case9")))


def test_the_grids_dc_power_flow_equals_the_meshed_engines() -> None:
    network = dc_network_from_pandapower(case("case14"))
    grid = dc_grid(network)
    rng = np.random.default_rng(3)
    p = rng.uniform(0.0, 50.0, network.n_unit)
    refs = [g for g, name in enumerate(network.unit_names) if name.startswith("ext_grid:")]
    p[refs] = 0.0
    p[refs[0]] = network.fixed_load_mw.sum() - p.sum()  # the slack balances
    _, flow_mw = dc_power_flow(network, p)
    injection_kw = (np.bincount(network.unit_bus, p, network.n_bus) - network.fixed_load_mw) * 1000.0
    np.testing.assert_allclose(grid.dc_flows_kw(injection_kw), flow_mw * 1000.0, atol=1e-6)


def test_a_meshed_problem_takes_the_whole_lp_route_only() -> None:
    problem, inputs = problem_from_dc_network(dc_network_from_pandapower(loop_two_feeds()))
    assert problem.meshed
    with pytest.raises(ValueError, match="lazy_grid=True needs a radial grid"):
        DispatchEngine(problem, EngineOptions(lazy_grid=True))
    with pytest.raises(ValueError, match="numpy LP builder"):
        DispatchEngine(problem, EngineOptions(builder="pyomo"))
    with pytest.raises(ValueError, match="cannot decompose by area"):
        DecomposedEngine(problem)
    engine = DispatchEngine(problem, EngineOptions(by_site=True))  # no per-site route: HiGHS answers
    assert [type(r).__name__ for r in engine.routes] == ["WholeLpRoute"]
    assert engine.answer(inputs, NO_STORE).route == LP


def test_the_station_rows_count_every_feeding_point() -> None:
    problem, inputs = problem_from_dc_network(dc_network_from_pandapower(loop_two_feeds()))
    engine = DispatchEngine(problem)
    free = engine.solve(inputs, NO_STORE)
    total_kw = float(free.p_root_kw[0] - free.p_unit_kw[0, problem.feed_units].sum())
    assert total_kw == pytest.approx(4.8e3 - 1.0e3, abs=1e-3)  # six 0.8 MW loads less the 1 MW sgen
    capped = engine.solve(
        StepInputs(
            base_kw=inputs.base_kw, bus_fixed_kw=inputs.bus_fixed_kw, station_limit_kw=np.array([3.0e3])
        ),
        NO_STORE,
    )
    imported = float(capped.p_root_kw[0] - capped.p_unit_kw[0, problem.feed_units].sum())
    assert imported == pytest.approx(3.0e3 + capped.violations[0].amount, abs=1e-3)
    assert [v.kind for v in capped.violations] == ["station_load"]  # the load is fixed: 800 kW over
    assert capped.violations[0].amount == pytest.approx(800.0, abs=1e-3)


def test_each_island_keeps_its_own_angle_reference_and_balance() -> None:
    import pandapower as pp

    net = loop_two_feeds()
    a, b = pp.create_bus(net, vn_kv=20.0), pp.create_bus(net, vn_kv=20.0)  # a second island
    c = pp.create_ext_grid(net, a, va_degree=10.0, name="feed C")
    pp.create_poly_cost(net, c, "ext_grid", cp1_eur_per_mw=70.0)
    pp.create_line_from_parameters(
        net, a, b, length_km=1.0, r_ohm_per_km=0.2, x_ohm_per_km=0.35, c_nf_per_km=0.0, max_i_ka=0.1
    )
    pp.create_load(net, b, p_mw=0.5)
    network = dc_network_from_pandapower(net)
    assert network.n_island == 2
    problem, inputs = problem_from_dc_network(network)
    grid = problem.grid
    assert isinstance(grid, DcGrid) and len(grid.ref_bus) == 2
    s = DispatchEngine(problem).solve(inputs, NO_STORE)
    ours = solve_dc_opf(net)
    feed_c = [g for g, name in enumerate(network.unit_names) if name != grid.root_name].index(
        network.unit_names.index(f"ext_grid:{c}")
    )
    assert -s.p_unit_kw[0, feed_c] == pytest.approx(500.0, abs=1e-6)  # its island's load, alone
    assert s.v_pu[0, grid.ref_bus[1]] == pytest.approx(np.deg2rad(10.0))  # its own reference angle
    np.testing.assert_allclose(s.branch_flow_kw[0] / 1000.0, ours.flow_mw, atol=P_ABS_MW)
    np.testing.assert_allclose(np.rad2deg(s.v_pu[0]), ours.va_degree, atol=1e-4)
    assert s.objective == pytest.approx(ours.objective_eur, rel=1e-4)
