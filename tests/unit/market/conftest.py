"""The market tests' real region: grid_case.three_feeder_net as a Region, built once per session."""

from __future__ import annotations

import pytest

from cloud_controller.grid import Region
from cloud_controller.grid.region import _region
from tests.unit.market.grid_case import three_feeder_net


@pytest.fixture(scope="session")
def region() -> Region:
    """Households 0, 1, 2 = sites a1, b1, c1."""
    return _region(three_feeder_net(), "trafo:0")
