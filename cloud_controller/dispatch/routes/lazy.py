"""Grid rows only where they bind: the dispatch LP solved by row generation.

Why: in the 96-period MPC on the full LV network, nearly every grid row is idle. Measured,
1,000 buildings x 96 periods (`gridflex bench dispatch`): the plan without any grid row
breaks 4 of 242,000 branch limits and no voltage band, yet the grid rows and their
flow, voltage and slack columns are 70 % of the LP (2.0 M of 2.6 M columns) and most of
its solve time. So the LP starts without its grid (every site on the slack bus: sites,
stores, the HV/MV balance and thresholds) and gets a grid row only when the answer
breaks it, written directly in the sites' exchange (the flow on a branch is the sum of
the loads below it; a bus voltage is the root voltage minus the drops along its path).

Exactness. The full LP, for given site variables, has its flows and voltages fixed, and
its cheapest slacks are the breaches: it is min c(x) + sum of penalty x breach over every
grid row. The LP here keeps only some of those terms (each added row comes with its own
slack column at the same penalty), so it is a relaxation of the full LP. When its optimum
breaks no row left out (penalty-weighted, within GAP_TOL of the objective), the same
point costs the same in the full LP, which cannot do better: it is the full LP's optimum.
Rows once added stay (what bound once tends to bind again), with their bounds moved with
every call's fixed loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from cloud_controller.dispatch.areas.areas import subtree_matrix
from cloud_controller.dispatch.model.lp import LpIndex
from cloud_controller.dispatch.model.problem import FloatArray, IntArray, Problem
from cloud_controller.grid.radial import RadialGrid

# Rows left out may be broken by at most this share of max(1, |objective|) in penalty
# (the same tolerance as the area certificate in decompose.py).
GAP_TOL = 1e-9

# Kinds of grid row, in the `<=` form every row is added in: row(x) - slack <= upper.
BRANCH_UP, BRANCH_DN, V_UP, V_DN = 0, 1, 2, 3
KIND_NAMES = ("branch", "branch", "voltage_high", "voltage_low")
# Voltage rows go into the LP in units of 1e-4 pu: in pu their coefficients are 1e-7..1e-3
# per kW and their slack costs 1e5 per pu, which HiGHS solved badly (found by review:
# "Unknown" status after a basis change, and rows broken by up to 1e-7 pu, the primal
# tolerance, without their slack paying; both gone with this scale). Rows are in kW or
# these units in HiGHS; `ROW_SCALE[kind]` converts back.
V_SCALE = 1e4
ROW_SCALE = np.array([1.0, 1.0, V_SCALE, V_SCALE])


def gridless(problem: Problem) -> Problem:
    """`problem` with every site and unit on the slack bus: its LP without any grid row."""
    g = problem.grid
    star = RadialGrid(
        bus_ids=g.bus_ids[[g.root]],
        root=0,
        parent=np.zeros(0, dtype=np.int64),
        child=np.zeros(0, dtype=np.int64),
        rating_kw=np.zeros(0),
        r_pu_per_kw=np.zeros(0),
        branch_names=(),
        v_root_pu=g.v_root_pu,
        v_min_pu=g.v_min_pu[[g.root]],
        v_max_pu=g.v_max_pu[[g.root]],
    )
    return replace(
        problem,
        grid=star,
        site_bus=np.zeros(problem.n_sites, dtype=np.int64),
        unit_bus=np.zeros(problem.n_units, dtype=np.int64),
    )


@dataclass
class Breach:
    """Grid rows an answer breaks: kind (BRANCH_UP...), element (branch or bus), period, amount."""

    kind: IntArray
    element: IntArray
    t: IntArray
    amount: FloatArray  # kW or pu beyond the limit

    def __len__(self) -> int:
        return len(self.kind)


@dataclass
class _Rows:
    """The grid rows added so far, in the order added (parallel arrays)."""

    kind: list[int] = field(default_factory=list)
    element: list[int] = field(default_factory=list)
    t: list[int] = field(default_factory=list)
    row: list[int] = field(default_factory=list)
    slack: list[int] = field(default_factory=list)


class LazyGrid:
    """The grid rows of a problem, evaluated on an answer and written as LP rows on demand.

    Pure: it computes flows, voltages, breaches, row coefficients and bounds; the engine
    moves them into HiGHS.
    """

    def __init__(self, problem: Problem, ix: LpIndex) -> None:
        p = problem
        g = p.grid
        self.problem = p
        self.ix = ix  # the gridless LP's index
        self._d = subtree_matrix(g)  # (K, N)
        self._dc = self._d.tocsc()
        self._dt = self._d.T.tocsr()
        # bus -> the LP columns that load it: imports +1, exports -1, units +1
        self._site_of_bus = sp.csr_matrix(
            (np.ones(p.n_sites), (p.site_bus, np.arange(p.n_sites))), shape=(g.n_bus, p.n_sites)
        )
        self._unit_of_bus = sp.csr_matrix(
            (np.ones(p.n_units), (p.unit_bus, np.arange(p.n_units))), shape=(g.n_bus, p.n_units)
        )
        self._branch_sites = (self._d @ self._site_of_bus).tocsr()  # (K, S): sites below branch k
        self._branch_units = (self._d @ self._unit_of_bus).tocsr()
        self._limited = np.isfinite(g.rating_kw) & p.enforce_branches
        w = p.weights
        self._pen = np.array(
            [w.pen_branch * p.dt_h, w.pen_branch * p.dt_h, w.pen_voltage_per_pu, w.pen_voltage_per_pu]
        )  # per kW or per pu
        self._not_root = np.ones(g.n_bus, dtype=bool)
        # the slack bus's voltage is fixed; the gridless LP keeps its band row and slacks
        self._not_root[g.root] = False
        T = p.horizon
        self._added = np.zeros((4, T, max(g.n_branch, g.n_bus)), dtype=bool)
        self.rows = _Rows()
        self._fixed_flow = np.zeros((T, g.n_branch))  # flows and voltage drops of the fixed loads
        self._fixed_drop = np.zeros((T, g.n_bus))
        self._static_rating = np.broadcast_to(g.rating_kw[None, :], (T, g.n_branch))
        self.rating_kw: FloatArray = self._static_rating  # (T, K) this call's (set_rating)

    # -- evaluation -------------------------------------------------------------------
    def bus_loads(self, x: FloatArray, fixed_kw: FloatArray | None) -> FloatArray:
        """(T, N) bus loads of an LP answer `x` (column values) plus the fixed bus loads."""
        ix = self.ix
        p_site = x[ix.c_imp] - x[ix.c_exp]
        loads = np.asarray((self._site_of_bus @ p_site.T).T)
        if self.problem.n_units:
            loads = loads + np.asarray((self._unit_of_bus @ x[ix.c_u].T).T)
        if fixed_kw is not None:
            loads = loads + fixed_kw
        return loads

    def flows_and_voltages(self, loads: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(T, K) branch flows and (T, N) bus voltages of bus loads (T, N), lossless."""
        g = self.problem.grid
        flows = np.asarray((self._d @ loads.T).T)
        v = g.v_root_pu - np.asarray((self._dt @ (flows * g.r_pu_per_kw[None, :]).T).T)
        return flows, v

    def breaches(self, flows: FloatArray, v: FloatArray, *, new_only: bool = True) -> Breach:
        """Every grid row the flows and voltages break (only rows not yet in the LP if `new_only`)."""
        p = self.problem
        g = p.grid
        K, N = g.n_branch, g.n_bus
        over: list[FloatArray] = [
            np.where(self._limited[None, :], flows - self.rating_kw, -np.inf),
            np.where(self._limited[None, :], -flows - self.rating_kw, -np.inf),
        ]
        if p.enforce_voltage:
            over += [
                np.where(self._not_root[None, :], v - g.v_max_pu[None, :], -np.inf),
                np.where(self._not_root[None, :], g.v_min_pu[None, :] - v, -np.inf),
            ]
        kinds, elems, ts, amounts = [], [], [], []
        for kind, o in enumerate(over):
            hit = o > 0
            if new_only:
                hit &= ~self._added[kind, :, : (K if kind < V_UP else N)]
            t, e = np.nonzero(hit)
            kinds.append(np.full(len(t), kind, dtype=np.int64))
            elems.append(e.astype(np.int64))
            ts.append(t.astype(np.int64))
            amounts.append(o[t, e])
        return Breach(
            np.concatenate(kinds), np.concatenate(elems), np.concatenate(ts), np.concatenate(amounts)
        )

    def penalty(self, b: Breach) -> float:
        """What the full LP charges for the breaches (its slacks' cost)."""
        return float((self._pen[b.kind] * b.amount).sum())

    # -- rows -------------------------------------------------------------------------
    def set_fixed(self, fixed_kw: FloatArray | None) -> None:
        """The fixed bus loads of this call (T, N), which move every added row's bound."""
        T = self.problem.horizon
        g = self.problem.grid
        if fixed_kw is None:
            self._fixed_flow = np.zeros((T, g.n_branch))
            self._fixed_drop = np.zeros((T, g.n_bus))
            return
        flows, v = self.flows_and_voltages(np.asarray(fixed_kw, float))
        self._fixed_flow = flows
        self._fixed_drop = g.v_root_pu - v

    def set_rating(self, rating_kw: FloatArray | None) -> bool:
        """This call's (T, K) branch ratings (None: the grid's); True if they moved since the last call."""
        new = self._static_rating if rating_kw is None else rating_kw
        moved = new is not self.rating_kw and not np.array_equal(new, self.rating_kw)
        self.rating_kw = new if rating_kw is None else np.array(rating_kw, copy=True)
        return bool(moved)

    def uppers(self, kind: IntArray, element: IntArray, t: IntArray) -> FloatArray:
        """Upper bounds of rows (kind, element, t) for the fixed loads last set, as in the LP.

        Voltage rows are scaled by V_SCALE.
        """
        g = self.problem.grid
        out = np.empty(len(kind))
        for k, sign in ((BRANCH_UP, -1.0), (BRANCH_DN, 1.0)):
            m = kind == k
            out[m] = self.rating_kw[t[m], element[m]] + sign * self._fixed_flow[t[m], element[m]]
        m = kind == V_UP
        out[m] = g.v_max_pu[element[m]] - g.v_root_pu + self._fixed_drop[t[m], element[m]]
        m = kind == V_DN
        out[m] = g.v_root_pu - g.v_min_pu[element[m]] - self._fixed_drop[t[m], element[m]]
        scaled: FloatArray = out * ROW_SCALE[kind]
        return scaled

    def _drop_per_kw(self, bus: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Voltage drop at `bus` per kW of each site's and unit's load.

        That is the resistance of the path they share with it.
        """
        g = self.problem.grid
        col = self._dc[:, bus]  # branches above the bus
        r_path = col.multiply(g.r_pu_per_kw[:, None]).T.tocsr()  # (1, K)
        return (r_path @ self._branch_sites).tocsr(), (r_path @ self._branch_units).tocsr()

    def coefficients(self, kind: int, element: int, t: int) -> tuple[IntArray, FloatArray]:
        """LP columns and coefficients of row (kind, element, t) in its `<=` form, slack aside.

        Voltage rows are scaled by V_SCALE.
        """
        ix = self.ix
        if kind in (BRANCH_UP, BRANCH_DN):
            s_row = self._branch_sites[element]
            u_row = self._branch_units[element]
            sign = 1.0 if kind == BRANCH_UP else -1.0
        else:
            s_row, u_row = self._drop_per_kw(element)
            sign = -1.0 if kind == V_UP else 1.0  # v = v_root - drop: v_up is -drop <= ...
        sites, s_val = s_row.indices, s_row.data
        units, u_val = u_row.indices, u_row.data
        cols = np.concatenate([ix.c_imp[t, sites], ix.c_exp[t, sites], ix.c_u[t, units]])
        vals = sign * ROW_SCALE[kind] * np.concatenate([s_val, -s_val, u_val])
        keep = vals != 0.0
        return cols[keep].astype(np.int64), vals[keep]

    def is_added(self, kind: IntArray, element: IntArray, t: IntArray) -> npt.NDArray[np.bool_]:
        """Which of these rows are in the LP already."""
        return np.asarray(self._added[kind, t, element], dtype=bool)

    def mark_added(self, b: Breach, rows: IntArray, slacks: IntArray) -> None:
        """Record that breach `b`'s rows are in the LP now, at rows `rows` with slack columns `slacks`."""
        self._added[b.kind, b.t, b.element] = True
        self.rows.kind.extend(b.kind.tolist())
        self.rows.element.extend(b.element.tolist())
        self.rows.t.extend(b.t.tolist())
        self.rows.row.extend(rows.tolist())
        self.rows.slack.extend(slacks.tolist())

    def penalty_per_unit(self, kind: IntArray) -> FloatArray:
        """Slack cost per unit of rows of these kinds as in the LP (per kW; per 1e-4 pu)."""
        per_unit: FloatArray = self._pen[kind] / ROW_SCALE[kind]
        return per_unit

    def added_arrays(self) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray]:
        """(kind, element, t, row, slack) of every added row."""
        r = self.rows
        return tuple(np.asarray(a, dtype=np.int64) for a in (r.kind, r.element, r.t, r.row, r.slack))  # type: ignore[return-value]
