"""Reference nets for the meshed DC-OPF tests: pandapower's MATPOWER cases and a costed mv_oberrhein."""

from __future__ import annotations

import copy
import functools
import warnings
from typing import Any

import numpy as np
import pytest

CASES = ("case9", "case14", "case30", "case118")
SLOW = pytest.mark.slow  # case118 and mv_oberrhein: under `make test-all`, not the default run
DEFAULT_CASES = [pytest.param(c, marks=SLOW) if c == "case118" else c for c in CASES]


@functools.cache
def _loaded(name: str) -> Any:
    import pandapower.networks as pn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(pn, name)()


def case(name: str) -> Any:
    """A fresh copy of a pandapower network (loaded once per test session: its JSON costs seconds)."""
    return copy.deepcopy(_loaded(name))


def rundcopp(net: Any) -> None:
    import pandapower as pp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.rundcopp(net)


def unit_p_mw(net: Any, names: tuple[str, ...]) -> np.ndarray:
    """rundcopp's injection per unit "table:index" (a load's is minus its consumption)."""
    out = []
    for name in names:
        table, idx = name.split(":")
        p = float(net[f"res_{table}"].p_mw.at[int(idx)])
        out.append(-p if table in ("load", "storage") else p)
    return np.asarray(out)


def oberrhein_with_costs(*, close_all_switches: bool = False) -> Any:
    """`mv_oberrhein` (no costs of its own) with the documented costs of docs/grid.md.

    Two ext_grids (the two 25 MVA HV/MV transformers' 110 kV sides): 40 €/MWh + 0.5 €/MW²h
    and 42 €/MWh + 0.8 €/MW²h. Every sgen at scaling 1 becomes controllable in
    [0, p_mw] at 20 + 0.1·i €/MWh + 100 €/MW²h (i its position), so its optimum is interior
    and unique; loads stay fixed; lines and transformers are rated at 100 %.
    """
    import pandapower as pp

    net = case("mv_oberrhein")
    if close_all_switches:
        net.switch["closed"] = True
    net.load["controllable"] = False
    net.sgen["scaling"] = 1.0
    net.sgen["controllable"] = True
    net.sgen["min_p_mw"] = 0.0
    net.sgen["max_p_mw"] = net.sgen.p_mw
    net.line["max_loading_percent"] = 100.0
    net.trafo["max_loading_percent"] = 100.0
    eg = list(net.ext_grid.index)
    pp.create_poly_cost(net, eg[0], "ext_grid", cp1_eur_per_mw=40.0, cp2_eur_per_mw2=0.5)
    pp.create_poly_cost(net, eg[1], "ext_grid", cp1_eur_per_mw=42.0, cp2_eur_per_mw2=0.8)
    for i, s in enumerate(net.sgen.index):
        pp.create_poly_cost(net, s, "sgen", cp1_eur_per_mw=20.0 + 0.1 * i, cp2_eur_per_mw2=100.0)
    return net


def radial_with_pwl_costs() -> Any:
    """A small radial 20 kV feeder, one ext_grid, controllable sgens and loads priced by pwl_cost."""
    import pandapower as pp

    net = pp.create_empty_network(sn_mva=1.0)
    buses = [pp.create_bus(net, vn_kv=20.0) for _ in range(6)]
    pp.create_ext_grid(net, buses[0])
    for a, b in ((0, 1), (1, 2), (2, 3), (1, 4), (4, 5)):
        pp.create_line_from_parameters(
            net,
            buses[a],
            buses[b],
            length_km=2.0,
            r_ohm_per_km=0.2,
            x_ohm_per_km=0.35,
            c_nf_per_km=0.0,
            max_i_ka=0.1,
            max_loading_percent=100.0,
        )
    for b, p in ((2, 1.0), (3, 1.5), (5, 2.0)):
        pp.create_load(net, buses[b], p_mw=p, controllable=False)
    for k, b in enumerate((3, 5)):
        s = pp.create_sgen(net, buses[b], p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=2.5)
        pp.create_pwl_cost(net, s, "sgen", [[0.0, 2.5, 10.0 + 5.0 * k]])
    d = pp.create_load(net, buses[4], p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=1.0)
    pp.create_pwl_cost(net, d, "load", [[0.0, 1.0, -60.0]])
    pp.create_pwl_cost(net, 0, "ext_grid", [[-50.0, 50.0, 45.0]])
    net.sgen["controllable"] = net.sgen.controllable.astype(bool)
    return net


LOOP_LINES = ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0), (1, 4))  # a ring and a chord: two loops


def loop_two_feeds(
    *, site_buses: tuple[int, ...] = (1, 2, 2, 4, 5, 5), site_p_mw: float = 0.8, limit_pct: float = 30.0
) -> Any:
    """A 20 kV ring with a chord fed at bus 0 (40 €/MWh) and bus 3 (55 €/MWh): two loops, two feeding points.

    Lines of 0.1 kA (3,464 kW) at 100 %, except line 0 (bus 0-1) at `limit_pct`: with the
    loads below it, the cheap feed would carry more over it than its rating. One load per
    entry of `site_buses` (the sites), and a controllable sgen at bus 4 (0-1 MW, 50 €/MWh).
    """
    import pandapower as pp

    net = pp.create_empty_network(sn_mva=1.0)
    buses = [pp.create_bus(net, vn_kv=20.0, name=f"bus{i}") for i in range(6)]
    a = pp.create_ext_grid(net, buses[0], name="feed A")
    b = pp.create_ext_grid(net, buses[3], name="feed B")
    for k, (f, t) in enumerate(LOOP_LINES):
        pp.create_line_from_parameters(
            net,
            buses[f],
            buses[t],
            length_km=1.0 + 0.5 * k,
            r_ohm_per_km=0.2,
            x_ohm_per_km=0.35,
            c_nf_per_km=0.0,
            max_i_ka=0.1,
            max_loading_percent=limit_pct if k == 0 else 100.0,
            name=f"L{f}{t}",
        )
    for i, bus in enumerate(site_buses):
        pp.create_load(net, buses[bus], p_mw=site_p_mw, name=f"site{i}")
    s = pp.create_sgen(net, buses[4], p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=1.0)
    net.sgen["controllable"] = net.sgen.controllable.astype(bool)
    pp.create_poly_cost(net, a, "ext_grid", cp1_eur_per_mw=40.0)
    pp.create_poly_cost(net, b, "ext_grid", cp1_eur_per_mw=55.0)
    pp.create_poly_cost(net, s, "sgen", cp1_eur_per_mw=50.0)
    return net
