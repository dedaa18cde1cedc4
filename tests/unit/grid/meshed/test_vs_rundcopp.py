"""The meshed DC-OPF against pandapower's `rundcopp` on its MATPOWER cases and on mv_oberrhein."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from cloud_controller.grid import DcOpfOptions, solve_dc_opf
from tests.unit.grid.meshed.nets import DEFAULT_CASES, SLOW, case, oberrhein_with_costs, rundcopp, unit_p_mw

OBJ_REL = 1e-4  # objective: relative to rundcopp's res_cost
P_ABS_MW = 1e-4  # every unit's injection: absolute, in MW
VA_ABS_DEG = 1e-4

# MATPOWER's own DC OPF objectives (matpower 8 `rundcopf`), as pandapower reproduces them
MATPOWER_DC_OBJECTIVE = {"case9": 5216.03, "case14": 7642.59}


@pytest.fixture(scope="module", params=DEFAULT_CASES)
def solved_case(request: pytest.FixtureRequest) -> tuple[str, object, object]:
    net = case(request.param)
    ours = solve_dc_opf(net)
    rundcopp(net)
    return request.param, net, ours


def test_objective_equals_rundcopp_on_each_matpower_case(solved_case) -> None:
    name, net, ours = solved_case
    assert ours.engine == "meshed"
    assert ours.objective_eur == pytest.approx(float(net.res_cost), rel=OBJ_REL)
    if name in MATPOWER_DC_OBJECTIVE:
        assert ours.objective_eur == pytest.approx(MATPOWER_DC_OBJECTIVE[name], abs=0.01)


def test_every_generator_dispatch_equals_rundcopp_on_each_matpower_case(solved_case) -> None:
    _, net, ours = solved_case
    theirs = unit_p_mw(net, ours.unit_names)
    assert len(ours.unit_names) == len(net.gen) + len(net.ext_grid)
    np.testing.assert_allclose(ours.p_mw, theirs, atol=P_ABS_MW, rtol=0)


def test_bus_angles_and_prices_equal_rundcopp_on_each_matpower_case(solved_case) -> None:
    _, net, ours = solved_case
    ids = ours.bus_ids.astype(int)
    np.testing.assert_allclose(ours.va_degree, net.res_bus.va_degree.to_numpy()[ids], atol=VA_ABS_DEG)
    np.testing.assert_allclose(ours.lmp_eur_per_mw, net.res_bus.lam_p.to_numpy()[ids], rtol=1e-6, atol=1e-6)


def test_branch_flows_equal_rundcopp_on_each_matpower_case(solved_case) -> None:
    _, net, ours = solved_case
    theirs = [
        float(net[f"res_{t}"].at[int(i), "p_from_mw" if t == "line" else "p_hv_mw"])
        for t, i in (n.split(":") for n in ours.branch_names)
    ]
    np.testing.assert_allclose(ours.flow_mw, theirs, atol=1e-4)


@SLOW
def test_whole_mv_oberrhein_with_documented_costs_equals_rundcopp() -> None:
    net = oberrhein_with_costs()
    ours = solve_dc_opf(net)
    rundcopp(net)
    assert ours.engine == "meshed" and "2 feeding points" in ours.reason
    assert ours.objective_eur == pytest.approx(float(net.res_cost), rel=OBJ_REL)
    assert len(ours.unit_names) == 2 + len(net.sgen)
    np.testing.assert_allclose(ours.p_mw, unit_p_mw(net, ours.unit_names), atol=P_ABS_MW)
    # the optimum is interior for some sgens: the comparison is not just "every sgen at its maximum"
    sg = np.asarray([n.startswith("sgen") for n in ours.unit_names])
    inner = (ours.p_mw[sg] > 1e-3) & (ours.p_mw[sg] < net.sgen.max_p_mw.to_numpy() - 1e-3)
    assert inner.sum() >= 10


@SLOW
def test_mv_oberrhein_closed_into_one_mesh_with_two_ext_grids_equals_rundcopp() -> None:
    net = oberrhein_with_costs(close_all_switches=True)
    ours = solve_dc_opf(net)
    rundcopp(net)
    assert ours.engine == "meshed"
    assert ours.objective_eur == pytest.approx(float(net.res_cost), rel=OBJ_REL)
    np.testing.assert_allclose(ours.p_mw, unit_p_mw(net, ours.unit_names), atol=P_ABS_MW)
    eg = [ours.p_of(f"ext_grid:{i}") for i in net.ext_grid.index]
    np.testing.assert_allclose(eg, net.res_ext_grid.p_mw.to_numpy(), atol=P_ABS_MW)


def test_a_second_ext_grid_in_one_island_is_a_unit_with_a_free_angle_as_in_rundcopp() -> None:
    import pandapower as pp

    net = case("case9")
    # the third generator becomes a second feeding point held at -2 degrees
    g = int(net.gen.index[1])
    bus = int(net.gen.bus.at[g])
    cost = net.poly_cost[(net.poly_cost.et == "gen") & (net.poly_cost.element == g)].iloc[0]
    net.poly_cost = net.poly_cost.drop(
        net.poly_cost[(net.poly_cost.et == "gen") & (net.poly_cost.element == g)].index
    )
    net.gen = net.gen.drop(g)
    e = pp.create_ext_grid(net, bus, va_degree=-2.0, min_p_mw=10.0, max_p_mw=270.0)
    pp.create_poly_cost(
        net, e, "ext_grid", cp1_eur_per_mw=cost.cp1_eur_per_mw, cp2_eur_per_mw2=cost.cp2_eur_per_mw2
    )
    ours = solve_dc_opf(net)
    rundcopp(net)
    assert ours.reason == "2 feeding points"
    assert ours.objective_eur == pytest.approx(float(net.res_cost), rel=OBJ_REL)
    np.testing.assert_allclose(ours.p_mw, unit_p_mw(net, ours.unit_names), atol=P_ABS_MW)
    # pandapower demotes the second slack of an island to a generator: its -2 degrees are not imposed
    b = list(ours.bus_ids).index(bus)
    assert abs(ours.va_degree[b] + 2.0) > 0.1
    assert ours.va_degree[b] == pytest.approx(float(net.res_bus.va_degree.at[bus]), abs=VA_ABS_DEG)


def test_a_reduced_line_rating_binds_and_both_engines_meet_it_alike() -> None:
    net = case("case9")
    free = solve_dc_opf(net)
    k = int(np.argmax(np.abs(free.flow_mw)))
    table, idx = free.branch_names[k].split(":")
    assert table == "line"
    # rate the most loaded line at 80 % of its unconstrained flow
    full_mw = float(
        net.line.max_i_ka.at[int(idx)] * net.bus.vn_kv.at[int(net.line.from_bus.at[int(idx)])] * 3**0.5
    )
    net.line.loc[int(idx), "max_loading_percent"] = 100 * 0.8 * abs(free.flow_mw[k]) / full_mw
    ours = solve_dc_opf(net)
    rundcopp(net)
    assert ours.binding == (free.branch_names[k],)
    assert abs(ours.flow_mw[k]) == pytest.approx(0.8 * abs(free.flow_mw[k]), rel=1e-9)
    assert ours.objective_eur > free.objective_eur + 1.0  # the limit costs something
    assert ours.objective_eur == pytest.approx(float(net.res_cost), rel=OBJ_REL)
    np.testing.assert_allclose(ours.p_mw, unit_p_mw(net, ours.unit_names), atol=P_ABS_MW)
    assert abs(float(net.res_line.p_from_mw.at[int(idx)])) == pytest.approx(abs(ours.flow_mw[k]), abs=1e-4)


def test_piecewise_linear_costs_stay_within_their_stated_error_of_rundcopp() -> None:
    net = case("case30")
    rundcopp(net)
    exact = float(net.res_cost)
    for max_error in (1.0, 0.01):
        ours = solve_dc_opf(copy.deepcopy(net), DcOpfOptions(costs="pwl", pwl_max_error_eur=max_error))
        assert 0 < ours.objective_error_bound_eur <= max_error
        assert sum(ours.pwl_segments) > 0
        assert exact - 1e-6 <= ours.objective_eur <= exact + ours.objective_error_bound_eur + 1e-6
