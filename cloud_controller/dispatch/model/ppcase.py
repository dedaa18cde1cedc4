"""Mirror a pandapower DC-OPF case (controllable gen/sgen/load with pwl costs) as a dispatch Problem.

Used to check the engine against `pandapower.rundcopp` on the same data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cloud_controller.dispatch.model.problem import Problem, PwlCost, StepInputs
from cloud_controller.grid.radial import radial_from_pandapower
from protocols.errors import ConfigError

KW_PER_MW = 1000.0


def problem_from_pandapower(net: Any) -> tuple[Problem, StepInputs]:
    """Units = controllable gen/sgen/load; fixed elements become bus loads; ext_grid cost on the root."""
    grid = radial_from_pandapower(net, v_min_pu=-1e3, v_max_pu=1e3)
    costs: dict[tuple[str, int], PwlCost] = {}
    for _, row in net.pwl_cost.iterrows():
        costs[(str(row.et), int(row.element))] = PwlCost.from_points(
            [(float(s[0]), float(s[1]), float(s[2])) for s in row.points], kw_per_unit=KW_PER_MW
        )
    if len(net.poly_cost):
        raise ConfigError("polynomial costs are not mirrored; use pwl costs", key="poly_cost")
    unit_bus: list[int] = []
    pmin: list[float] = []
    pmax: list[float] = []
    sign: list[float] = []
    ucost: list[PwlCost] = []
    fixed = np.zeros(grid.n_bus)
    for et, gen_sign in (("gen", -1.0), ("sgen", -1.0), ("load", 1.0)):
        tab = net[et]
        for idx, row in tab[tab.in_service].iterrows():
            b = grid.index_of(int(row.bus))
            flag = row.get("controllable", et == "gen")
            ctrl = bool(flag) if isinstance(flag, (bool, np.bool_)) else et == "gen"
            if ctrl:
                lo, hi = float(row.min_p_mw) * KW_PER_MW, float(row.max_p_mw) * KW_PER_MW
                unit_bus.append(b)
                # unit power is load-positive: a generator producing p is -p
                pmin.append(-hi if gen_sign < 0 else lo)
                pmax.append(-lo if gen_sign < 0 else hi)
                sign.append(gen_sign)
                ucost.append(costs.get((et, int(idx)), PwlCost((0.0,), (0.0,))))
            else:
                scale = float(row.get("scaling", 1.0))
                fixed[b] += gen_sign * float(row.p_mw) * scale * KW_PER_MW
    eg = net.ext_grid[net.ext_grid.in_service].iloc[0]
    eg_idx = int(net.ext_grid.index[net.ext_grid.in_service][0])
    rmin = float(eg.get("min_p_mw", np.nan))
    rmax = float(eg.get("max_p_mw", np.nan))
    problem = Problem(
        grid=grid,
        site_bus=np.zeros(0, dtype=np.int64),
        unit_bus=np.asarray(unit_bus, dtype=np.int64),
        unit_p_min_kw=np.asarray(pmin),
        unit_p_max_kw=np.asarray(pmax),
        unit_sign=np.asarray(sign),
        unit_cost=tuple(ucost),
        root_p_min_kw=rmin * KW_PER_MW if np.isfinite(rmin) else -np.inf,
        root_p_max_kw=rmax * KW_PER_MW if np.isfinite(rmax) else np.inf,
        root_cost=costs.get(("ext_grid", eg_idx)),
        enforce_voltage=False,
    )
    inputs = StepInputs(base_kw=np.zeros((1, 0)), bus_fixed_kw=fixed[None, :])
    return problem, inputs
