"""`/grid/state`'s prior of a household outside the fleet: its station's background where a meter gives one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from cloud_controller.live.station_load import BackgroundMeasurement, StationBackground
from cloud_controller.live.types import AssetRef, Plan, SiteRef
from cloud_controller.web.grid_state_api import OUTSIDE_FLEET_SIGMA_KW, live_measurements
from tests.integration.two_stations import two_station_region

NOW = datetime(2030, 1, 15, 17, tzinfo=UTC)
SITES = [SiteRef("b001", 0, (AssetRef("meter", "meter"),))]  # h1, below S1 with h2; h3 below S2


def _plan(backgrounds: dict[str, StationBackground]) -> Plan:
    p = Plan(NOW, 900.0, [], [0.0], [0.0], np.inf, [], {}, 0.1, [], station_background=backgrounds)
    p.site_forecast_kw, p.site_sigma_kw = np.array([[30.0]]), np.array([[1.0]])
    return p


def _bg(station: str, measured_kw: float | None, p50_kw: float) -> StationBackground:
    m = BackgroundMeasurement(station, "measured" if measured_kw is not None else "stale", measured_kw)
    return StationBackground(station, np.array([p50_kw]), np.array([1.0]), None, "seasonal", m)


def test_a_household_outside_the_fleet_takes_its_station_background(tmp_path: Path) -> None:
    region = two_station_region(tmp_path, (30.0, 20.0, 5.0))
    batch, metered = live_measurements(region, SITES, {}, _plan({"S1": _bg("S1", 35.0, 33.0)}), NOW)
    p = batch.loads.p_kw[0]
    assert p[1] == pytest.approx(35.0)  # h2: S1's measured background, not its net load of 20 kW
    assert p[2] == pytest.approx(5.0)  # h3: S2 has no meter, its net load stands
    assert batch.loads.sigma_p_kw[0, 1] == pytest.approx(OUTSIDE_FLEET_SIGMA_KW, rel=0.05)
    assert metered["pseudo_outside_fleet_from_station_meters"] == 1
    stale, _ = live_measurements(region, SITES, {}, _plan({"S1": _bg("S1", None, 33.0)}), NOW)
    assert stale.loads.p_kw[0, 1] == pytest.approx(33.0)  # no measurement: the forecast's first period
    blind, metered = live_measurements(region, SITES, {}, _plan({}), NOW)
    assert (
        blind.loads.p_kw[0, 1] == pytest.approx(20.0)
        and metered["pseudo_outside_fleet_from_station_meters"] == 0
    )
