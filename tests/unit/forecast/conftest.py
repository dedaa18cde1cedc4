"""A small radial feeder for the forecast's tests: HV/MV, one MV/LV station, two LV cables, ten houses.

Small on purpose (the default test run has seconds for these tests); sized so the cables'
heads and the far ends of the feeders sit near their ratings and the 0.95 pu band, where the
linear model's error would show. The region-sized check is `test_region_accuracy.py` (slow).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cloud_controller.forecast.probabilistic import ProbabilisticCongestion
from cloud_controller.grid import Region
from cloud_controller.grid.region import _region

HOUSES = 10


def feeder_net() -> Any:
    """The pandapower net (in memory: a JSON round trip costs seconds on a loaded machine)."""
    import pandapower as pp

    net = pp.create_empty_network()
    hv = pp.create_bus(net, 110.0, name="HV")
    mv = pp.create_bus(net, 20.0, name="MV")
    lv = pp.create_bus(net, 0.4, name="LV busbar")
    pp.create_ext_grid(net, hv, vm_pu=1.0)
    pp.create_transformer(net, hv, mv, "25 MVA 110/20 kV", name="HV/MV")
    pp.create_transformer(net, mv, lv, "0.25 MVA 20/0.4 kV", name="station")
    for feeder in range(2):
        prev = lv
        for j in range(HOUSES // 2):
            b = pp.create_bus(net, 0.4, name=f"f{feeder}-{j}")
            # built from the far end inwards on feeder 1: lines whose from_bus is the child
            a, c = (prev, b) if feeder == 0 else (b, prev)
            pp.create_line(net, a, c, 0.04, "NAYY 4x50 SE", name=f"f{feeder}-{j}")
            pp.create_load(net, b, p_mw=0.0, name=f"h{feeder}-{j}")
            prev = b
    return net


@pytest.fixture(scope="session")
def feeder() -> Region:
    """The feeder as a Region (households = its ten loads), as `region_from_json` builds it."""
    return _region(feeder_net(), "trafo:0")


@pytest.fixture(scope="session")
def model(feeder: Region) -> ProbabilisticCongestion:
    """The forecast model over all ten houses (one fleet site each)."""
    return ProbabilisticCongestion(feeder, list(range(HOUSES)))


def evening(T: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Medians rising to ~19 kW a house (the cables' heads past 100 %), σ 30 % + 0.5 kW."""
    ramp = np.linspace(0.5, 1.3, T)[:, None]
    p50 = ramp * np.linspace(13.0, 16.0, HOUSES)[None, :]
    return p50, 0.5 + 0.3 * p50
