"""`choose_engine` sends each net to the engine that models it, and the radial route agrees with rundcopp."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.grid import DcOpfOptions, choose_engine, solve_dc_opf
from tests.unit.grid.meshed.nets import SLOW, case, oberrhein_with_costs, radial_with_pwl_costs, rundcopp


def _oberrhein_one_feeder():
    """mv_oberrhein's first island alone: radial, one ext_grid (costs as documented)."""
    import pandapower.toolbox as tb
    import pandapower.topology as top

    net = oberrhein_with_costs()
    keep = top.connected_component(top.create_nxgraph(net), int(net.ext_grid.bus.iloc[0]))
    return tb.select_subnet(net, set(keep))


def _radial_with_poly_cost():
    import pandapower as pp

    net = radial_with_pwl_costs()
    net.pwl_cost = net.pwl_cost.iloc[0:0]
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=45.0)
    return net


CHOICES = [
    ("case9", lambda: case("case9"), "meshed", "meshed: 1 loop(s)"),
    ("case118", lambda: case("case118"), "meshed", "meshed: 69 loop(s)"),
    ("mv_oberrhein", oberrhein_with_costs, "meshed", "2 feeding points"),
    (
        "mv_oberrhein-one-feeder",
        _oberrhein_one_feeder,
        "meshed",
        "radial, but the radial engine reads pwl_cost only",
    ),
    ("radial-pwl", radial_with_pwl_costs, "radial", "radial with one feeding point"),
    ("radial-poly", _radial_with_poly_cost, "meshed", "radial, but the radial engine reads pwl_cost only"),
]


HEAVY = {"case118", "mv_oberrhein", "mv_oberrhein-one-feeder"}


@pytest.mark.parametrize(
    ("make", "engine", "reason"),
    [pytest.param(*c[1:], id=c[0], marks=[SLOW] if c[0] in HEAVY else []) for c in CHOICES],
)
def test_the_choice_picks_the_engine_that_models_the_net(make, engine, reason) -> None:
    choice = choose_engine(make())
    assert (choice.engine, choice.reason) == (engine, reason)


@SLOW
def test_shape_counts_feeding_points_islands_and_loops() -> None:
    shape = choose_engine(oberrhein_with_costs(close_all_switches=True)).shape
    assert (shape.n_feeding_points, shape.n_islands, shape.n_loops) == (2, 1, 5)
    assert not shape.radial
    assert choose_engine(radial_with_pwl_costs()).shape.radial


def test_radial_route_and_meshed_engine_agree_with_rundcopp_on_a_radial_feeder() -> None:
    net = radial_with_pwl_costs()
    radial = solve_dc_opf(net)
    meshed = solve_dc_opf(net, DcOpfOptions(engine="meshed"))
    rundcopp(net)
    assert radial.engine == "radial" and meshed.engine == "meshed"
    for res in (radial, meshed):
        assert res.objective_eur == pytest.approx(float(net.res_cost), rel=1e-4)
        np.testing.assert_allclose(res.flow_mw, net.res_line.p_from_mw.to_numpy(), atol=1e-4)
    np.testing.assert_allclose(radial.p_mw, meshed.p_mw, atol=1e-4)
    np.testing.assert_allclose(radial.va_degree, meshed.va_degree, atol=1e-6)
