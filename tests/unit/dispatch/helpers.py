"""Small constructed grids for dispatch tests."""

from __future__ import annotations

import numpy as np

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
