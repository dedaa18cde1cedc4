"""GOPACS's rule from the grid model (grid_case.py's numbers): an order must not overload another element.

The station needs 40 kW per ISP. The cheap offer (1 EUR/kWh) is at a1 on feeder-a, which
exports 80 kW (90 % at the 90 % quantile): a reduction there relieves the station but
adds to feeder-a's export, which can take only 10 kW more at risk 0.1. The dearer offer
(2 EUR/kWh) is at b1 on feeder-b (importing, ~1,080 kW of reverse room). Divisible: 10 kW
from a1 + 30 kW from b1 = 10 + 60 = 70 EUR an hour; all-or-nothing: b1's 40 kW = 80 EUR;
without the rows a1's 40 kW would be ordered (40 EUR) and feeder-a would be at 130 %.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud_controller.market.book import Book
from cloud_controller.market.config import MarketConfig
from cloud_controller.market.grid_check import grid_inputs
from cloud_controller.market.store import MarketStore
from protocols.market import MarketIsp, MarketOffer, MarketOption, MarketRequest
from tests.unit.market.grid_case import DELIVERY, NOW, STARTS, view

CONFIG = MarketConfig(fsps={"fsp-a": {}, "fsp-b": {}}, congestion_points={"station": ["a1", "b1"]})


def test_reverse_headroom_and_sensitivities_come_from_the_tree() -> None:
    v = view()
    assert v.reverse_headroom_kw("feeder-a", 0.1) == pytest.approx({t: 10.0 for t in STARTS})
    # importing: the flow must fall through zero first: (100 + 80) % x 6 kW/%
    assert v.reverse_headroom_kw("feeder-b", 0.1) == pytest.approx({t: 1080.0 for t in STARTS})
    gi = grid_inputs(
        v,
        [("cheap", "station", ["a1"]), ("dear", "station", ["b1"]), ("x", "station", ["zz"])],
        ["station"],
        0.1,
    )
    assert gi.sensitivity == {
        "cheap": {"line:0": 1.0},
        "dear": {"line:1": 1.0},
    }  # the station is the request's
    assert [r.element for r in gi.rows] == ["line:0", "line:1"]
    assert gi.refused == [
        ("x", "grid: site(s) zz not in the grid model: its effect on other elements is unknown")
    ]


def _offer(offer_id: str, fsp: str, site: str, price: float, min_factor: float) -> MarketOffer:
    isps = [MarketIsp(start=t, kw=40.0) for t in STARTS]
    return MarketOffer(
        offer_id=offer_id,
        fsp=fsp,
        congestion_point="station",
        ts=NOW,
        sites=[site],
        expires=DELIVERY + timedelta(hours=2),
        options=[
            MarketOption(option_id="o", isps=isps, price_eur_per_kwh=price, min_activation_factor=min_factor)
        ],
    )


def _clear(tmp_path: Path, min_factor: float, *, with_view: bool) -> tuple[dict[str, float], dict[str, Any]]:
    store = MarketStore(tmp_path / f"m-{min_factor}-{with_view}.sqlite")
    try:
        book = Book(CONFIG, store)
        isps = [MarketIsp(start=t, kw=40.0) for t in STARTS]
        book.post_request(
            MarketRequest(
                request_id="r", congestion_point="station", ts=NOW, isps=isps, value_eur_per_kwh=100.0
            ),
            NOW,
        )
        book.post_offer(_offer("cheap", "fsp-a", "a1", 1.0, min_factor), "fsp-a", NOW)
        book.post_offer(_offer("dear", "fsp-b", "b1", 2.0, min_factor), "fsp-b", NOW)
        record = book.clear(datetime(2030, 1, 15, 15, 0, tzinfo=UTC), view=view() if with_view else None)
        assert record is not None
        return {o.offer_id: o.isps[0].kw for o in record.orders}, record.summary
    finally:
        store.close()


def test_an_offer_that_would_overload_another_feeder_is_not_fully_ordered(tmp_path: Path) -> None:
    kw, summary = _clear(tmp_path, 0.0, with_view=True)
    assert kw == pytest.approx({"cheap": 10.0, "dear": 30.0})
    assert summary["status"] == "cleared" and summary["cost_eur"] == pytest.approx(70.0)
    assert summary["grid"] == {"rows": 2, "risk": 0.1}


def test_an_all_or_nothing_offer_that_would_overload_another_feeder_is_not_ordered(tmp_path: Path) -> None:
    kw, summary = _clear(tmp_path, 1.0, with_view=True)
    assert kw == pytest.approx({"dear": 40.0}) and summary["cost_eur"] == pytest.approx(80.0)
    free, summary = _clear(tmp_path, 1.0, with_view=False)
    assert free == pytest.approx({"cheap": 40.0}) and summary["grid"] is None  # the rows kept it out


def test_an_element_already_over_in_reverse_takes_nothing_more_and_the_clearing_still_solves() -> None:
    """feeder-a's 90 % quantile at 105 %: its room is -5 kW, held at 0 (a negative bound would be infeasible)."""
    v = view()
    fc = replace(v.forecast, quantiles=v.forecast.quantiles.copy())
    fc.quantiles[2, 1, :] = 105.0
    gi = grid_inputs(replace(v, forecast=fc), [("cheap", "station", ["a1"])], ["station"], 0.1)
    assert [r.headroom_kw for r in gi.rows] == [{t: 0.0 for t in STARTS}]
