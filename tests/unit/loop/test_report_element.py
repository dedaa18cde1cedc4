"""The demo summary names the congested element, its rating and its loading with and without control."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gridflex.loop.grid_truth import TruthInterval
from gridflex.loop.report import (
    CommandFigures,
    DemoSummary,
    TelemetryFigures,
    element_figures,
    figure,
    run_figures,
    write_outputs,
)


def _truth(loading: list[float]) -> list[TruthInterval]:
    return [
        TruthInterval(
            4 * v,
            1.0,
            {"T_idx_77": v, "T_idx_80": v / 2},
            0.91 + v / 1e4,
            1.0,
            line_loading_max_pct=v - 20,
            line_max=f"L{int(v)}",
        )
        for v in loading
    ]


def test_element_figures_peak_intervals_over_and_kvah_above_the_rating() -> None:
    fig = element_figures([90.0, 110.0, 125.0, 100.0], "T_idx_77", 400.0, 0.25)
    assert fig.peak_loading_pct == 125.0 and fig.overloaded_intervals == 2  # 100 % is not over
    assert fig.overload_kvah == pytest.approx((0.10 + 0.25) * 400.0 * 0.25)  # 35 kVAh


def test_run_figures_judge_the_element_not_a_threshold() -> None:
    run = run_figures(_truth([90.0, 110.0, 125.0]), None, 0.25, element="T_idx_77", rating_kva=400.0)
    assert run.element is not None and run.element.element == "T_idx_77"
    assert run.overloaded_intervals == 2 and run.hvmv_peak_pct_of_threshold is None
    assert run.overload_energy_kwh == 0.0
    assert run.line_peak_loading_pct == 105.0 and run.line_peak == "L125"
    assert run.v_min_pu == pytest.approx(0.919)
    with pytest.raises(ValueError, match="not among the stations"):
        run_figures(_truth([90.0]), None, 0.25, element="T_idx_7", rating_kva=400.0)
    with pytest.raises(ValueError, match="threshold or an element"):
        run_figures(_truth([90.0]), None, 0.25)


def test_summary_and_plot_name_the_element_and_its_rating(tmp_path: Path) -> None:
    start = datetime(2030, 1, 15, 17, tzinfo=UTC)
    times = [start + timedelta(minutes=15 * i) for i in range(4)]
    without, with_control = [95.0, 118.0, 121.0, 104.0], [95.0, 99.0, 101.0, 97.0]
    kw = {"element": "T_idx_77", "rating_kva": 400.0}
    summary = DemoSummary(
        sites=20,
        start=start,
        interval_min=15,
        intervals=4,
        threshold_kw=None,
        no_control=run_figures(_truth(without), None, 0.25, **kw),  # type: ignore[arg-type]
        control=run_figures(_truth(with_control), None, 0.25, **kw),  # type: ignore[arg-type]
        commands=CommandFigures(sent=4, applied=4),
        telemetry=TelemetryFigures(produced=10, delivered=10),
        wall_s=1.0,
        element="T_idx_77",
        element_rating_kva=400.0,
    )
    assert summary.overload_reduction_pct == pytest.approx(100 * (3 - 1) / 3)
    paths = write_outputs(
        summary,
        tmp_path,
        times,
        {"no control (T_idx_77 %)": without, "with GridFlex (T_idx_77 %)": with_control},
    )
    doc = json.loads(paths["json"].read_text())
    assert doc["element"] == "T_idx_77" and doc["element_rating_kva"] == 400.0 and doc["threshold_kw"] is None
    assert doc["no_control"]["element"] == {
        "element": "T_idx_77",
        "rating_kva": 400.0,
        "peak_loading_pct": 121.0,
        "overloaded_intervals": 3,
        "overload_kvah": pytest.approx((18 + 21 + 4) / 100 * 400 * 0.25),
    }
    assert doc["control"]["element"]["overloaded_intervals"] == 1
    md = paths["markdown"].read_text()
    assert "congested element T_idx_77 (MV/LV transformer, 400 kVA)" in md
    assert "| T_idx_77 peak loading (% of 400 kVA) | 121.0 | 101.0 |" in md
    assert "| T_idx_77 intervals over 100 % | 3 | 1 |" in md
    assert "| lowest voltage (pu) |" in md and "most loaded line" in md
    fig = figure(times, {"no control": without, "with GridFlex": with_control}, 100.0, element="T_idx_77")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "T_idx_77 loading (%)" and "T_idx_77" in ax.get_title()
    legend = ax.get_legend()
    assert legend is not None and "T_idx_77 rating (100 %)" in [t.get_text() for t in legend.get_texts()]
    assert paths["plot"].stat().st_size > 10_000
