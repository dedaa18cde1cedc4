"""Demo summary figures from grid-truth series."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from matplotlib.colors import to_rgb

from gridflex.loop.grid_truth import TruthInterval
from gridflex.loop.report import (
    CapCommand,
    CommandFigures,
    ControlActions,
    DemoSummary,
    TelemetryFigures,
    control_actions,
    figure,
    plot,
    run_figures,
    write_outputs,
)


def _truth(values: list[float]) -> list[TruthInterval]:
    return [TruthInterval(v, v / 10, {"T1": v / 4}, 0.98, 1.0) for v in values]


def test_run_figures_count_overloads_and_energy_above_threshold() -> None:
    figures = run_figures(_truth([50, 120, 130, 90]), threshold_kw=100.0, interval_h=0.25)
    assert figures.hvmv_peak_kw == 130
    assert figures.hvmv_peak_pct_of_threshold == pytest.approx(130.0)
    assert figures.overloaded_intervals == 2
    assert figures.overload_energy_kwh == pytest.approx((20 + 30) * 0.25)
    assert figures.station_peak_loading_pct == {"T1": 32.5}
    assert figures.energy_kwh == pytest.approx(390 * 0.25)
    with pytest.raises(ValueError):
        run_figures([], 100.0, 0.25)


def test_summary_outputs(tmp_path: Path) -> None:
    start = datetime(2030, 1, 15, tzinfo=UTC)
    times = [start + timedelta(minutes=15 * i) for i in range(4)]
    nc = run_figures(_truth([50, 120, 130, 90]), 100.0, 0.25)
    c = run_figures(_truth([60, 99, 100, 95]), 100.0, 0.25)
    summary = DemoSummary(
        sites=5,
        start=start,
        interval_min=15,
        intervals=4,
        threshold_kw=100.0,
        no_control=nc,
        control=c,
        commands=CommandFigures(sent=10, applied=8, clamped=1, missing=1),
        telemetry=TelemetryFigures(produced=100, delivered=100),
        wall_s=12.0,
    )
    assert summary.overload_reduction_pct == 100.0
    assert summary.commands.acked_ok_pct == pytest.approx(90.0)
    paths = write_outputs(
        summary, tmp_path, times, {"no control": [50, 120, 130, 90], "control": [60, 99, 100, 95]}
    )
    doc = json.loads(paths["json"].read_text())
    assert doc["overload_reduction_pct"] == 100.0 and doc["telemetry"]["lost"] == 0
    assert "reduced by **100 %**" in paths["markdown"].read_text()
    assert paths["plot"].stat().st_size > 10_000
    assert paths["series"].read_text().splitlines()[2].endswith("120.000,99.000")


def test_control_actions_count_caps_at_each_midpoint_and_average_soc_per_interval() -> None:
    start = datetime(2030, 1, 15, 16, tzinfo=UTC)
    starts = [start + timedelta(minutes=15 * i) for i in range(4)]
    at = [start + timedelta(minutes=m) for m in (1, 20, 40, 55)]
    soc = {"s1": [(at[0], 40.0), (at[1], 50.0), (at[2], 60.0)], "s2": [(at[0], 60.0), (at[2], 80.0)]}
    caps = [
        CapCommand(starts[0], "s1", "ev1", "ev", 1.4, 11.0),  # capped from interval 0
        CapCommand(starts[0], "s2", "hp1", "hp", 3.0, 3.0),  # nominal: a release, not a cap
        CapCommand(starts[1] + timedelta(minutes=1), "s2", "hp1", "hp", 1.0, 3.0),  # capped from 1
        CapCommand(starts[2] + timedelta(minutes=10), "s1", "ev1", "ev", 11.0, 11.0),  # after 2's midpoint
    ]
    actions = control_actions(starts, 900.0, soc, caps)
    assert actions.soc_pct[:3] == [50.0, 50.0, 70.0] and math.isnan(actions.soc_pct[3])
    assert actions.ev_capped == [1, 1, 1, 0]
    assert actions.hp_capped == [0, 1, 1, 1]
    assert actions.head(2) == ControlActions([50.0, 50.0], [1, 1], [0, 1])


def test_demo_png_has_the_control_panels_in_local_time(tmp_path: Path) -> None:
    start = datetime(2030, 1, 15, 13, tzinfo=UTC)  # 14:00 in Berlin (CET)
    times = [start + timedelta(minutes=15 * i) for i in range(8)]
    actions = ControlActions([50.0 + i for i in range(8)], [0, 1, 2, 2, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1, 0, 0])
    series = {
        "no control": [90, 110, 120, 105, 95, 80, 70, 60],
        "with GridFlex": [90, 99, 101, 98, 95, 80, 70, 60],
    }
    fig = figure(times, series, 100.0, actions)
    fig.canvas.draw()
    grid, soc, caps = fig.axes
    assert soc.get_ylabel().startswith("battery SoC") and caps.get_ylabel() == "assets capped"
    legend = caps.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [
        "EV chargers capped",
        "heat pumps capped",
    ]
    ticks = [t.get_text() for t in caps.get_xticklabels() if t.get_text()]
    assert ticks[0] == "14:00" and "13:00" not in ticks  # local time, not UTC
    assert caps.get_xlabel().startswith("local time (Europe/Berlin, CET)")
    # overloaded intervals shaded on every panel: 3 without control, 1 of them with control too
    for ax in (grid, soc, caps):
        shaded = [p for p in ax.patches if to_rgb(p.get_facecolor()) == to_rgb("tab:red")]
        assert sorted(round(p.get_alpha() or 0.0, 2) for p in shaded) == [0.12, 0.12, 0.28]
    assert plot(tmp_path / "demo.png", times, series, 100.0, actions).stat().st_size > 20_000
