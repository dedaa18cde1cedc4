"""Demo summary figures from grid-truth series."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gridflex.loop.grid_truth import TruthInterval
from gridflex.loop.report import CommandFigures, DemoSummary, TelemetryFigures, run_figures, write_outputs


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
