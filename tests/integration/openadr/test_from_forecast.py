"""The controller's forecast (transformer loading in %) → kW congestion points → events in the VTN's store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cloud_controller.forecast.background import LatestForecast
from cloud_controller.forecast.result import ForecastOptions, ProbabilisticForecast
from cloud_controller.openadr.from_forecast import (
    INTERNAL_BL,
    points_from_forecast,
    publish_congestion_events,
)
from cloud_controller.openadr.resources import Vtn
from cloud_controller.openadr.side import OpenAdrSide
from cloud_controller.openadr.store import OpenAdrStore
from protocols.clock import RealClock
from tests.integration.openadr.vtn_server import config

DAY = datetime(2026, 12, 3, tzinfo=UTC)


def latest(p90_pct: np.ndarray) -> LatestForecast:
    """Two stations (T1 congested 17:00-17:30 at p90, T2 not) and a line, 96 × 15 min."""
    e, t = 3, 96
    q = np.zeros((3, e, t))
    q[2] = p90_pct
    f = ProbabilisticForecast(
        method="fast",
        n_scenarios=10,
        elements=("trafo:1", "trafo:2", "line:3"),
        names=("T1", "T2", "L3"),
        kinds=("transformer", "transformer", "line"),
        limit_lo=np.full(e, -np.inf),
        limit_hi=np.full(e, 100.0),
        expected=q[2] - 5,
        quantiles=q,
        p_exceed=np.zeros((e, t)),
        cdf=np.zeros((e, 21)),
        alerts=(),
        options=ForecastOptions(),
        compute_s=0.0,
    )
    return LatestForecast(f, DAY.replace(minute=7), 900.0, DAY)


def test_points_in_kw_and_events_replaced_by_a_newer_forecast(tmp_path: Path) -> None:
    p90 = np.full((3, 96), 80.0)
    p90[0, 68:70] = (104.0, 110.0)  # T1: 104 % and 110 % of 400 kW
    points, missing = points_from_forecast(latest(p90), {"T1": 400.0})
    assert missing == ["T2"]  # no rating: skipped and named
    (t1,) = points
    assert (t1.start, t1.limit_kw) == (DAY, 400.0)
    assert t1.headroom_kw()[68:70] == pytest.approx([-16.0, -40.0])

    vtn = Vtn(OpenAdrStore(tmp_path / "oa.sqlite"), clock=RealClock())
    try:
        prog = vtn.create(INTERNAL_BL, "programs", {"programName": "congestion"})
        first = publish_congestion_events(vtn, prog["id"], points, window_start=DAY)
        (event,) = vtn.store.all("events")
        assert first.events == {"T1": event["id"]} and first.dropped == 0
        assert [iv["payloads"][0]["values"][0] for iv in event["intervals"]] == [0.0, 40.0, 0.0]

        p90[0, 68:70] = (101.0, 102.5)  # a newer forecast: the same day's event is replaced, not duplicated
        again = publish_congestion_events(
            vtn, prog["id"], points_from_forecast(latest(p90), {"T1": 400.0})[0], window_start=DAY
        )
        (event2,) = vtn.store.all("events")
        assert again.events == first.events and event2["createdDateTime"] == event["createdDateTime"]
        assert [iv["payloads"][0]["values"][0] for iv in event2["intervals"]] == [0.0, 10.0, 0.0]
    finally:
        vtn.store.close()


def test_auto_mode_takes_ratings_from_the_grid_model_and_counts_failures(tmp_path: Path) -> None:
    import pandapower as pp

    net = pp.create_empty_network()
    hv, lv = pp.create_bus(net, 20.0), pp.create_bus(net, 0.4)
    pp.create_transformer(net, hv, lv, std_type="0.4 MVA 20/0.4 kV", name="T1")  # 400 kW at 100 %
    cfg = config(tmp_path).model_copy(
        update={"openadr": config(tmp_path).openadr.model_copy(update={"auto_program": "congestion-auto"})}
    )
    side = OpenAdrSide(cfg, RealClock())
    try:
        p90 = np.full((3, 96), 80.0)
        p90[0, 68:70] = (104.0, 110.0)
        assert side.on_forecast(latest(p90), SimpleNamespace()) is None  # no grid model: counted, kept
        assert side.errors == 1 and "no grid model" in str(side.last_error)
        published = side.on_forecast(latest(p90), SimpleNamespace(region=SimpleNamespace(net=net)))
        assert published is not None and list(published.events) == ["T1"]
        (event,) = side.vtn.store.all("events")
        assert [iv["payloads"][0]["values"][0] for iv in event["intervals"]] == [0.0, 40.0, 0.0]
        (program,) = side.vtn.store.all("programs")
        assert program["programName"] == "congestion-auto" and event["programID"] == program["id"]
        status = side.status()
        assert (status["runs"], status["errors"], status["last_error"], status["missing_ratings"]) == (
            2,
            1,
            None,
            ["T2"],
        )
    finally:
        side.close()
