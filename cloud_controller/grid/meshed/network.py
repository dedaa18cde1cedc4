"""The DC network a meshed DC-OPF solves: buses, branches, injections and costs, as plain arrays.

Why its own data type: the optimiser (`opf.py`) is a pure function of it, so the
translation from pandapower (`translate.py`, `branches.py`) is the only place that reads a
net, and a test can state a network by hand. Conventions are pandapower's DC OPF ones
(MATPOWER's manual, §3.7 "DC modeling" and §6 "Optimal power flow"):

- the branch flow from bus f to bus t is ``p_mw = base_mva * b_pu * (va_f - va_t - shift_rad)``
  with ``b_pu = 1 / (x_pu * tap)``, ``x_pu`` on the net's ``sn_mva`` base;
- unit power is an injection (positive into the bus); a controllable load is a unit with
  ``p_mw = -load``, as in pandapower's ppc ``gen`` table;
- costs are in the units of ``poly_cost`` / ``pwl_cost`` (€ for one hour at the dispatch),
  stated on the injection ``p_mw`` after pandapower's sign rules (`costs.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PwlSegments:
    """A convex piecewise-linear cost of one unit: ``cost >= slope_k * p_mw + offset_k`` for every k."""

    slope_eur_per_mw: FloatArray
    offset_eur: FloatArray


@dataclass(frozen=True)
class DcNetwork:
    """A DC network in internal indices (bus 0..N-1, branch 0..K-1, unit 0..G-1)."""

    base_mva: float
    bus_ids: IntArray  # pandapower bus id of each internal bus (the representative of fused buses)
    island: IntArray  # (N,) island number of each bus (each island holds at least one reference bus)
    ref_bus: IntArray  # internal index of every reference (slack) bus
    ref_va_rad: FloatArray  # the fixed voltage angle of each reference bus
    fixed_load_mw: FloatArray  # (N,) loads + shunt losses at 1 pu - non-controllable generation
    branch_from: IntArray  # (K,)
    branch_to: IntArray  # (K,)
    branch_b_pu: FloatArray  # (K,) series susceptance 1 / (x_pu * tap)
    branch_shift_rad: FloatArray  # (K,) phase shift
    branch_rating_mw: FloatArray  # (K,) |flow| limit, inf where rundcopp sets none
    branch_names: tuple[str, ...]  # "line:12", "trafo:3"
    unit_bus: IntArray  # (G,)
    unit_names: tuple[str, ...]  # "ext_grid:0", "gen:3", "sgen:7", "load:2"
    unit_p_min_mw: FloatArray  # (G,) injection limits (-inf / inf where unbounded)
    unit_p_max_mw: FloatArray
    cost_c0_eur: FloatArray  # (G,) polynomial cost c0 + c1 p + c2 p² of the injection p
    cost_c1_eur_per_mw: FloatArray
    cost_c2_eur_per_mw2: FloatArray
    cost_pwl: tuple[PwlSegments | None, ...]  # (G,) a piecewise-linear cost instead, where given
    cost_note: str  # how the costs were read (e.g. "no costs: total injection minimised, as rundcopp")

    @property
    def n_bus(self) -> int:
        """Number of buses."""
        return len(self.bus_ids)

    @property
    def n_branch(self) -> int:
        """Number of branches."""
        return len(self.branch_from)

    @property
    def n_unit(self) -> int:
        """Number of dispatchable injections (ext_grids, gens, controllable sgens/loads/storage)."""
        return len(self.unit_bus)

    @property
    def n_island(self) -> int:
        """Number of islands (each with its own power balance)."""
        return int(self.island.max()) + 1 if len(self.island) else 0

    @property
    def n_loop(self) -> int:
        """Independent loops: branches beyond a spanning forest (0 for a radial network)."""
        return self.n_branch - (self.n_bus - self.n_island)
