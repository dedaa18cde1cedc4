"""Grid truth power flow: loads land on the right buses and loadings follow."""

from __future__ import annotations

import pytest

from cloud_controller.grid import build_schutterwald_region
from gridflex.loop.grid_truth import GridTruth, congestion_threshold_kw, count_overloads
from protocols.errors import ConfigError


@pytest.fixture(scope="module")
def truth() -> GridTruth:
    region = build_schutterwald_region()
    return GridTruth(region, {"b001": 0, "b002": 1, "b003": 2})


def test_root_import_is_the_site_load_plus_losses(truth: GridTruth) -> None:
    idle = truth.evaluate({})
    loaded = truth.evaluate({"b001": 10.0, "b002": 10.0, "b003": 10.0})
    # 30 kW of load plus a little more copper loss than idle (iron losses are in both).
    assert 30.0 < loaded.root_p_kw - idle.root_p_kw < 31.5
    assert loaded.hvmv_loading_pct > idle.hvmv_loading_pct
    assert loaded.v_min_pu < idle.v_min_pu <= 1.0 + 1e-6
    station = truth.region.site_station[0]
    assert loaded.station_loading_pct[station] > idle.station_loading_pct[station]


def test_feed_in_reverses_the_flow(truth: GridTruth) -> None:
    idle = truth.evaluate({})
    feeding = truth.evaluate({"b001": -20.0})
    assert feeding.root_p_kw < idle.root_p_kw - 19.0
    assert feeding.v_max_pu > idle.v_max_pu


def test_unknown_site_is_a_config_error(truth: GridTruth) -> None:
    with pytest.raises(ConfigError, match="b999"):
        truth.evaluate({"b999": 1.0})
    with pytest.raises(ConfigError, match="household index"):
        GridTruth(truth.region, {"b001": 10_000})


def test_threshold_and_overload_count() -> None:
    root = [50.0, 80.0, 120.0, 110.0, 60.0]
    limit = congestion_threshold_kw(root, overload_kw=20.0)
    assert limit == 100.0
    assert count_overloads(root, limit) == 2
    assert count_overloads(root, limit, tolerance_kw=15.0) == 1
    assert count_overloads(root, limit, tolerance_kw=25.0) == 0
    with pytest.raises(ValueError):
        congestion_threshold_kw(root, overload_kw=0.0)
