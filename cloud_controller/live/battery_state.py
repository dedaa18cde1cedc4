"""The fleet's batteries as the planner sees them: energy now and the bounds a plan may use.

Pure functions over the registry (`SiteRef`), the site snapshots (telemetry and each
site's FlexEnvelope) and the dispatch problem's arrays; the planner calls them every
period. What the agent says wins: its envelope's energy and window, else its SOC
telemetry, else half full (a new site before its first report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cloud_controller.dispatch import FloatArray, Problem, StorageState
from cloud_controller.live.types import SiteRef, SiteSnapshot
from protocols.assets import BATTERY, Role
from protocols.messages import AssetFlex

__all__ = ["battery_asset", "battery_bounds", "battery_flex", "storage_state"]


def battery_asset(site: SiteRef) -> str:
    """The asset id of the site's battery (its telemetry points are "<id>/p_kw", ...)."""
    bat = site.asset_of(Role.BATTERY)
    return bat.asset if bat is not None else BATTERY


def battery_flex(snapshots: Mapping[str, SiteSnapshot], site: SiteRef) -> AssetFlex | None:
    """The battery's entry in the site's latest FlexEnvelope, if it sent one."""
    snap = snapshots.get(site.site)
    if snap is None or snap.flex is None:
        return None
    bat = site.asset_of(Role.BATTERY)
    return next((a for a in snap.flex.assets if bat is not None and a.asset == bat.asset), None)


def storage_state(
    problem: Problem,
    sites: Sequence[SiteRef],
    bat_index: Mapping[int, int],
    snapshots: Mapping[str, SiteSnapshot],
) -> StorageState:
    """Battery energy now: the envelope's `e_now_kwh`, else the SOC telemetry, else half full."""
    p = problem
    e_bat = np.zeros(p.n_bat)
    for site_i, k in bat_index.items():
        site = sites[site_i]
        snap = snapshots.get(site.site)
        cap = p.bat_e_max_kwh[k]
        flex = battery_flex(snapshots, site)
        soc = snap.points.get(f"{battery_asset(site)}/soc_pct") if snap else None
        if flex is not None and flex.e_now_kwh is not None:
            e_now = flex.e_now_kwh
        else:
            e_now = (soc if soc is not None else 50.0) / 100.0 * cap
        e_bat[k] = np.clip(e_now, p.bat_e_min_kwh[k], cap)
    return StorageState(e_bat_kwh=e_bat, e_ts_kwh=np.zeros(p.n_hp))


def battery_bounds(
    problem: Problem,
    sites: Sequence[SiteRef],
    bat_index: Mapping[int, int],
    excluded: set[int],
    snapshots: Mapping[str, SiteSnapshot],
    state: StorageState,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per battery (p_max_kw, e_lo_kwh, e_hi_kwh): what the plan may use.

    Power 0 when the site is excluded (it follows its owner), else its rating; energy
    within the window its FlexEnvelope states (`e_min_kwh`/`e_max_kwh`: the owner's reserve
    and the agent's SOC limits), never above what it holds now if it is already below the
    reserve (the plan may not start infeasible).
    """
    p = problem
    p_max = p.bat_p_max_kw.astype(float).copy()
    e_lo = p.bat_e_min_kwh.astype(float).copy()
    e_hi = p.bat_e_max_kwh.astype(float).copy()
    for site_i, k in bat_index.items():
        if site_i in excluded:
            p_max[k] = 0.0
        flex = battery_flex(snapshots, sites[site_i])
        if flex is not None:
            if flex.e_min_kwh is not None:
                e_lo[k] = max(e_lo[k], min(flex.e_min_kwh, float(state.e_bat_kwh[k])))
            if flex.e_max_kwh is not None:
                e_hi[k] = max(e_lo[k], min(e_hi[k], max(flex.e_max_kwh, float(state.e_bat_kwh[k]))))
    return p_max, e_lo, e_hi
