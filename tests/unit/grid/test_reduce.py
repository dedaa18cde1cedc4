"""The station-level reduction keeps the transformer limits and where each household hangs."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.grid import build_schutterwald_region
from cloud_controller.grid.reduce import station_grid


def test_station_grid_of_schutterwald() -> None:
    region = build_schutterwald_region()
    grid, site_bus = station_grid(region)
    assert grid.n_bus == 5 and grid.n_branch == 4
    assert grid.rating_kw[0] == pytest.approx(25_000.0)  # HV/MV, 25 MVA at 1 pu
    assert sorted(grid.rating_kw[1:].tolist()) == pytest.approx([400.0, 630.0, 630.0])
    # every household sits on its own station's bus, and the station sums flow through its trafo
    loads = np.random.default_rng(0).uniform(0.2, 3.0, region.n_sites)
    bus_load = np.zeros(grid.n_bus)
    np.add.at(bus_load, site_bus, loads)
    flows = grid.branch_flows_kw(bus_load)
    for k, (name, branch) in enumerate(region.station_branch.items(), start=1):
        mine = np.asarray(region.site_station) == name
        assert grid.branch_names[k] == region.grid.branch_names[branch]
        assert flows[k] == pytest.approx(loads[mine].sum())
    assert flows[0] == pytest.approx(loads.sum())
