"""Observability before solving: which areas the measurements cannot see, and where a meter would fix it.

Neither pandapower nor power-grid-model says *where* a net is unobservable (PGM raises
`NotObservableError`, pandapower's WLS fails to factorise). Two methods, both on the
decoupled P-θ model (bus injections and branch flows against bus angles; voltage
magnitudes follow if each island holds one voltage meter):

* **Numerical** (Monticelli & Wu): the null space of the measurement matrix H. A branch
  whose end angles differ in some null vector carries an undetermined flow; cutting those
  branches leaves the observable islands. General (meshed nets too); one SVD of H.
* **Topological flow propagation** (exact on radial nets): a metered branch is known; a bus
  with a known injection (metered, or zero injection) and exactly one unknown branch
  determines it; repeat to a fixed point.

Meter placement is greedy on the propagation: every independent meter raises the rank by
exactly one, so *any* set of independent meters needs the same number (the rank
deficiency); the greedy only chooses *which*: each round it meters the candidate that
determines the most branches (itself plus the cascade it starts), preferring a site meter
(a bus whose every load gets metered) and, where allowed, a branch-flow meter at a
transformer (a substation meter). On a tree a candidate with a gain always exists (the bus
below the deepest undetermined branch), so the loop ends observable; the suggestion is
then checked by the numerical method.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Island", "MeterSuggestion", "Observability", "Topology", "check_observability"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Topology:
    """The bus-branch graph the estimator solves on, with what can carry a meter."""

    n_bus: int
    f: IntArray  # from bus per in-service branch
    t: IntArray  # to bus per in-service branch
    branch_names: tuple[str, ...]  # "line:<idx>" / "trafo:<idx>"
    bus_label: IntArray  # pandapower bus index per bus (-1 if none)
    load_bus: IntArray  # bus of each load column
    source_bus: IntArray


@dataclass(frozen=True)
class Island:
    """A set of buses whose relative state the measurements determine."""

    buses: tuple[int, ...]  # pandapower bus indices
    has_voltage: bool
    has_source: bool


@dataclass(frozen=True)
class MeterSuggestion:
    """One meter to add: at a bus (every load there) or at a transformer's LV end."""

    kind: Literal["site", "flow"]
    bus: int | None  # pandapower bus of a site meter
    loads: tuple[int, ...]  # load columns it meters
    branch: str | None  # "trafo:<idx>" for a flow meter
    branches_determined: int


@dataclass(frozen=True)
class Observability:
    """Outcome of the check: observable or not, the islands, the meters that would make it so."""

    observable: bool
    rank_deficiency: int  # independent measurements missing (0 when observable)
    islands: tuple[Island, ...]  # largest first
    unobservable_buses: tuple[int, ...]  # pandapower buses outside the source's island
    suggestions: tuple[MeterSuggestion, ...]
    suggestions_verified: bool  # the numerical check passes with the suggestions added


def _h_matrix(
    topo: Topology, inj: npt.NDArray[np.bool_], flow: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """P-θ measurement matrix with unit susceptances (structure is what observability needs)."""
    n, nb = topo.n_bus, len(topo.f)
    rows: list[npt.NDArray[np.float64]] = []
    for b in np.flatnonzero(inj):
        r = np.zeros(n)
        for k in np.flatnonzero((topo.f == b) | (topo.t == b)):
            r[topo.f[k]] += 1.0 if topo.f[k] == b else -1.0
            r[topo.t[k]] += 1.0 if topo.t[k] == b else -1.0
        rows.append(r)
    for k in np.flatnonzero(flow[:nb]):
        r = np.zeros(n)
        r[topo.f[k]], r[topo.t[k]] = 1.0, -1.0
        rows.append(r)
    return np.vstack(rows) if rows else np.zeros((0, n))


def _numerical(
    topo: Topology, inj: npt.NDArray[np.bool_], flow: npt.NDArray[np.bool_]
) -> tuple[int, npt.NDArray[np.bool_]]:
    """Rank deficiency and which branches have a determined flow (null space of H)."""
    h = _h_matrix(topo, inj, flow)
    n = topo.n_bus
    if h.shape[0] == 0:
        return n - 1, np.zeros(len(topo.f), dtype=bool)
    _, s, vt = np.linalg.svd(h, full_matrices=True)
    tol = max(h.shape) * np.finfo(float).eps * (s[0] if len(s) else 1.0) * 1e3
    rank = int((s > tol).sum())
    null = vt[rank:].T  # n x (n - rank), includes the constant vector
    diff = np.abs(null[topo.f] - null[topo.t]).max(axis=1) if null.shape[1] else np.zeros(len(topo.f))
    return n - 1 - rank, diff < 1e-8


def _propagate(
    topo: Topology,
    adj: list[list[int]],
    inj: npt.NDArray[np.bool_],
    known: npt.NDArray[np.bool_],
    start: list[int],
) -> int:
    """Flow propagation from `start` buses, in place; returns the number of branches newly determined."""
    gained = 0
    queue = deque(start)
    while queue:
        b = queue.popleft()
        if not inj[b]:
            continue
        unknown = [k for k in adj[b] if not known[k]]
        if len(unknown) != 1:
            continue
        k = unknown[0]
        known[k] = True
        gained += 1
        queue.extend((int(topo.f[k]), int(topo.t[k])))
    return gained


def _islands(topo: Topology, known: npt.NDArray[np.bool_], volt: npt.NDArray[np.bool_]) -> list[Island]:
    parent = list(range(topo.n_bus))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for k in np.flatnonzero(known):
        parent[find(int(topo.f[k]))] = find(int(topo.t[k]))
    groups: dict[int, list[int]] = {}
    for b in range(topo.n_bus):
        groups.setdefault(find(b), []).append(b)
    src = set(topo.source_bus.tolist())
    out = [
        Island(
            buses=tuple(int(topo.bus_label[b]) for b in g),
            has_voltage=bool(volt[g].any()),
            has_source=bool(src & set(g)),
        )
        for g in groups.values()
    ]
    return sorted(out, key=lambda i: (not i.has_source, -len(i.buses)))


def check_observability(
    topo: Topology,
    load_measured: npt.NDArray[np.bool_],
    flow_branches: npt.NDArray[np.int64],
    voltage_buses: npt.NDArray[np.int64],
    *,
    suggest: bool = True,
    flow_candidates: bool = True,
    max_suggestions: int | None = None,
) -> Observability:
    """Check observability of one period's measurements and suggest meters for what is unobservable.

    load_measured: per load column, True if it has a usable measurement (real, or pseudo if
    the caller counts them); flow_branches: branch positions (in `topo`) with a flow meter;
    voltage_buses: buses with a voltage meter; max_suggestions: stop the greedy after that many
    (then `suggestions_verified` is False unless they already suffice).
    """
    n, nb = topo.n_bus, len(topo.f)
    has_app = np.zeros(n, dtype=bool)
    has_app[topo.load_bus] = True
    has_app[topo.source_bus] = True
    unmeasured = np.zeros(n, dtype=bool)
    unmeasured[topo.load_bus[~load_measured]] = True
    unmeasured[topo.source_bus] = True  # the source's injection is never metered here
    inj = ~unmeasured  # zero injection or every appliance measured
    flow = np.zeros(nb, dtype=bool)
    flow[flow_branches] = True
    volt = np.zeros(n, dtype=bool)
    volt[voltage_buses] = True
    deficiency, determined = _numerical(topo, inj, flow)
    islands = _islands(topo, determined, volt)
    observable = deficiency == 0 and bool(volt.any())
    main = set(islands[0].buses) if islands else set()
    unobs = tuple(sorted({int(b) for i in islands for b in i.buses} - main))
    suggestions: list[MeterSuggestion] = []
    verified = observable
    if suggest and not observable:
        suggestions = _greedy(topo, inj.copy(), flow.copy(), flow_candidates, max_suggestions)
        inj2, flow2 = inj.copy(), flow.copy()
        for s in suggestions:
            if s.kind == "site" and s.bus is not None:
                inj2[int(np.flatnonzero(topo.bus_label == s.bus)[0])] = True
            elif s.branch is not None:
                flow2[topo.branch_names.index(s.branch)] = True
        verified = _numerical(topo, inj2, flow2)[0] == 0
    return Observability(observable, deficiency, tuple(islands), unobs, tuple(suggestions), verified)


def _greedy(
    topo: Topology,
    inj: npt.NDArray[np.bool_],
    flow: npt.NDArray[np.bool_],
    flow_candidates: bool,
    max_suggestions: int | None,
) -> list[MeterSuggestion]:
    adj: list[list[int]] = [[] for _ in range(topo.n_bus)]
    for k in range(len(topo.f)):
        adj[int(topo.f[k])].append(k)
        adj[int(topo.t[k])].append(k)
    known = flow.copy()
    _propagate(topo, adj, inj, known, list(range(topo.n_bus)))
    loads_at: dict[int, list[int]] = {}
    for c, b in enumerate(topo.load_bus):
        loads_at.setdefault(int(b), []).append(c)
    trafo = (
        [k for k, nm in enumerate(topo.branch_names) if nm.startswith("trafo:")] if flow_candidates else []
    )
    out: list[MeterSuggestion] = []
    while not known.all() and (max_suggestions is None or len(out) < max_suggestions):
        best: tuple[
            int, MeterSuggestion | None, npt.NDArray[np.bool_] | None, npt.NDArray[np.bool_] | None
        ] = (0, None, None, None)
        for b, cols in loads_at.items():
            if inj[b] or sum(1 for k in adj[b] if not known[k]) != 1:
                continue  # metering it determines nothing by itself (see the module docstring)
            inj2, known2 = inj.copy(), known.copy()
            inj2[b] = True
            gain = _propagate(topo, adj, inj2, known2, [b])
            if gain > best[0]:
                sug = MeterSuggestion("site", int(topo.bus_label[b]), tuple(cols), None, gain)
                best = (gain, sug, inj2, known2)
        for k in trafo:
            if known[k]:
                continue
            known2 = known.copy()
            known2[k] = True
            gain = 1 + _propagate(topo, adj, inj, known2, [int(topo.f[k]), int(topo.t[k])])
            if gain > best[0]:
                best = (
                    gain,
                    MeterSuggestion("flow", None, (), topo.branch_names[k], gain),
                    inj.copy(),
                    known2,
                )
        if best[1] is None or best[2] is None or best[3] is None:
            break  # meshed net or an unmeterable bus: the numerical check says what is left
        out.append(best[1])
        inj, known = best[2], best[3]
    return out
