"""Synthetic fleets on replicated grids: the sizes the step and MPC parts run at."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cloud_controller.dispatch import FloatArray, IntArray, SiteAssets, StepInputs, StorageState
from cloud_controller.grid import RadialGrid

BAT_P_KW = 10.0
BAT_E_KWH = 16.0
HP_P_KW = 3.0  # electric
TS_E_KWH = 11.6  # thermal store beside each heat pump: without one the HP has no freedom
DT_H = 0.25


# -- grids ------------------------------------------------------------------------------------


def replicate_radial(grid: RadialGrid, copies: int) -> RadialGrid:
    """`copies` copies of `grid` hung from one shared root bus (the copies' roots are merged).

    Why merge roots instead of adding a link branch: each copy already starts with its own
    HV/MV transformer at the root, so merged roots give K parallel substations behind one
    slack, i.e. a larger region with the same per-feeder structure. Internal bus index 0 is
    the root; copy c's non-root buses follow in the original order. `bus_ids` are the
    internal indices (pandapower ids are not unique across copies).
    """
    if copies < 1:
        raise ValueError("copies must be >= 1")
    n = grid.n_bus
    new_index = replicated_bus_index(grid, copies)  # (copies, n)
    parent = np.concatenate([new_index[c, grid.parent] for c in range(copies)])
    child = np.concatenate([new_index[c, grid.child] for c in range(copies)])
    others = np.delete(np.arange(n), grid.root)
    n_new = 1 + copies * (n - 1)
    v_min = np.empty(n_new)
    v_max = np.empty(n_new)
    v_min[0], v_max[0] = grid.v_min_pu[grid.root], grid.v_max_pu[grid.root]
    v_min[1:] = np.tile(grid.v_min_pu[others], copies)
    v_max[1:] = np.tile(grid.v_max_pu[others], copies)
    return RadialGrid(
        bus_ids=np.arange(n_new, dtype=np.int64),
        root=0,
        parent=parent.astype(np.int64),
        child=child.astype(np.int64),
        rating_kw=np.tile(grid.rating_kw, copies),
        r_pu_per_kw=np.tile(grid.r_pu_per_kw, copies),
        branch_names=tuple(f"c{c}/{name}" for c in range(copies) for name in grid.branch_names),
        v_root_pu=grid.v_root_pu,
        v_min_pu=v_min,
        v_max_pu=v_max,
    )


def replicated_bus_index(grid: RadialGrid, copies: int) -> IntArray:
    """(copies, n_bus) map from (copy, original internal bus) to the replicated grid's bus."""
    n = grid.n_bus
    rank = np.arange(n) - (np.arange(n) > grid.root)  # position among the non-root buses
    out = 1 + np.arange(copies)[:, None] * (n - 1) + rank[None, :]
    out[:, grid.root] = 0
    return out.astype(np.int64)


def replicated_sites(grid: RadialGrid, site_bus: IntArray, n_sites: int) -> tuple[RadialGrid, IntArray]:
    """Enough copies of `grid` for `n_sites` households; sites are the first n of copy-major order."""
    copies = max(1, math.ceil(n_sites / len(site_bus)))
    big = replicate_radial(grid, copies)
    idx = replicated_bus_index(grid, copies)
    all_sites = np.concatenate([idx[c, site_bus] for c in range(copies)])
    return big, all_sites[:n_sites].astype(np.int64)


# -- synthetic buildings ----------------------------------------------------------------------


@dataclass
class Fleet:
    """Buildings with fixed assets and the random per-building scales that shape their profiles."""

    assets: SiteAssets
    load_scale: FloatArray  # kW mean household load
    pv_kwp: FloatArray
    heat_scale: FloatArray  # kW thermal mean demand per heat pump


def make_fleet(n: int, rng: np.random.Generator) -> Fleet:
    """Half the buildings with a 10 kW / 16 kWh battery, a third with a heat pump (every third)."""
    has_bat = np.arange(n) % 2 == 0
    has_hp = np.arange(n) % 3 == 0
    assets = SiteAssets(
        bat_e_kwh=np.where(has_bat, BAT_E_KWH, 0.0),
        bat_p_kw=np.where(has_bat, BAT_P_KW, 0.0),
        hp_p_max_kw=np.where(has_hp, HP_P_KW, 0.0),
        ts_e_kwh=np.where(has_hp, TS_E_KWH, 0.0),
    )
    return Fleet(
        assets=assets,
        load_scale=rng.uniform(0.3, 1.2, n),
        pv_kwp=rng.choice([0.0, 5.0, 8.0, 10.0], n),
        heat_scale=rng.uniform(0.5, 2.5, int(has_hp.sum())),
    )


def _day_shape(t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Household load, PV (per kWp) and heat shapes over quarter-hour index t (0 = midnight)."""
    h = (t % 96) / 4.0
    load = 0.6 + 0.5 * np.exp(-((h - 7.5) ** 2) / 2.0) + 0.9 * np.exp(-((h - 19.0) ** 2) / 4.0)
    pv = np.clip(np.sin((h - 6.0) / 14.0 * np.pi), 0.0, None) * 0.8
    heat = 1.0 + 0.4 * np.cos((h - 4.0) / 24.0 * 2 * np.pi)
    return load, pv, heat


def fleet_inputs(fleet: Fleet, t0: int, horizon: int, rng: np.random.Generator) -> StepInputs:
    """Profiles for periods t0..t0+horizon-1 with per-building noise (changes every call)."""
    t = np.arange(t0, t0 + horizon, dtype=float)
    load_s, pv_s, heat_s = _day_shape(t)
    n = len(fleet.load_scale)
    load = fleet.load_scale[None, :] * load_s[:, None] * rng.uniform(0.7, 1.3, (horizon, n))
    pv = fleet.pv_kwp[None, :] * pv_s[:, None] * rng.uniform(0.85, 1.0, (horizon, n))
    n_hp = len(fleet.heat_scale)
    heat = fleet.heat_scale[None, :] * heat_s[:, None] * rng.uniform(0.8, 1.2, (horizon, n_hp))
    cop = 3.0 + 0.5 * np.cos((t / 96.0 - 0.6) * 2 * np.pi)
    return StepInputs(base_kw=load - pv, pv_kw=pv, heat_kw=heat, cop=cop)


def initial_state(fleet: Fleet, rng: np.random.Generator) -> StorageState:
    """Random starting energies: batteries at 20-80 % of BAT_E_KWH, heat-pump tanks at 10-60 % of TS_E_KWH."""
    n_bat = int((fleet.assets.bat_e_kwh > 0).sum())
    n_hp = int((fleet.assets.hp_p_max_kw > 0).sum())
    return StorageState(
        e_bat_kwh=rng.uniform(0.2, 0.8, n_bat) * BAT_E_KWH,
        e_ts_kwh=rng.uniform(0.1, 0.6, n_hp) * TS_E_KWH,
    )
