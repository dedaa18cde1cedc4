"""A hand-made grid and forecast for the market's grid tests: numbers you can check on paper.

Root → station (trafo:0, 400 kW) → LV busbar → feeder-a (line:0, 100 kW) to site a1, and
feeder-b (line:1, 600 kW) to site b1. Per ISP the medians are a1 −80 kW (PV export) and
b1 +500 kW, so the station carries 420 kW. Loading quantiles (10 %, 50 %, 90 %):
station 100 / 105 / 110 %, feeder-a 70 / 80 / 90 % (exporting), feeder-b 80 / 83 / 87 %.
At risk 0.1 the station needs (110 − 100) % × 4 kW/% = 40 kW of reduction per ISP, and
feeder-a can take (100 − 90) % × 1 kW/% = 10 kW more export before it is over.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from cloud_controller.forecast.indicators import CDF_LEVELS
from cloud_controller.forecast.result import ForecastOptions, ProbabilisticForecast
from cloud_controller.grid.radial import RadialGrid
from cloud_controller.market.grid_view import GridView

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
DELIVERY = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
T = 4
STARTS = tuple(DELIVERY + timedelta(minutes=15 * k) for k in range(T))


def three_feeder_net() -> Any:
    """The AC tests' net: a 400 kVA station, a1 on a 50 mm² cable (~98 kW), b1 and c1 on 2 x 150 mm²."""
    import pandapower as pp

    net = pp.create_empty_network()
    hv = pp.create_bus(net, 110.0, name="HV")
    mv = pp.create_bus(net, 20.0, name="MV")
    lv = pp.create_bus(net, 0.4, name="LV busbar")
    pp.create_ext_grid(net, hv, vm_pu=1.0)
    pp.create_transformer(net, hv, mv, "25 MVA 110/20 kV", name="HV/MV")
    pp.create_transformer(net, mv, lv, "0.4 MVA 20/0.4 kV", name="station")
    for name, cable, parallel in (
        ("a", "NAYY 4x50 SE", 1),
        ("b", "NAYY 4x150 SE", 2),
        ("c", "NAYY 4x150 SE", 2),
    ):
        b = pp.create_bus(net, 0.4, name=f"house-{name}")
        pp.create_line(net, lv, b, 0.04, cable, name=f"feeder-{name}", parallel=parallel)
        pp.create_load(net, b, p_mw=0.0, name=f"h-{name}")
    return net


def grid() -> RadialGrid:
    """The three-branch tree."""
    return RadialGrid(
        bus_ids=np.arange(4, dtype=np.int64),
        root=0,
        parent=np.asarray([0, 1, 1], dtype=np.int64),
        child=np.asarray([1, 2, 3], dtype=np.int64),
        rating_kw=np.asarray([400.0, 100.0, 600.0]),
        r_pu_per_kw=np.zeros(3),
        branch_names=("trafo:0", "line:0", "line:1"),
        v_root_pu=1.0,
        v_min_pu=np.full(4, 0.9),
        v_max_pu=np.full(4, 1.1),
    )


def forecast(station_pct: tuple[float, float, float] = (100.0, 105.0, 110.0)) -> ProbabilisticForecast:
    """The forecast with the station's quantiles (10 %, 50 %, 90 %) the same in every interval."""
    q = np.asarray([station_pct, (70.0, 80.0, 90.0), (80.0, 83.0, 87.0)])  # (E, L)
    quantiles = np.repeat(q.T[:, :, None], T, axis=2)  # (L, E, T)
    return ProbabilisticForecast(
        method="fast",
        n_scenarios=100,
        elements=("trafo:0", "line:0", "line:1"),
        names=("station", "feeder-a", "feeder-b"),
        kinds=("transformer", "line", "line"),
        limit_lo=np.full(3, -np.inf),
        limit_hi=np.full(3, 100.0),
        expected=quantiles[1].copy(),
        quantiles=quantiles,
        p_exceed=np.zeros((3, T)),
        cdf=np.zeros((3, len(CDF_LEVELS))),
        alerts=(),
        options=ForecastOptions(),
        compute_s=0.0,
    )


def view(station_pct: tuple[float, float, float] = (100.0, 105.0, 110.0)) -> GridView:
    """The grid view of the case (no AC power flow: the hand-made tree has no pandapower net)."""
    return GridView(
        forecast=forecast(station_pct),
        interval_starts=STARTS,
        grid=grid(),
        sites=("a1", "b1"),
        site_bus=(2, 3),
        p50_kw=np.tile([-80.0, 500.0], (T, 1)),
    )
