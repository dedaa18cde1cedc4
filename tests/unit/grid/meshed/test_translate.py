"""The translator builds the B matrix and injections pandapower's own DC OPF builds (`_pd2ppc` + `makeBdc`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cloud_controller.grid import dc_network_from_pandapower
from tests.unit.grid.meshed.nets import SLOW, case, oberrhein_with_costs, rundcopp


def _pandapower_bdc(net: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bbus, Pbusinj and the fixed load of rundcopp's internal case, indexed by pandapower bus id."""
    from pandapower.pypower.idx_bus import GS, PD
    from pandapower.pypower.makeBdc import makeBdc

    rundcopp(net)
    ppci = net._ppc_opf
    bbus, _, pbusinj, *_ = makeBdc(ppci["bus"], ppci["branch"])
    lookup = net._pd2ppc_lookups["bus"]
    return bbus.toarray(), pbusinj, (ppci["bus"][:, PD] + ppci["bus"][:, GS]), lookup


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: case("case14"), id="case14-tapped-trafos"),
        pytest.param(lambda: case("case118"), id="case118-tapped-trafos", marks=SLOW),
        pytest.param(
            lambda: oberrhein_with_costs(close_all_switches=True),
            id="mv_oberrhein-150deg-shift-and-magnetising",
            marks=SLOW,
        ),
    ],
)
def test_b_matrix_phase_shift_injections_and_loads_equal_pandapowers(make) -> None:
    net = make()
    ours = dc_network_from_pandapower(net)
    bbus, pbusinj, load, lookup = _pandapower_bdc(net)
    ix = lookup[ours.bus_ids]
    inc = np.zeros((ours.n_bus, ours.n_branch))
    inc[ours.branch_from, np.arange(ours.n_branch)] = 1
    inc[ours.branch_to, np.arange(ours.n_branch)] = -1
    b_ours = inc @ np.diag(ours.branch_b_pu) @ inc.T
    np.testing.assert_allclose(b_ours, bbus[np.ix_(ix, ix)], rtol=1e-12, atol=1e-9)
    pinj_ours = inc @ (-ours.branch_b_pu * ours.branch_shift_rad)
    np.testing.assert_allclose(pinj_ours, pbusinj[ix], atol=1e-12)
    np.testing.assert_allclose(ours.fixed_load_mw, load[ix], atol=1e-9)


@SLOW
def test_ratings_follow_max_i_ka_times_voltage_and_transformer_sn_mva() -> None:
    net = oberrhein_with_costs()
    ours = dc_network_from_pandapower(net)
    k = ours.branch_names.index("line:0")
    ln = net.line.loc[0]
    assert ours.branch_rating_mw[k] == pytest.approx(ln.max_i_ka * net.bus.vn_kv.at[ln.from_bus] * 3**0.5)
    t = ours.branch_names.index(f"trafo:{net.trafo.index[0]}")
    assert ours.branch_rating_mw[t] == pytest.approx(25.0)


def test_a_branch_without_max_loading_percent_is_unlimited_as_in_rundcopp() -> None:
    net = case("case9")
    net.line = net.line.drop(columns="max_loading_percent")
    assert np.isinf(dc_network_from_pandapower(net).branch_rating_mw).all()


def test_an_open_line_switch_takes_the_line_out() -> None:
    import pandapower as pp

    net = case("case9")
    pp.create_switch(net, int(net.line.from_bus.at[3]), 3, et="l", closed=False)
    ours = dc_network_from_pandapower(net)
    assert "line:3" not in ours.branch_names and ours.n_branch == len(net.line) - 1


def test_a_table_whose_rows_are_all_out_of_service_adds_no_unit() -> None:
    """Every sgen out of service: no sgen unit and no fixed injection (it used to select columns, not rows)."""
    from tests.unit.grid.meshed.nets import loop_two_feeds

    net = loop_two_feeds()
    import pandapower as pp

    pp.create_sgen(net, 3, p_mw=0.5, name="pv")
    both = dc_network_from_pandapower(net)
    net.sgen["in_service"] = False
    off = dc_network_from_pandapower(net)
    assert not any(n.startswith("sgen:") for n in off.unit_names)
    assert np.isclose(
        off.fixed_load_mw.sum() - both.fixed_load_mw.sum(), 0.5
    )  # the PV no longer offsets load
