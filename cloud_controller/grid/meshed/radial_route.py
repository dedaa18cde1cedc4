"""The radial route of `solve_dc_opf`: the dispatch engine answers, a DC power flow fills in angles and flows.

Why the power flow afterwards: the radial engine's LinDistFlow rows hold flows on its own
tree orientation and no angles; for a tree the DC flows follow from the injections alone,
so one sparse solve of ``B va = p + Pbusinj`` (MATPOWER's `makeBdc` terms) gives the same
result fields as the meshed engine, in the same branch order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from cloud_controller.grid.meshed.network import DcNetwork, FloatArray
from cloud_controller.grid.meshed.opf import DcOpfResult, _binding, _incidence


def dc_power_flow(network: DcNetwork, p_unit_mw: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(va_rad per bus, from-side flow_mw per branch) for given unit injections (B-theta DC power flow)."""
    inc = _incidence(network)
    sb = network.base_mva * network.branch_b_pu
    p_bus = np.bincount(network.unit_bus, p_unit_mw, network.n_bus) - network.fixed_load_mw
    rhs = p_bus + inc @ (sb * network.branch_shift_rad)
    b_bus = (inc @ sp.diags(sb) @ inc.T).tocsr()
    va = np.zeros(network.n_bus)
    va[network.ref_bus] = network.ref_va_rad
    free = np.setdiff1d(np.arange(network.n_bus), network.ref_bus)
    if len(free):
        rhs_free = rhs[free] - b_bus[free][:, network.ref_bus] @ va[network.ref_bus]
        va[free] = spla.spsolve(b_bus[free][:, free].tocsc(), rhs_free)
    flow = sb * (inc.T @ va - network.branch_shift_rad)
    return va, np.asarray(flow, dtype=float)


def solve_radial(net: Any, network: DcNetwork, *, reason: str) -> DcOpfResult:
    """Answer with the dispatch engine (one period, the whole LP) and report as the meshed engine does."""
    from cloud_controller.dispatch import (
        KW_PER_MW,
        DispatchEngine,
        EngineOptions,
        StorageState,
        problem_from_pandapower,
    )

    problem, inputs = problem_from_pandapower(net)
    engine = DispatchEngine(problem, EngineOptions(lazy_grid=False))
    schedule = engine.solve(inputs, StorageState(np.zeros(0), np.zeros(0)))
    p = np.zeros(network.n_unit)
    order = [f"{et}:{i}" for et in ("gen", "sgen", "load") for i in _controllable(net, et)]
    pos = {name: g for g, name in enumerate(network.unit_names)}
    for u, name in enumerate(order):
        p[pos[name]] = -float(schedule.p_unit_kw[0, u]) / KW_PER_MW
    p[pos[network.unit_names[0]]] = float(schedule.p_root_kw[0]) / KW_PER_MW
    va, flow = dc_power_flow(network, p)
    return DcOpfResult(
        objective_eur=float(schedule.objective),
        objective_error_bound_eur=0.0,
        engine="radial",
        reason=reason,
        unit_names=network.unit_names,
        p_mw=p,
        branch_names=network.branch_names,
        flow_mw=flow,
        rating_mw=network.branch_rating_mw.copy(),
        binding=_binding(network, flow),
        bus_ids=network.bus_ids.copy(),
        va_degree=np.rad2deg(va),
        lmp_eur_per_mw=np.full(network.n_bus, np.nan),  # the dispatch engine's duals are not mapped
        pwl_segments=(0,) * network.n_unit,
    )


def _controllable(net: Any, et: str) -> list[int]:
    """The mirror's unit order (`problem_from_pandapower`): in service, controllable (gens by default)."""
    out = []
    for idx, row in net[et][net[et].in_service].iterrows():
        flag = row.get("controllable", et == "gen")
        ctrl = bool(flag) if isinstance(flag, (bool, np.bool_)) else et == "gen"
        if ctrl:
            out.append(int(idx))
    return out
