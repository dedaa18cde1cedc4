"""The dashboard's numbers without a server: table queries, the loading shape, drawings, store queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud_controller.grid import build_schutterwald_region
from cloud_controller.live.types import CongestionInterval, Plan
from cloud_controller.store import SqliteStore
from cloud_controller.web.network import MV_GROUP, generated_drawing, network_drawing
from cloud_controller.web.views import Z_P90, grid_loading, percentile, query_rows
from protocols.assets import Points
from protocols.messages import Event, Sample

T0 = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)

ROWS: list[dict[str, Any]] = [
    {"site": "b001", "mode": "online", "p_net_kw": 3.0, "last_ack": None},
    {"site": "b002", "mode": "offline", "p_net_kw": None, "last_ack": {"ts": T0}},
    {"site": "b010", "mode": "online", "p_net_kw": -1.0, "last_ack": {"ts": T0 + timedelta(seconds=5)}},
]


@pytest.mark.parametrize(
    ("kwargs", "sites"),
    [
        ({}, ["b001", "b002", "b010"]),
        ({"sort": "p_net_kw"}, ["b010", "b001", "b002"]),  # missing values last
        ({"sort": "p_net_kw", "descending": True}, ["b001", "b010", "b002"]),  # ... also descending
        ({"mode": "online"}, ["b001", "b010"]),
        ({"text": "01"}, ["b001", "b010"]),
        ({"sort": "last_ack", "descending": True}, ["b010", "b002", "b001"]),
        ({"offset": 1, "limit": 1}, ["b002"]),
    ],
    ids=["default", "sort-missing-last", "desc-missing-last", "mode", "text", "by-ack-time", "page"],
)
def test_sites_table_query(kwargs: dict[str, object], sites: list[str]) -> None:
    out = query_rows(ROWS, **kwargs)  # type: ignore[arg-type]
    assert [r["site"] for r in out["rows"]] == sites
    assert out["total"] == 3


def test_sites_table_refuses_an_unknown_sort_key() -> None:
    with pytest.raises(ValueError, match="cannot sort by 'colour'"):
        query_rows(ROWS, sort="colour")


def test_percentile_is_nearest_rank_like_metrics() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([float(v) for v in range(100)], 0.99) == 98.0


def _plan() -> Plan:
    sigma = np.array([[3.0, 4.0], [0.0, 0.0]])  # fleet sigma 5 kW, then 0
    return Plan(
        at=T0 + timedelta(minutes=7),
        period_s=900.0,
        commands=[],
        root_baseline_kw=[50.0, 30.0],
        root_planned_kw=[40.0, 30.0],
        station_limit_kw=40.0,
        congestion=[CongestionInterval(T0, "hvmv", 125.0, 0.3)],
        site_setpoints={},
        solve_ms=1.0,
        excluded_sites=[],
        site_sigma_kw=sigma,
    )


def test_grid_loading_has_one_shape_before_and_after_the_first_plan() -> None:
    before = grid_loading(None, 900.0, 40.0)
    after = grid_loading(_plan(), 900.0, 40.0)
    assert before.keys() == after.keys()
    assert before["start"] == [] and before["at"] is None and before["limit_kw"] == 40.0
    assert after["start"] == [T0, T0 + timedelta(minutes=15)]  # interval starts, not the plan time
    assert after["p90_kw"] == [round(50.0 + Z_P90 * 5.0, 3), 30.0]
    assert after["p10_kw"][0] == round(50.0 - Z_P90 * 5.0, 3)
    assert after["loading_pct"] == [100.0, 75.0]
    assert after["p_exceed"] == [0.3, 0.0]


def test_grid_loading_without_a_limit_has_no_loading() -> None:
    plan = _plan()
    plan.station_limit_kw = float("inf")
    out = grid_loading(plan, 900.0, None)
    assert out["limit_kw"] is None and out["loading_pct"] == [] and out["p_exceed"] == []


def test_schutterwald_draws_from_geodata_with_lines_grouped_by_station() -> None:
    region = build_schutterwald_region()
    d = network_drawing(region)
    assert d["source"] == "geodata"
    groups = {line["group"] for line in d["lines"]}
    assert set(region.station_branch) <= groups
    assert {t["element"] for t in d["trafos"]} >= {"hvmv", *region.station_branch}
    n_segments = d["n_lines"] + len(d["trafos"]) - 1  # each line, each station's link to the MV bus
    assert sum(len(line["x"]) for line in d["lines"]) == 3 * n_segments
    assert all(x is None or 7.0 < x < 9.0 for line in d["lines"] for x in line["x"])  # longitudes


def test_generated_layout_without_a_network() -> None:
    d = generated_drawing(["hvmv", "T1", "T2"])
    assert d["source"] == "generated"
    assert [t["element"] for t in d["trafos"]] == ["hvmv", "T1", "T2"]
    assert d["trafos"][0]["x"] == 0.5 and {line["group"] for line in d["lines"]} == {"T1", "T2", MV_GROUP}


def test_store_history_and_events(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    samples = [
        Sample(
            seq=k, asset=key.asset, point=key.point, value=float(k), unit="kW", ts=T0 + timedelta(minutes=k)
        )
        for k, key in enumerate([Points.METER_P_KW, Points.BATTERY_SOC_PCT] * 3)
    ]
    store.write_samples("b1", samples)
    got = store.read_history("b1", T0, T0 + timedelta(minutes=5), [Points.METER_P_KW])
    assert list(got) == [Points.METER_P_KW]
    assert [v for _, v in got[Points.METER_P_KW]] == [0.0, 2.0, 4.0]
    every = store.read_history("b1", T0 + timedelta(minutes=1), T0 + timedelta(hours=1))
    assert {k: len(v) for k, v in every.items()} == {Points.METER_P_KW: 2, Points.BATTERY_SOC_PCT: 3}
    for k, kind in enumerate(["fallback_entered", "fault", "fallback_left"]):
        store.write_event(Event(site="b1" if k != 1 else "b2", ts=T0 + timedelta(seconds=k), kind=kind))
    assert [e.kind for e in store.read_events()] == ["fallback_left", "fault", "fallback_entered"]
    assert [e.kind for e in store.read_events(site="b1", limit=1)] == ["fallback_left"]
    assert [e.kind for e in store.read_events(since=T0 + timedelta(seconds=1))] == ["fallback_left", "fault"]
    store.close()


def test_study_html_figures_load_plotly_from_beside_them(tmp_path: Path) -> None:
    from cloud_controller.study.report import figure_bars

    summary = {"results": {"critical": {"stor": {"load_violations": 3, "feed_in_violations": 1}}}}
    files = figure_bars(summary, tmp_path)
    html = next(f for f in files if f.suffix == ".html").read_text()
    assert '<script charset="utf-8" src="plotly.min.js"></script>' in html
    assert "cdn.plot.ly" not in html and (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
