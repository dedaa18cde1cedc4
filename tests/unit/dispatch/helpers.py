"""Small constructed grids for dispatch tests."""

from __future__ import annotations

import numpy as np

from cloud_controller.dispatch import SiteAssets
from cloud_controller.grid.radial import RadialGrid


def feeder(n_bus: int, *, rating_kw: float = 1e6, r_pu_per_kw: float = 1e-6) -> RadialGrid:
    """A chain root - 1 - 2 - ... of n_bus buses."""
    k = n_bus - 1
    return RadialGrid(
        bus_ids=np.arange(n_bus, dtype=np.int64),
        root=0,
        parent=np.arange(k, dtype=np.int64),
        child=np.arange(1, n_bus, dtype=np.int64),
        rating_kw=np.full(k, rating_kw),
        r_pu_per_kw=np.full(k, r_pu_per_kw),
        branch_names=tuple(f"line:{i}" for i in range(k)),
        v_root_pu=1.0,
        v_min_pu=np.full(n_bus, 0.9),
        v_max_pu=np.full(n_bus, 1.1),
    )


def mixed_assets(n_sites: int, *, store_needs_battery: bool = False) -> SiteAssets:
    """Every 2nd site a 10 kWh / 5 kW battery, every 3rd a 3 kW heat pump with an 11.6 kWh
    thermal store (only where there is also a battery if `store_needs_battery`)."""
    has_bat = np.arange(n_sites) % 2 == 0
    has_hp = np.arange(n_sites) % 3 == 0
    has_ts = has_hp & has_bat if store_needs_battery else has_hp
    return SiteAssets(
        bat_e_kwh=np.where(has_bat, 10.0, 0.0),
        bat_p_kw=np.where(has_bat, 5.0, 0.0),
        hp_p_max_kw=np.where(has_hp, 3.0, 0.0),
        ts_e_kwh=np.where(has_ts, 11.6, 0.0),
    )
