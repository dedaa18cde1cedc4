"""The dispatch LP stated once in pyomo (the layer users read and extend).

Periods t = 0..T-1 (T = 1: the Schutterwald study's per-step rolling-horizon OPF; T > 1: MPC). Values
that change between calls (loads, PV, heat, COP, SOC at t=0, costs, limits) are written
with placeholder numbers; `highs.session.LpSession` changes them directly in HiGHS.
`lp.py` builds the same LP with numpy for speed; both are checked against the family table
(`families.py`) by `tests/unit/dispatch/test_lp_builder.py`, so a change here needs the
same change there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyomo.environ as pyo

from cloud_controller.dispatch.model.families import FAMILIES, shape
from cloud_controller.dispatch.model.lp import LpIndex
from cloud_controller.dispatch.model.problem import BIG, IntArray, Problem
from cloud_controller.highs.pyomo_lp import load_pyomo_model


def build_model(problem: Problem) -> Any:
    """Return a pyomo ConcreteModel of `problem` (no solve)."""
    p = problem
    g = p.grid
    w = p.weights
    dt = p.dt_h
    m = pyo.ConcreteModel(name="gridflex_dispatch")
    T = range(p.horizon)
    S = range(p.n_sites)
    SPV = [int(s) for s in p.pv_sites]
    SSH = list(S) if p.has_shed else []
    B = range(p.n_bat)
    H = range(p.n_hp)
    HS = [h for h in H if p.ts_e_max_kwh[h] > 0]
    U = range(p.n_units)
    K = range(g.n_branch)
    N = range(g.n_bus)
    KL = [k for k in K if np.isfinite(g.rating_kw[k]) and p.enforce_branches]

    m.cop = pyo.Param(T, mutable=True, initialize=3.0)

    m.p_imp = pyo.Var(S, T, bounds=(0, None))
    m.p_exp = pyo.Var(S, T, bounds=(0, None))
    m.curt = pyo.Var(SPV, T, bounds=(0, 0))
    m.shed = pyo.Var(SSH, T, bounds=(0, None))
    m.ch = pyo.Var(B, T, bounds=lambda _m, b, t: (0, float(p.bat_p_max_kw[b])))
    m.dis = pyo.Var(B, T, bounds=lambda _m, b, t: (0, float(p.bat_p_max_kw[b])))
    m.e_bat = pyo.Var(B, T, bounds=lambda _m, b, t: (float(p.bat_e_min_kwh[b]), float(p.bat_e_max_kwh[b])))
    m.hp = pyo.Var(H, T, bounds=lambda _m, h, t: (0, float(p.hp_p_max_kw[h])))
    m.unmet = pyo.Var(H, T, bounds=(0, None))
    m.q_ch = pyo.Var(HS, T, bounds=(0, None))
    m.q_dis = pyo.Var(HS, T, bounds=(0, None))
    m.e_ts = pyo.Var(HS, T, bounds=lambda _m, h, t: (0, float(p.ts_e_max_kwh[h])))
    m.u = pyo.Var(U, T, bounds=lambda _m, u, t: (float(p.unit_p_min_kw[u]), float(p.unit_p_max_kw[u])))
    m.z_u = pyo.Var(U, T)
    lo = None if not np.isfinite(p.root_p_min_kw) else p.root_p_min_kw
    hi = None if not np.isfinite(p.root_p_max_kw) else p.root_p_max_kw
    m.p_root = pyo.Var(T, bounds=(lo, hi))
    m.z_root = pyo.Var(T)
    m.f = pyo.Var(K, T)
    m.s_up = pyo.Var(KL, T, bounds=(0, None))
    m.s_dn = pyo.Var(KL, T, bounds=(0, None))
    m.v = pyo.Var(N, T, bounds=lambda _m, n, t: (g.v_root_pu, g.v_root_pu) if n == g.root else (None, None))
    m.sv_up = pyo.Var(N, T, bounds=(0, None))
    m.sv_dn = pyo.Var(N, T, bounds=(0, None))
    m.s_st = pyo.Var(T, bounds=(0, None))
    m.s_st_feed = pyo.Var(T, bounds=(0, None))

    bats_at: dict[int, list[int]] = {}
    for b in B:
        bats_at.setdefault(int(p.bat_site[b]), []).append(b)
    hps_at: dict[int, list[int]] = {}
    for h in H:
        hps_at.setdefault(int(p.hp_site[h]), []).append(h)

    pv_set = set(SPV)

    def site_balance(_m: Any, s: int, t: int) -> Any:
        # p_imp - p_exp = base + ch - dis + hp + curt - shed ; base is the RHS
        expr = m.p_imp[s, t] - m.p_exp[s, t]
        if s in pv_set:
            expr = expr - m.curt[s, t]
        if p.has_shed:
            expr = expr + m.shed[s, t]
        for b in bats_at.get(s, []):
            expr = expr - m.ch[b, t] + m.dis[b, t]
        for h in hps_at.get(s, []):
            expr = expr - m.hp[h, t]
        return expr == 0.0

    m.site_balance = pyo.Constraint(S, T, rule=site_balance)

    def heat_balance(_m: Any, h: int, t: int) -> Any:
        expr = m.cop[t] * m.hp[h, t] + m.unmet[h, t]
        if h in HS:
            expr = expr + m.q_dis[h, t] - m.q_ch[h, t]
        return expr == 0.0

    m.heat_balance = pyo.Constraint(H, T, rule=heat_balance)

    def bat_soc(_m: Any, b: int, t: int) -> Any:
        prev = m.e_bat[b, t - 1] if t > 0 else 0.0
        return m.e_bat[b, t] - prev - p.bat_eta_c * dt * m.ch[b, t] + dt / p.bat_eta_d * m.dis[b, t] == 0.0

    m.bat_soc = pyo.Constraint(B, T, rule=bat_soc)

    keep = 1.0 - p.ts_loss_per_step

    def ts_soc(_m: Any, h: int, t: int) -> Any:
        prev = keep * m.e_ts[h, t - 1] if t > 0 else 0.0
        return m.e_ts[h, t] - prev - dt * m.q_ch[h, t] + dt * m.q_dis[h, t] == 0.0

    m.ts_soc = pyo.Constraint(HS, T, rule=ts_soc)

    sites_at: dict[int, list[int]] = {}
    for s in S:
        sites_at.setdefault(int(p.site_bus[s]), []).append(s)
    units_at: dict[int, list[int]] = {}
    for u in U:
        units_at.setdefault(int(p.unit_bus[u]), []).append(u)
    out_of: dict[int, list[int]] = {}
    for k in K:
        out_of.setdefault(int(g.parent[k]), []).append(k)
    into = {int(g.child[k]): k for k in K}

    def bus_balance(_m: Any, n: int, t: int) -> Any:
        expr = m.p_root[t] if n == g.root else m.f[into[n], t]
        for k in out_of.get(n, []):
            expr = expr - m.f[k, t]
        for s in sites_at.get(n, []):
            expr = expr - m.p_imp[s, t] + m.p_exp[s, t]
        for u in units_at.get(n, []):
            expr = expr - m.u[u, t]
        return expr == 0.0

    m.bus_balance = pyo.Constraint(N, T, rule=bus_balance)
    m.branch_up = pyo.Constraint(
        KL, T, rule=lambda _m, k, t: m.f[k, t] - m.s_up[k, t] <= float(g.rating_kw[k])
    )
    m.branch_dn = pyo.Constraint(
        KL, T, rule=lambda _m, k, t: -m.f[k, t] - m.s_dn[k, t] <= float(g.rating_kw[k])
    )
    m.vdrop = pyo.Constraint(
        K,
        T,
        rule=lambda _m, k, t: (
            m.v[int(g.child[k]), t] - m.v[int(g.parent[k]), t] + float(g.r_pu_per_kw[k]) * m.f[k, t] == 0.0
        ),
    )
    vmax = g.v_max_pu if p.enforce_voltage else np.full(g.n_bus, BIG)
    vmin = g.v_min_pu if p.enforce_voltage else np.full(g.n_bus, -BIG)
    m.v_up = pyo.Constraint(N, T, rule=lambda _m, n, t: m.v[n, t] - m.sv_up[n, t] <= float(vmax[n]))
    m.v_dn = pyo.Constraint(N, T, rule=lambda _m, n, t: -m.v[n, t] - m.sv_dn[n, t] <= -float(vmin[n]))
    m.station_up = pyo.Constraint(T, rule=lambda _m, t: m.p_root[t] - m.s_st[t] <= BIG)
    m.station_dn = pyo.Constraint(T, rule=lambda _m, t: -m.p_root[t] - m.s_st_feed[t] <= BIG)

    def unit_epi(_m: Any, u: int, t: int, k: int) -> Any:
        c = p.unit_cost[u]
        if k >= len(c.slopes):
            return pyo.Constraint.Skip
        return m.z_u[u, t] - c.slopes[k] * float(p.unit_sign[u]) * m.u[u, t] >= c.offsets[k]

    nseg = max([len(c.slopes) for c in p.unit_cost] + [1])
    m.unit_epi = pyo.Constraint(U, T, range(nseg), rule=unit_epi)
    rc = p.root_cost
    if rc is not None:
        m.root_epi = pyo.Constraint(
            T,
            range(len(rc.slopes)),
            rule=lambda _m, t, k: m.z_root[t] - rc.slopes[k] * m.p_root[t] >= rc.offsets[k],
        )
    else:
        m.root_epi = pyo.Constraint(T, rule=lambda _m, t: m.z_root[t] == 0.0)

    eta_c, eta_d = p.bat_eta_c, p.bat_eta_d
    obj = 0.0
    for t in T:
        obj += sum(w.c_import * dt * m.p_imp[s, t] - w.c_export * dt * m.p_exp[s, t] for s in S)
        obj += sum(w.c_curtail * dt * m.curt[s, t] for s in SPV)
        obj += sum(w.pen_shed * dt * m.shed[s, t] for s in SSH)
        obj += sum(
            -w.bat_w_charge * eta_c * dt * m.ch[b, t]
            + (w.bat_w_discharge / eta_d + w.c_throughput) * dt * m.dis[b, t]
            for b in B
        )
        obj += sum(
            -w.ts_w_charge * dt * m.q_ch[h, t] + (w.ts_w_discharge + w.c_throughput) * dt * m.q_dis[h, t]
            for h in HS
        )
        obj += sum(w.pen_heat_unmet * dt * m.unmet[h, t] for h in H)
        obj += sum(w.pen_branch * dt * (m.s_up[k, t] + m.s_dn[k, t]) for k in KL)
        obj += sum(w.pen_voltage_per_pu * (m.sv_up[n, t] + m.sv_dn[n, t]) for n in N)
        obj += w.pen_station * dt * (m.s_st[t] + m.s_st_feed[t])
        obj += sum(m.z_u[u, t] for u in U) + m.z_root[t]
    m.obj = pyo.Objective(expr=obj, sense=pyo.minimize)
    return m


def _index(smap: Any, comp: Any, shape: tuple[int, ...], keyfn: Any, names: dict[str, int]) -> IntArray:
    out = np.full(shape, -1, dtype=np.int64)
    for key in comp:
        obj = comp[key]
        label = smap.byObject.get(id(obj))
        if label is None:
            continue
        pos = names.get(label)
        if pos is not None:
            out[keyfn(key)] = pos
    return out


def pyomo_lp(problem: Problem, h: Any) -> LpIndex:
    """Write `build_model`'s pyomo model as an LP file with symbolic names and load it into `h`.

    Then map every family to its HiGHS columns/rows through pyomo's symbol map.
    """
    model = build_model(problem)
    smap = load_pyomo_model(model, h)
    lp = h.getLp()
    cols = {n: i for i, n in enumerate(lp.col_names_)}
    rows = {n: i for i, n in enumerate(lp.row_names_)}
    p = problem
    hs = [k for k in range(p.n_hp) if p.ts_e_max_kwh[k] > 0]
    pos_hs = {k: i for i, k in enumerate(hs)}

    def st(k: Any) -> tuple[int, int]:
        return (int(k[1]), int(k[0]))

    def hs_key(k: Any) -> tuple[int, int]:
        return (int(k[1]), pos_hs[int(k[0])])

    families: dict[str, IntArray] = {}
    for fam in FAMILIES:
        if fam.pyomo is None:
            continue
        keyfn = int if fam.entity == "" else hs_key if fam.entity == "store" else st
        names = cols if fam.is_column else rows
        families[fam.field] = _index(smap, getattr(model, fam.pyomo), shape(p, fam), keyfn, names)
    return LpIndex(
        **families,
        hs=np.asarray(hs, dtype=np.int64),
        n_cols=len(lp.col_names_),
        n_rows=len(lp.row_names_),
    )
