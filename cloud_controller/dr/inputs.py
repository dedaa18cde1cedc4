"""What both builders of the selection MILP share: the problem as arrays, the objective's coefficients, the binaries' cells.

`matrix.py` (numpy) and `pyomo_model.py` (the statement) build the same MILP from a
`MilpInputs`; the coefficients of the objective and the cells that need an exclusivity
binary are decided here once, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cloud_controller.dr.problem import Feeder, FloatArray, SelectionRequest, SiteLimit, Source

__all__ = ["IntArray", "MilpInputs", "inputs_of", "needs_binary", "source_costs", "unmet_cost"]

IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class MilpInputs:
    """The problem as arrays (sources × steps), shared by both builders."""

    n_steps: int
    dt_h: float
    target_abs_kw: FloatArray  # |target| per step
    sign: FloatArray  # +1 increase, −1 reduce, per step
    up_max: FloatArray  # (R, T)
    dn_max: FloatArray  # (R, T)
    partial: NDArray[np.bool_]  # (R,)
    cost: FloatArray  # (R,) €/kWh paid to the site
    value: FloatArray  # (T,) €/kWh or weight
    value_is_weight: bool
    objective: str
    bid_min_kw: float
    loss_price: float
    bat_rows: IntArray  # source index of each battery
    bat_e0: FloatArray
    bat_e_min: FloatArray
    bat_e_max: FloatArray
    bat_eta_c: FloatArray  # η_e (charge)
    bat_eta_d: FloatArray  # η_c (discharge)
    hp_rows: IntArray
    hp_decay: FloatArray  # a = exp(−Δt/τ)
    hp_gain: FloatArray  # (H, T): (1 − a)·R·COP_t, K per kW electric
    hp_lo: FloatArray  # (H, T): t_min − T_base (not above 0)
    hp_hi: FloatArray  # (H, T): t_max − T_base (not below 0)
    site_of: IntArray  # (R,) site index
    sites: tuple[str, ...]
    limit_site: IntArray
    limit_kw: FloatArray
    feeder_sites: tuple[IntArray, ...]
    feeder_inc: FloatArray  # (F, T)
    feeder_red: FloatArray  # (F, T)
    epsilon: float  # weight of the secondary "deliver the rest" term
    big: float  # min_cost's price of an unmet kWh


def inputs_of(
    request: SelectionRequest,
    sources: Sequence[Source],
    limits: Sequence[SiteLimit],
    feeders: Sequence[Feeder],
) -> MilpInputs:
    """Arrays of the (validated) problem."""
    n = request.n_steps
    dt = request.dt_h
    target = np.asarray(request.target_kw, dtype=np.float64).reshape(n)
    sites = tuple(sorted({s.site for s in sources}))
    site_ix = {s: i for i, s in enumerate(sites)}
    bats = [i for i, s in enumerate(sources) if s.battery is not None]
    hps = [i for i, s in enumerate(sources) if s.zone is not None]
    hp_decay = np.array(
        [np.exp(-dt / (sources[i].zone.r_k_per_kw * sources[i].zone.c_kwh_per_k)) for i in hps]  # type: ignore[union-attr]
    ).reshape(len(hps))
    hp_gain = np.zeros((len(hps), n))
    hp_lo = np.zeros((len(hps), n))
    hp_hi = np.zeros((len(hps), n))
    for k, i in enumerate(hps):
        z = sources[i].zone
        assert z is not None
        hp_gain[k] = (1.0 - hp_decay[k]) * z.r_k_per_kw * np.asarray(z.cop, dtype=np.float64)
        t_base = np.asarray(z.t_base_c, dtype=np.float64)
        hp_lo[k] = np.minimum(z.t_min_c - t_base, 0.0)  # a zone already out may stay on its baseline
        hp_hi[k] = np.maximum(z.t_max_c - t_base, 0.0)
    value = np.broadcast_to(np.asarray(request.value_per_kwh, dtype=np.float64), (n,)).copy()
    cost = np.array([s.cost_eur_per_kwh for s in sources], dtype=np.float64)
    total_kwh = float(np.abs(target).sum() * dt)
    return MilpInputs(
        n_steps=n,
        dt_h=dt,
        target_abs_kw=np.abs(target),
        sign=np.where(target >= 0, 1.0, -1.0),
        up_max=np.array(
            [np.asarray(s.increase_max_kw, dtype=np.float64) * np.ones(n) for s in sources]
        ).reshape(len(sources), n),
        dn_max=np.array(
            [np.asarray(s.reduce_max_kw, dtype=np.float64) * np.ones(n) for s in sources]
        ).reshape(len(sources), n),
        partial=np.array([s.partial for s in sources], dtype=bool),
        cost=cost,
        value=value,
        value_is_weight=request.value_is_weight,
        objective=request.objective,
        bid_min_kw=request.bid_min_kw,
        loss_price=request.loss_price_eur_per_kwh,
        bat_rows=np.array(bats, dtype=np.int64),
        bat_e0=np.array([sources[i].battery.e_start_kwh for i in bats]),  # type: ignore[union-attr]
        bat_e_min=np.array([sources[i].battery.e_min_kwh for i in bats]),  # type: ignore[union-attr]
        bat_e_max=np.array([sources[i].battery.e_max_kwh for i in bats]),  # type: ignore[union-attr]
        bat_eta_c=np.array([sources[i].battery.eta_charge for i in bats]),  # type: ignore[union-attr]
        bat_eta_d=np.array([sources[i].battery.eta_discharge for i in bats]),  # type: ignore[union-attr]
        hp_rows=np.array(hps, dtype=np.int64),
        hp_decay=hp_decay,
        hp_gain=hp_gain,
        hp_lo=hp_lo,
        hp_hi=hp_hi,
        site_of=np.array([site_ix[s.site] for s in sources], dtype=np.int64),
        sites=sites,
        limit_site=np.array([site_ix[lim.site] for lim in limits], dtype=np.int64),
        limit_kw=np.array([lim.p_max_kw for lim in limits], dtype=np.float64),
        feeder_sites=tuple(
            np.array(sorted(site_ix[s] for s in f.sites if s in site_ix), dtype=np.int64) for f in feeders
        ),
        feeder_inc=np.array(
            [np.maximum(np.asarray(f.increase_headroom_kw, dtype=np.float64), 0.0) for f in feeders]
        ).reshape(len(feeders), n),
        feeder_red=np.array(
            [np.maximum(np.asarray(f.reduce_headroom_kw, dtype=np.float64), 0.0) for f in feeders]
        ).reshape(len(feeders), n),
        epsilon=1e-4 / max(1.0, total_kwh),
        big=1e3 * (1.0 + float(cost.max(initial=0.0)) + request.loss_price_eur_per_kwh),
    )


def source_costs(x: MilpInputs) -> tuple[FloatArray, FloatArray]:
    """Objective coefficients (per kW per step) of up and dn, (R, T) each, for the chosen objective."""
    dt = x.dt_h
    n_r, n_t = x.up_max.shape
    c_up = np.zeros((n_r, n_t))
    c_dn = np.zeros((n_r, n_t))
    if x.objective in ("financial", "min_cost") and not x.value_is_weight:
        c_up += x.cost[:, None] * dt
        c_dn += x.cost[:, None] * dt
    if x.objective == "min_cost" and x.bat_rows.size:
        c_up[x.bat_rows] += ((1.0 - x.bat_eta_c) * x.loss_price * dt)[:, None]
        c_dn[x.bat_rows] += ((1.0 / x.bat_eta_d - 1.0) * x.loss_price * dt)[:, None]
    return c_up, c_dn


def unmet_cost(x: MilpInputs) -> FloatArray:
    """Objective coefficient of unmet kW per step."""
    dt = x.dt_h
    if x.objective == "flexibility":
        return np.full(x.n_steps, dt)
    if x.objective == "financial":
        return x.value * dt + x.epsilon * dt
    if x.objective == "min_cost":
        return np.full(x.n_steps, x.big * dt)
    return np.full(x.n_steps, x.epsilon * dt)  # bid_length, power_peak: deliver the rest second


def needs_binary(x: MilpInputs) -> NDArray[np.bool_]:
    """(R, T): the cells whose up/down exclusivity needs a binary; elsewhere netting after the solve keeps it.

    Netting a cell (up, dn) to (max(up − dn, 0), max(dn − up, 0)) keeps its net, so every
    step's delivery, the zone's path (it sees only the net), the feeders (net) and every
    objective (costs are ≥ 0 per kW, so they only fall); the site rows (Σ up + dn) only
    loosen. For a battery it also leaves more energy stored (η_e ≤ 1/η_c), which is
    harmless unless the battery could reach its ceiling during the event: only those
    batteries, the ones a burn (charging and discharging at once) could help, get binaries.
    """
    need = np.zeros(x.up_max.shape, dtype=bool)
    if x.bat_rows.size:
        charge_kwh = np.cumsum(x.up_max[x.bat_rows], axis=1) * x.dt_h * x.bat_eta_c[:, None]
        reach = (x.bat_e0[:, None] + charge_kwh).max(axis=1) >= x.bat_e_max - 1e-9
        rows = x.bat_rows[reach]
        need[rows] = True
    return need & x.partial[:, None] & (x.up_max > 0) & (x.dn_max > 0)
