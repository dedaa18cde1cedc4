"""Cost reading follows pandapower's sign rules; the PWL chords' error bound holds; refusals are loud."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.grid import DcOpfOptions, dc_network_from_pandapower, solve_dc_opf
from cloud_controller.grid.meshed.costs import approximate_quadratic
from protocols.errors import ConfigError
from tests.unit.grid.meshed.nets import SLOW, oberrhein_with_costs, radial_with_pwl_costs


def test_chords_of_a_parabola_stay_within_the_stated_error() -> None:
    c1, c2 = np.asarray([5.0]), np.asarray([0.11])
    approx = approximate_quadratic(c1, c2, np.asarray([10.0]), np.asarray([250.0]), 0.5)
    seg = approx.segments[0]
    assert seg is not None and approx.n_segments[0] == len(seg.slope_eur_per_mw)
    x = np.linspace(10.0, 250.0, 20001)
    gap = np.max(seg.slope_eur_per_mw[:, None] * x + seg.offset_eur[:, None], axis=0) - (c1 * x + c2 * x**2)
    assert gap.min() >= -1e-9  # chords lie above the parabola
    assert gap.max() == pytest.approx(approx.error_bound_eur, rel=1e-3)
    assert approx.error_bound_eur <= 0.5


def test_a_controllable_load_pays_its_linear_cost_on_its_consumption() -> None:
    net = radial_with_pwl_costs()
    dn = dc_network_from_pandapower(net)
    g = dn.unit_names.index("load:3")
    # cost -60 EUR/MWh on consumption p = -P: +60 on the injection P
    assert dn.cost_c1_eur_per_mw[g] == pytest.approx(60.0)
    assert (dn.unit_p_min_mw[g], dn.unit_p_max_mw[g]) == (-1.0, 0.0)


def test_a_quadratic_cost_on_a_load_is_refused_not_solved_as_concave() -> None:
    import pandapower as pp

    net = radial_with_pwl_costs()
    net.pwl_cost = net.pwl_cost.iloc[0:0]
    ld = int(net.load.index[net.load.controllable.astype(bool)][0])
    pp.create_poly_cost(net, ld, "load", cp1_eur_per_mw=-50.0, cp2_eur_per_mw2=1.0)
    with pytest.raises(ConfigError, match="concave"):
        dc_network_from_pandapower(net)


@SLOW
def test_pwl_needs_a_finite_range_and_says_so_when_two_slacks_share_an_island() -> None:
    net = oberrhein_with_costs(close_all_switches=True)
    with pytest.raises(ConfigError, match="finite range"):
        solve_dc_opf(net, DcOpfOptions(costs="pwl"))


def test_an_unmodelled_element_in_service_is_refused() -> None:
    import pandapower as pp

    net = radial_with_pwl_costs()
    pp.create_ward(net, 2, ps_mw=0.1, qs_mvar=0.0, pz_mw=0.0, qz_mvar=0.0)
    with pytest.raises(ConfigError, match="ward"):
        dc_network_from_pandapower(net)
