"""A pandapower net → the `DcNetwork` that pandapower's own `rundcopp` would solve.

What is kept, as pandapower's `_pd2ppc` does for the OPF: in-service buses, lines and
two-winding transformers; closed bus-bus switches fuse their buses; an open line or
transformer switch takes that branch out; buses that no in-service branch connects to a
reference bus (an `ext_grid`) are dropped with their elements. Several ext_grids in one island:
the one at the lowest bus holds the angle reference, the others are dispatchable units with
their limits and costs but a free angle — pandapower demotes them to PV generators. Injections: `ext_grid`s and
`gen`s are units (a gen with ``controllable = False`` is held at its ``p_mw``); sgens,
loads and storage are units when ``controllable`` is True, fixed injections
(``p_mw * scaling``) otherwise; shunts count as loads of ``p_mw * step * (vn_bus / vn_kv)²``.
Limits: ``min_p_mw`` / ``max_p_mw`` where given (a load's range flips sign), unbounded
otherwise. Elements the DC OPF here does not model (three-winding transformers,
impedances, wards, DC lines, …) raise a ConfigError when in service, rather than being
silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cloud_controller.grid.meshed.branches import line_params, trafo_params
from cloud_controller.grid.meshed.costs import read_costs
from cloud_controller.grid.meshed.network import DcNetwork
from protocols.errors import ConfigError

UNSUPPORTED = (
    "trafo3w",
    "impedance",
    "ward",
    "xward",
    "dcline",
    "tcsc",
    "svc",
    "ssc",
    "vsc",
    "line_dc",
    "motor",
    "asymmetric_load",
    "asymmetric_sgen",
)
UNIT_TABLES = ("ext_grid", "gen", "sgen", "load", "storage")  # pandapower's ppc gen order


class _Fuse:
    """Union-find over pandapower bus ids: closed bus-bus switches make one bus."""

    def __init__(self, ids: list[int]) -> None:
        self.parent = {b: b for b in ids}

    def find(self, b: int) -> int:
        while self.parent[b] != b:
            self.parent[b] = self.parent[self.parent[b]]
            b = self.parent[b]
        return b

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _in_service(df: Any) -> Any:
    return df[df.in_service.astype(bool)] if "in_service" in df.columns else df


def _check_supported(net: Any) -> None:
    for table in UNSUPPORTED:
        if table in net and len(net[table]) and len(_in_service(net[table])):
            raise ConfigError(f"in-service {table} elements are not modelled by the DC OPF", key=table)
    gen = _in_service(net.gen)
    if "slack" in gen.columns and gen.slack.fillna(False).astype(bool).any():
        raise ConfigError("slack gens are not supported; feed the net through ext_grids", key="gen")


def _open_branches(net: Any, table_code: str) -> set[int]:
    sw = net.switch
    if not len(sw):
        return set()
    hit = sw[(sw.et == table_code) & ~sw.closed.astype(bool)]
    return {int(e) for e in hit.element}


def _flag(df: Any, name: str, default: bool) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), default, dtype=bool)
    return np.asarray(df[name].fillna(default).astype(bool).to_numpy(), dtype=bool)


def _limits(df: Any, sign: float) -> tuple[np.ndarray, np.ndarray]:
    lo = df["min_p_mw"].to_numpy(dtype=float) if "min_p_mw" in df.columns else np.full(len(df), np.nan)
    hi = df["max_p_mw"].to_numpy(dtype=float) if "max_p_mw" in df.columns else np.full(len(df), np.nan)
    lo, hi = np.where(np.isfinite(lo), lo, -np.inf), np.where(np.isfinite(hi), hi, np.inf)
    return (lo, hi) if sign > 0 else (-hi, -lo)


def _fuse_buses(net: Any) -> _Fuse:
    fuse = _Fuse([int(b) for b in _in_service(net.bus).index])
    sw = net.switch
    if not len(sw):
        return fuse
    bb = sw[(sw.et == "b") & sw.closed.astype(bool)]
    for _, s in bb.iterrows():
        if "z_ohm" in bb.columns and float(s.z_ohm) > 0:
            raise ConfigError(f"bus-bus switch {s.name} with an impedance is not supported", key="switch")
        if int(s.bus) in fuse.parent and int(s.element) in fuse.parent:
            fuse.union(int(s.bus), int(s.element))
    return fuse


@dataclass
class _Branches:
    """In-service lines then transformers (pandapower's branch order), on pandapower bus ids."""

    names: list[str] = field(default_factory=list)
    f_pp: list[int] = field(default_factory=list)
    t_pp: list[int] = field(default_factory=list)
    b_pu: list[np.ndarray] = field(default_factory=list)
    shift_rad: list[np.ndarray] = field(default_factory=list)
    rating_mw: list[np.ndarray] = field(default_factory=list)

    def add(
        self, table: str, df: Any, f: Any, t: Any, b: np.ndarray, shift: np.ndarray, rate: np.ndarray
    ) -> None:
        self.names += [f"{table}:{i}" for i in df.index]
        self.f_pp += [int(x) for x in f]
        self.t_pp += [int(x) for x in t]
        self.b_pu.append(b)
        self.shift_rad.append(shift)
        self.rating_mw.append(rate)

    def stacked(self, parts: list[np.ndarray], keep: list[int]) -> np.ndarray:
        return (np.concatenate(parts) if parts else np.zeros(0))[keep]


def _branches(net: Any, alive: set[int]) -> _Branches:
    sn, vn = float(net.sn_mva), net.bus.vn_kv
    out = _Branches()
    line = _in_service(net.line)
    line = line[line.from_bus.isin(alive) & line.to_bus.isin(alive)]
    line = line[~line.index.isin(_open_branches(net, "l"))]
    if len(line):
        x, rate = line_params(line, vn.loc[line.from_bus].to_numpy(dtype=float), sn)
        out.add("line", line, line.from_bus, line.to_bus, 1.0 / x, np.zeros(len(line)), rate)
    trafo = _in_service(net.trafo)
    trafo = trafo[trafo.hv_bus.isin(alive) & trafo.lv_bus.isin(alive)]
    trafo = trafo[~trafo.index.isin(_open_branches(net, "t"))]
    if len(trafo):
        hv_kv = vn.loc[trafo.hv_bus].to_numpy(dtype=float)
        lv_kv = vn.loc[trafo.lv_bus].to_numpy(dtype=float)
        x, ratio, shift, rate = trafo_params(trafo, hv_kv, lv_kv, sn)
        out.add("trafo", trafo, trafo.hv_bus, trafo.lv_bus, 1.0 / (x * ratio), shift, rate)
    return out


def _islands(fuse: _Fuse, br: _Branches, roots: list[int]) -> dict[int, int]:
    """Island number of every fused bus reachable from a reference bus (breadth-first)."""
    adj: dict[int, list[int]] = {}
    for a, b in zip(br.f_pp, br.t_pp, strict=True):
        ra, rb = fuse.find(a), fuse.find(b)
        adj.setdefault(ra, []).append(rb)
        adj.setdefault(rb, []).append(ra)
    island_of: dict[int, int] = {}
    n = 0
    for root in (fuse.find(b) for b in roots):
        if root in island_of:
            continue
        island_of[root] = n
        stack = [root]
        while stack:
            u = stack.pop()
            for w in adj.get(u, []):
                if w not in island_of:
                    island_of[w] = n
                    stack.append(w)
        n += 1
    return island_of


@dataclass
class _Units:
    bus: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    lo: list[np.ndarray] = field(default_factory=list)
    hi: list[np.ndarray] = field(default_factory=list)
    ref_bus: list[int] = field(default_factory=list)
    ref_va: list[float] = field(default_factory=list)


def _injections(net: Any, at: Callable[[int], int], island: np.ndarray, fixed: np.ndarray) -> _Units:
    """Units in ppc gen order; fixed injections into `fixed` (load-positive); the island references."""
    out = _Units()
    for table in UNIT_TABLES:
        if table not in net or not len(net[table]):
            continue
        df = _in_service(net[table])
        df = df[np.array([at(int(b)) >= 0 for b in df.bus], dtype=bool)]  # a list [] would select columns
        # ext_grids and gens are always units (a non-controllable gen is held at its p_mw)
        ctrl = (
            np.ones(len(df), dtype=bool) if table in ("ext_grid", "gen") else _flag(df, "controllable", False)
        )
        sign = -1.0 if table in ("load", "storage") else 1.0
        if table != "ext_grid":
            scaling = df["scaling"].to_numpy(dtype=float) if "scaling" in df.columns else np.ones(len(df))
            for b, p in zip(df.bus[~ctrl], (df.p_mw.to_numpy(dtype=float) * scaling)[~ctrl], strict=True):
                fixed[at(int(b))] -= sign * p
        units = df[ctrl]
        lo, hi = _limits(units, sign)
        if table == "gen" and "controllable" in units.columns:
            held = ~_flag(units, "controllable", True)
            lo = np.where(held, units.p_mw.to_numpy(dtype=float), lo)
            hi = np.where(held, units.p_mw.to_numpy(dtype=float), hi)
        out.bus += [at(int(b)) for b in units.bus]
        out.names += [f"{table}:{i}" for i in units.index]
        out.lo.append(lo)
        out.hi.append(hi)
        if table == "ext_grid":
            # one angle reference per island: pandapower's `_check_connectivity_opf` keeps the
            # slack of the lowest ppc bus and demotes the others of its island to generators
            seen: set[int] = set()
            buses = [at(int(b)) for b in units.bus]
            for b, va in sorted(zip(buses, units.va_degree.to_numpy(dtype=float), strict=True)):
                if int(island[b]) not in seen:
                    seen.add(int(island[b]))
                    out.ref_bus.append(b)
                    out.ref_va.append(float(np.deg2rad(va)))
    return out


def _shunt_loads(net: Any, at: Callable[[int], int], fixed: np.ndarray) -> None:
    """Shunt active power at 1 pu: ``p_mw * step * (vn_bus / vn_kv)²`` (`_calc_shunts_and_add_on_ppc`)."""
    if not len(net.shunt):
        return
    vn = net.bus.vn_kv
    for _, s in _in_service(net.shunt).iterrows():
        i = at(int(s.bus))
        if i >= 0:
            vn_bus = float(vn.at[int(s.bus)])
            vn_s = float(s.vn_kv) if np.isfinite(float(s.vn_kv)) else vn_bus
            fixed[i] += float(s.p_mw) * float(s.step) * (vn_bus / vn_s) ** 2


def dc_network_from_pandapower(net: Any) -> DcNetwork:
    """Translate a pandapower net; raises ConfigError for what the DC OPF cannot model."""
    _check_supported(net)
    fuse = _fuse_buses(net)
    alive = set(fuse.parent)
    br = _branches(net, alive)
    eg = _in_service(net.ext_grid)
    eg = eg[eg.bus.isin(alive)]
    if not len(eg):
        raise ConfigError("no in-service ext_grid: a DC OPF needs a reference bus", key="ext_grid")
    island_of = _islands(fuse, br, [int(b) for b in eg.bus])
    reps = sorted(island_of)
    index = {b: i for i, b in enumerate(reps)}

    def at(pp_bus: int) -> int:
        return index.get(fuse.find(pp_bus), -1) if pp_bus in alive else -1

    island = np.asarray([island_of[b] for b in reps], dtype=np.int64)
    keep = [k for k, a in enumerate(br.f_pp) if at(a) >= 0]
    fixed = np.zeros(len(reps))
    units = _injections(net, at, island, fixed)
    _shunt_loads(net, at, fixed)
    p_min = np.concatenate(units.lo) if units.lo else np.zeros(0)
    p_max = np.concatenate(units.hi) if units.hi else np.zeros(0)
    costs = read_costs(net, tuple(units.names))
    return DcNetwork(
        base_mva=float(net.sn_mva),
        bus_ids=np.asarray(reps, dtype=np.int64),
        island=island,
        ref_bus=np.asarray(units.ref_bus, dtype=np.int64),
        ref_va_rad=np.asarray(units.ref_va),
        fixed_load_mw=fixed,
        branch_from=np.asarray([at(br.f_pp[k]) for k in keep], dtype=np.int64),
        branch_to=np.asarray([at(br.t_pp[k]) for k in keep], dtype=np.int64),
        branch_b_pu=br.stacked(br.b_pu, keep),
        branch_shift_rad=br.stacked(br.shift_rad, keep),
        branch_rating_mw=br.stacked(br.rating_mw, keep),
        branch_names=tuple(br.names[k] for k in keep),
        unit_bus=np.asarray(units.bus, dtype=np.int64),
        unit_names=tuple(units.names),
        unit_p_min_mw=p_min,
        unit_p_max_mw=p_max,
        cost_c0_eur=costs.c0,
        cost_c1_eur_per_mw=costs.c1,
        cost_c2_eur_per_mw2=costs.c2,
        cost_pwl=costs.pwl,
        cost_note=costs.note,
    )
