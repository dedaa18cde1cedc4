"""Same dispatch and objective as pandapower's DC OPF (`rundcopp`) with the same pwl costs."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandapower as pp
import pytest

from cloud_controller.dispatch import DispatchEngine, StorageState, problem_from_pandapower
from cloud_controller.grid import build_schutterwald_region

NO_STORAGE = StorageState(np.zeros(0), np.zeros(0))


def two_bus(kind: str, points: list[Any], *, load_mw: float = 0.02, p_max: float = 0.15) -> Any:
    """The nets of pandapower's test_costs_pwl.py (same data, built here)."""
    net = pp.create_empty_network()
    pp.create_bus(net, max_vm_pu=1.05, min_vm_pu=0.95, vn_kv=10.0)
    pp.create_bus(net, max_vm_pu=1.05, min_vm_pu=0.95, vn_kv=0.4)
    if kind == "gen":
        pp.create_gen(net, 1, p_mw=0.1, controllable=True, min_p_mw=0.05, max_p_mw=0.15)
    elif kind == "sgen":
        pp.create_sgen(
            net, 1, p_mw=0.1, controllable=True, min_p_mw=0.05 if p_max < 1 else 0.0, max_p_mw=p_max
        )
    if kind == "load":
        pp.create_load(net, 1, p_mw=0.1, controllable=True, max_p_mw=0.15, min_p_mw=0.05)
    else:
        pp.create_load(net, 1, p_mw=load_mw, controllable=False)
    pp.create_ext_grid(net, 0)
    pp.create_line_from_parameters(
        net,
        0,
        1,
        50,
        r_ohm_per_km=0.876,
        c_nf_per_km=260.0,
        max_i_ka=0.123,
        x_ohm_per_km=0.1159876,
        max_loading_percent=100 * 690,
    )
    pp.create_pwl_cost(net, 0, kind, points)
    return net


CASES = {
    "gen_equal_slopes": lambda: two_bus("gen", [[0, 75, 1.5], [75, 150, 1.5]]),
    "gen_single": lambda: two_bus("gen", [[0, 150, 2]]),
    "sgen_single": lambda: two_bus("sgen", [[0, 150, 2]]),
    "load_equal_slopes": lambda: two_bus("load", [[0, 75, 1.5], [75, 150, 1.5]]),
    "sgen_uneven": lambda: two_bus("sgen", [[0, 75, 1.5], [75, 150, 1.5]]),
    "ext_grid_uneven": lambda: two_bus("ext_grid", [(0, 0.075, 1), (0.075, 150, 2)], load_mw=0.1),
    "sgen_very_unsteady": lambda: two_bus("sgen", [[0, 0.75, -1], [0.75, 1500, 2]], p_max=1.5),
}


def compare(net: Any) -> None:
    pp.rundcopp(net)
    assert net.OPF_converged
    problem, inputs = problem_from_pandapower(net)
    res = DispatchEngine(problem).solve(inputs, NO_STORAGE)
    assert res.objective == pytest.approx(float(net.res_cost), rel=1e-4, abs=1e-7)
    assert res.p_root_kw[0] / 1000 == pytest.approx(float(net.res_ext_grid.p_mw.sum()), rel=1e-4, abs=1e-6)
    ours = list(-res.p_unit_kw[0] / 1000)
    theirs: list[float] = []
    for et in ("gen", "sgen", "load"):
        tab = net[et]
        ctrl = tab.get("controllable", et == "gen")
        mask = (
            ctrl.fillna(et == "gen").astype(bool)
            if hasattr(ctrl, "fillna")
            else np.full(len(tab), bool(ctrl))
        )
        vals = net[f"res_{et}"].p_mw[mask].to_numpy(dtype=float)
        theirs.extend(vals if et != "load" else -vals)
    assert ours == pytest.approx(theirs, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_matches_rundcopp_on_pandapower_pwl_cases(name: str) -> None:
    compare(CASES[name]())


@pytest.fixture(scope="module")
def region() -> Any:
    return build_schutterwald_region()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_rundcopp_on_schutterwald_sampled_steps(region: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    net = copy.deepcopy(region.net)
    under_77 = [int(b) for b, st in zip(net.load.bus, region.site_station, strict=True) if st == "T_idx_77"]
    net.load["p_mw"] = rng.uniform(0.0005, 0.004, len(net.load))
    net.load["controllable"] = False
    net.line["max_loading_percent"] = 100.0
    net.trafo["max_loading_percent"] = 100.0
    # a binding station limit so the flexible units have to respond
    st = net.trafo.index[net.trafo.name == "T_idx_77"][0]
    for i, bus in enumerate(rng.choice(net.load.bus.to_numpy(), 25, replace=False)):
        s = pp.create_sgen(net, int(bus), p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=0.008)
        pp.create_pwl_cost(net, s, "sgen", [[0, 1, -1.0 - 0.013 * i]])
    flex_buses = list(rng.choice(net.load.bus.to_numpy(), 10, replace=False)) + list(
        rng.choice(under_77, 6, replace=False)
    )
    for i, bus in enumerate(flex_buses):
        # consuming is worth more than importing costs: these loads sit at max unless a limit binds
        ld = pp.create_load(net, int(bus), p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=0.011)
        pp.create_pwl_cost(net, ld, "load", [[0, 1, -1.0 - 0.017 * i]])
    eg = int(net.ext_grid.index[0])
    pp.create_pwl_cost(net, eg, "ext_grid", [[-100, 100, 0.7 + 0.05 * seed]])
    pp.rundcopp(net)
    load_77 = float(net.res_trafo.p_lv_mw.at[st]) * -1
    limit_mw = load_77 - 0.5 * 6 * 0.011  # forces half of the flexible load under T_idx_77 off
    net.trafo.loc[st, "max_loading_percent"] = 100 * limit_mw / float(net.trafo.sn_mva.at[st])
    compare(net)
    # the station limit binds in both (otherwise this test would not exercise the network model)
    assert float(net.res_trafo.loading_percent.at[st]) == pytest.approx(
        float(net.trafo.max_loading_percent.at[st]), rel=1e-3
    )
