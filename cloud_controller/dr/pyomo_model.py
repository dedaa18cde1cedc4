"""The selection MILP stated in pyomo (the layer to read and extend), loaded into HiGHS via an LP file.

The same families as `matrix.py`'s numpy builder (its docstring lists them); the hand
cases in `tests/unit/dr/test_selection.py` solve both and compare. As in
`cloud_controller.dispatch.model.pyomo_model`, the model is written as an LP file with
symbolic names, read by `highspy`, and the answer's columns found through pyomo's symbol
map, so HiGHS is called the same way whichever builder made the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyomo.environ as pyo

from cloud_controller.dr.inputs import IntArray, MilpInputs, needs_binary, source_costs, unmet_cost
from cloud_controller.highs.pyomo_lp import load_pyomo_model

__all__ = ["build_model", "load_pyomo"]


def build_model(x: MilpInputs) -> Any:
    """A pyomo ConcreteModel of the selection (no solve)."""
    m = pyo.ConcreteModel(name="gridflex_dr_selection")
    n_r, n_t = x.up_max.shape
    R, T = range(n_r), range(n_t)
    c_up, c_dn = source_costs(x)
    c_unmet = unmet_cost(x)
    m.up = pyo.Var(R, T, bounds=lambda _m, r, t: (0.0, float(x.up_max[r, t])))
    m.dn = pyo.Var(R, T, bounds=lambda _m, r, t: (0.0, float(x.dn_max[r, t])))
    m.unmet = pyo.Var(T, bounds=lambda _m, t: (0.0, float(x.target_abs_kw[t])))

    # a source gives flexibility up or down in a step, never both
    need = needs_binary(x)  # elsewhere the answer is netted after the solve (see inputs.needs_binary)
    both = [(r, t) for r in R for t in T if need[r, t]]
    m.z = pyo.Var(both, domain=pyo.Binary)
    m.excl_up = pyo.Constraint(both, rule=lambda _m, r, t: m.up[r, t] <= float(x.up_max[r, t]) * m.z[r, t])
    m.excl_dn = pyo.Constraint(
        both, rule=lambda _m, r, t: m.dn[r, t] <= float(x.dn_max[r, t]) * (1 - m.z[r, t])
    )
    onoff = [(r, t) for r in R for t in T if not x.partial[r]]
    m.yu = pyo.Var(onoff, domain=pyo.Binary)
    m.yd = pyo.Var(onoff, domain=pyo.Binary)
    m.onoff_up = pyo.Constraint(onoff, rule=lambda _m, r, t: m.up[r, t] == float(x.up_max[r, t]) * m.yu[r, t])
    m.onoff_dn = pyo.Constraint(onoff, rule=lambda _m, r, t: m.dn[r, t] == float(x.dn_max[r, t]) * m.yd[r, t])
    m.onoff_one = pyo.Constraint(onoff, rule=lambda _m, r, t: m.yu[r, t] + m.yd[r, t] <= 1)

    _physics(m, x)

    # each step: the delivery in the request's direction plus the unmet kW is the request
    m.step = pyo.Constraint(
        T,
        rule=lambda _m, t: (
            float(x.sign[t]) * sum(m.up[r, t] - m.dn[r, t] for r in R) + m.unmet[t]
            == float(x.target_abs_kw[t])
        ),
    )
    # contracts and feeders
    L = range(x.limit_site.size)
    members = [[r for r in R if x.site_of[r] == x.limit_site[k]] for k in L]
    m.site = pyo.Constraint(
        L, T, rule=lambda _m, k, t: sum(m.up[r, t] + m.dn[r, t] for r in members[k]) <= float(x.limit_kw[k])
    )
    F = range(len(x.feeder_sites))
    under = [[r for r in R if x.site_of[r] in set(x.feeder_sites[k].tolist())] for k in F]
    m.feeder = pyo.Constraint(
        F,
        T,
        rule=lambda _m, k, t: pyo.inequality(
            -float(x.feeder_red[k, t]),
            sum(m.up[r, t] - m.dn[r, t] for r in under[k]),
            float(x.feeder_inc[k, t]),
        ),
    )

    obj = sum(float(c_up[r, t]) * m.up[r, t] + float(c_dn[r, t]) * m.dn[r, t] for r in R for t in T)
    obj += sum(float(c_unmet[t]) * m.unmet[t] for t in T)
    obj += _objective_columns(m, x)
    m.obj = pyo.Objective(expr=obj, sense=pyo.minimize)
    return m


def _physics(m: Any, x: MilpInputs) -> None:
    """Batteries' SOC and heat pumps' zones, step by step."""
    n_t = x.n_steps
    T = range(n_t)
    # batteries: e_t = e_{t-1} + η_e Δt up − Δt/η_c dn, between the SOC floor and ceiling
    dt = x.dt_h
    B = range(x.bat_rows.size)
    m.e = pyo.Var(B, T, bounds=lambda _m, b, t: (float(x.bat_e_min[b]), float(x.bat_e_max[b])))

    def soc(_m: Any, b: int, t: int) -> Any:
        r = int(x.bat_rows[b])
        prev = m.e[b, t - 1] if t > 0 else float(x.bat_e0[b])
        return (
            m.e[b, t]
            == prev + float(x.bat_eta_c[b]) * dt * m.up[r, t] - dt / float(x.bat_eta_d[b]) * m.dn[r, t]
        )

    m.soc = pyo.Constraint(B, T, rule=soc)

    # heat pumps: the zone's deviation from its baseline, inside the comfort band
    H = range(x.hp_rows.size)
    m.dT = pyo.Var(H, T, bounds=lambda _m, k, t: (float(x.hp_lo[k, t]), float(x.hp_hi[k, t])))

    def zone(_m: Any, k: int, t: int) -> Any:
        r = int(x.hp_rows[k])
        prev = float(x.hp_decay[k]) * m.dT[k, t - 1] if t > 0 else 0.0
        return m.dT[k, t] == prev + float(x.hp_gain[k, t]) * (m.up[r, t] - m.dn[r, t])

    m.zone = pyo.Constraint(H, T, rule=zone)


def _objective_columns(m: Any, x: MilpInputs) -> Any:
    """The objective's own columns and rows (bid length, power peak); their objective term."""
    T = range(x.n_steps)
    if x.objective == "bid_length":
        m.bid = pyo.Var(T, domain=pyo.Binary)
        m.bid_min = pyo.Constraint(
            T, rule=lambda _m, t: m.unmet[t] + x.bid_min_kw * m.bid[t] <= float(x.target_abs_kw[t])
        )
        return -sum(m.bid[t] for t in T)
    elif x.objective == "power_peak":
        big_m = float(x.target_abs_kw.max(initial=0.0))
        m.peak = pyo.Var(bounds=(0.0, big_m))
        m.w = pyo.Var(T, domain=pyo.Binary)
        m.one_peak = pyo.Constraint(expr=sum(m.w[t] for t in T) == 1)
        m.peak_at = pyo.Constraint(
            T, rule=lambda _m, t: m.peak + m.unmet[t] + big_m * m.w[t] <= big_m + float(x.target_abs_kw[t])
        )
        return -m.peak
    return 0.0


def load_pyomo(x: MilpInputs, h: Any) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Write `build_model(x)` as an LP file, read it into `h`; return the columns of up, dn, unmet and z."""
    model = build_model(x)
    smap = load_pyomo_model(model, h)
    cols = {name: i for i, name in enumerate(h.getLp().col_names_)}
    n_r, n_t = x.up_max.shape

    def where(comp: Any, shape: tuple[int, ...]) -> IntArray:
        out = np.full(shape, -1, dtype=np.int64)
        for key in comp:
            label = smap.byObject.get(id(comp[key]))
            if label is not None and label in cols:
                out[key] = cols[label]
        return out

    up, dn, unmet = where(model.up, (n_r, n_t)), where(model.dn, (n_r, n_t)), where(model.unmet, (n_t,))
    labels = (smap.byObject.get(id(model.z[key])) for key in model.z)
    z = np.array([cols[label] for label in labels if label in cols], dtype=np.int64)
    # a column fixed at zero (cap 0) may be dropped from the LP file: read it as 0 through a spare index
    return _fill_missing(up, h), _fill_missing(dn, h), _fill_missing(unmet, h), z


def _fill_missing(ix: IntArray, h: Any) -> IntArray:
    """Point columns the LP file left out (fixed at 0, in no row) at a new empty column fixed at 0."""
    if np.all(ix >= 0):
        return ix
    spare = int(h.getNumCol())
    h.addVar(0.0, 0.0)
    out = ix.copy()
    out[out < 0] = spare
    return out
