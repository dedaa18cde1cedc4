"""A small MV/LV case for the estimator's tests: HV grid, HV/MV trafo, two MV/LV stations, LV feeders."""

from __future__ import annotations

from typing import Any

import numpy as np


def small_net(n_feeder_buses: int = 4) -> Any:
    """HV -> 25 MVA -> 20 kV busbar -> 2 cables -> 2 x 0.63 MVA stations -> 2 LV feeders each.

    Every LV feeder alternates junction (no load) and household buses, so there are
    zero-injection buses; households draw 2..6 kW at cos phi 0.95.
    """
    import pandapower as pp

    net = pp.create_empty_network(sn_mva=1.0)
    hv = pp.create_bus(net, 110.0, name="HV")
    mv = pp.create_bus(net, 20.0, name="MV busbar")
    pp.create_ext_grid(net, hv, vm_pu=1.02, name="HV grid")
    pp.create_transformer_from_parameters(
        net, hv, mv, sn_mva=25.0, vn_hv_kv=110.0, vn_lv_kv=20.0, vkr_percent=0.32,
        vk_percent=12.0, pfe_kw=14.0, i0_percent=0.07, name="HV/MV",
    )
    rng = np.random.default_rng(7)
    for s in range(2):
        mv_s = pp.create_bus(net, 20.0, name=f"MV st{s}")
        pp.create_line(net, mv, mv_s, 1.5 + s, "NA2XS2Y 1x95 RM/25 12/20 kV")
        lv = pp.create_bus(net, 0.4, name=f"LV st{s}")
        pp.create_transformer(net, mv_s, lv, "0.63 MVA 20/0.4 kV", name=f"station {s}")
        for f in range(2):
            prev = lv
            for k in range(n_feeder_buses):
                b = pp.create_bus(net, 0.4, name=f"st{s} f{f} b{k}")
                pp.create_line(net, prev, b, 0.05 + 0.02 * k, "NAYY 4x150 SE")
                if k % 2 == 1:
                    p_kw = float(rng.uniform(2.0, 6.0))
                    pp.create_load(net, b, p_mw=p_kw / 1e3, q_mvar=p_kw / 1e3 * np.tan(np.arccos(0.95)),
                                   name=f"HH s{s}f{f}b{k}")
                prev = b
    # Dyn5 stations shift the LV angle by 150 degrees; pandapower's WLS starts flat and does not
    # converge across that shift, so the cross-check case uses an unshifted winding
    net.trafo["shift_degree"] = 0.0
    return net


def truth(net: Any) -> Any:
    """Run pandapower's power flow on the net (its loads as they are): the grid truth."""
    import pandapower as pp

    pp.runpp(net, calculate_voltage_angles=True, init="dc")
    return net
