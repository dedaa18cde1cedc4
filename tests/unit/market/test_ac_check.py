"""The AC check before orders go out, on a real pandapower net, its real forecast and power-grid-model.

A 400 kVA station feeds three houses on their own cables: a1 exports 85 kW through a
50 mm² cable (~98 kW), b1 and c1 draw 250 kW each through two 150 mm² cables, so the station
is over its rating. The DSO's request is the forecast's need at risk 0.1. The cheap
offer (40 kW at a1) relieves the station but would push a1's cable to ~130 % in export;
the dearer one (60 kW at b1) does not. Cleared on the grid view: the cheap one is not
ordered, the dear one is, and the AC power flow of the median plus the orders passes.
When the forecast behind the grid rows is wrong (it saw a1 exporting only 20 kW), the rows
let the cheap offer through and the AC check of the real median trims it, with the reason.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from cloud_controller.forecast.probabilistic import ProbabilisticCongestion
from cloud_controller.forecast.result import ForecastOptions
from cloud_controller.grid import Region
from cloud_controller.market.clearing import Clearing, ClearingOptions, clear
from cloud_controller.market.config import MarketConfig
from cloud_controller.market.grid_check import ac_check_of, clear_on_grid, pgm_power_flow
from cloud_controller.market.grid_view import GridView
from cloud_controller.market.products import FlexOffer, FlexRequest, OfferOption
from cloud_controller.market.shell import MarketShell
from protocols.clock import SimClock
from protocols.market import MarketIsp, MarketOffer, MarketOption, MarketRequest
from protocols.mqtt import MqttConfig, MqttSession
from tests.unit.market.grid_case import DELIVERY, NOW, STARTS, T

P50 = np.tile([-85.0, 250.0, 250.0], (T, 1))
SIGMA = np.full((T, 3), 3.0)
SITES = ("a1", "b1", "c1")
CLEAR_AT = DELIVERY - timedelta(hours=2)


def _view(region: Region, forecast_p50: np.ndarray) -> GridView:
    model = ProbabilisticCongestion(region, [0, 1, 2])
    fc = model.forecast(forecast_p50, SIGMA, ForecastOptions(n_scenarios=50))
    return GridView(
        forecast=fc,
        interval_starts=STARTS,
        grid=region.grid,
        sites=SITES,
        site_bus=tuple(int(b) for b in region.site_bus),
        p50_kw=P50,
        power_flow=pgm_power_flow(region, [0, 1, 2]),
    )


def _offer(offer_id: str, kw: float, price: float) -> FlexOffer:
    opt = OfferOption("o", {t: kw for t in STARTS}, price, min_activation_factor=1.0)
    return FlexOffer(offer_id, offer_id, "station", (opt,), NOW, DELIVERY + timedelta(hours=2))


SITES_OF = {"cheap": ["a1"], "dear": ["b1"]}


def _clear(view: GridView, need: dict[datetime, float]) -> Clearing:
    return clear_on_grid(
        [FlexRequest("r", "station", need, 100.0)],
        [_offer("cheap", 40.0, 1.0), _offer("dear", 60.0, 2.0)],
        SITES_OF,
        now=CLEAR_AT,
        options=ClearingOptions(),
        view=view,
        risk=0.1,
    )


def test_the_cheapest_offer_below_a_feeder_it_would_overload_is_not_ordered_and_the_ac_check_passes(
    region: Region,
) -> None:
    view = _view(region, P50)
    need = view.relief_needed_kw("station", 0.1)
    assert all(10.0 < kw < 40.0 for kw in need.values()), need  # the station is over; 40 kW would do
    got = _clear(view, need)
    assert [o.offer_id for o in got.orders] == ["dear"] and got.status == "cleared"
    assert got.violations == () and got.grid_rows == 3  # HV/MV, feeder-a, feeder-b


def test_the_ac_check_reports_what_an_order_would_break(region: Region) -> None:
    """40 kW less load at a1: its cable exports 125 kW instead of 85 kW, ~127 % of ~98 kW (87 % before)."""
    view = _view(region, P50)
    orders = clear(
        [FlexRequest("r", "station", {t: 30.0 for t in STARTS}, 100.0)],
        [_offer("cheap", 40.0, 1.0)],
        now=CLEAR_AT,
    ).orders
    violations = ac_check_of(view, SITES_OF)(orders)
    assert len(violations) == T
    for v, t in zip(violations, STARTS, strict=True):
        m = re.fullmatch(
            rf"line:0 at {re.escape(t.isoformat())}: ([\d.]+) % > 100 % with the orders \(([\d.]+) % without\)",
            v,
        )
        assert m is not None, v
        assert 120.0 < float(m[1]) < 135.0 and 80.0 < float(m[2]) < 92.0, v
    assert ac_check_of(view, SITES_OF)([]) == []


def test_the_ac_check_trims_what_a_wrong_forecast_let_through(region: Region) -> None:
    """Grid rows from a forecast that saw a1 exporting 20 kW; the AC check runs on the real -85 kW."""
    view = _view(region, np.tile([-20.0, 250.0, 250.0], (T, 1)))
    view = replace(view, p50_kw=P50)
    got = _clear(view, {t: 30.0 for t in STARTS})
    assert [o.offer_id for o in got.orders] == ["dear"] and got.status == "cleared"
    reasons = dict(got.refused)
    assert reasons["cheap"].startswith("ac_check: line:0 at ") and "with the orders" in reasons["cheap"]


async def test_orders_that_break_the_grid_only_together_are_blocked_and_reported(
    region: Region, tmp_path: Path
) -> None:
    """Two 10 kW offers at a1: either alone leaves its cable at ~97 %, both at ~107 % -> no orders at all."""
    config = MarketConfig(fsps={"fsp-a": {}}, congestion_points={"station": ["a1", "b1", "c1"]})
    shell = MarketShell(
        config, tmp_path / "m.sqlite", clock=SimClock(CLEAR_AT), session=MqttSession(MqttConfig(port=1))
    )
    try:
        view = _view(region, np.tile([-20.0, 250.0, 250.0], (T, 1)))  # its rows let both through
        shell.view = replace(view, p50_kw=P50)
        isps = [MarketIsp(start=t, kw=20.0) for t in STARTS]
        shell.book.post_request(
            MarketRequest(
                request_id="r", congestion_point="station", ts=NOW, isps=isps, value_eur_per_kwh=100.0
            ),
            NOW,
        )
        for oid in ("a-1", "a-2"):
            opt = MarketOption(
                option_id="o",
                isps=[MarketIsp(start=t, kw=10.0) for t in STARTS],
                price_eur_per_kwh=1.0,
                min_activation_factor=1.0,
            )
            offer = MarketOffer(
                offer_id=oid,
                fsp="fsp-a",
                congestion_point="station",
                ts=NOW,
                sites=["a1"],
                expires=DELIVERY + timedelta(hours=2),
                options=[opt],
            )
            shell.book.post_offer(offer, "fsp-a", NOW)
        record = await shell.clear_now()
        assert record is not None and record.orders == [] and record.summary["status"] == "ac_check_failed"
        assert len(record.summary["violations"]) == T
        assert all(v.startswith("line:0 at ") for v in record.summary["violations"])
        assert shell.store.requests()[0][1] == "blocked" and shell.stats.ac_blocked == 1
        assert {o.offer_id: s for o, s, _ in shell.store.offers()} == {
            "a-1": "not_ordered",
            "a-2": "not_ordered",
        }
    finally:
        shell.close()
