"""`gridflex study` end to end on one station and one winter week: outputs, numbers, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.integration

TINY = """
stations: [T_idx_118]
station_roles: {T_idx_118: focus_ev}
quick_weeks: ["01-13"]
scenarios: [stor, stor_proa_prob, grid_opf]
stress: [critical]
mpc: {horizon_h: 12.0, replan_h: 6.0}
"""


def _study(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridflex", "study", *args], capture_output=True, text=True, timeout=timeout
    )


def test_quick_study_writes_summary_steps_figures_and_report(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "res"
    proc = _study("--config", str(cfg), "--out", str(out), "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quick"] is True and summary["steps"] == 7 * 96
    assert summary["households"]["households"] == 56
    table = summary["results"]["critical"]
    # --quick adds the MPC at the most severe stress
    assert set(table) == {"status_quo", "no_control", "stor", "stor_proa_prob", "grid_opf", "mpc"}
    limit = summary["limits_kw"]["critical"]
    assert limit == pytest.approx(summary["status_quo_peak_kw"], abs=0.1)  # critical: peak = 100 % of limit
    assert table["status_quo"]["load_violations"] == 0
    nc = table["no_control"]["load_violations"]
    assert nc > 0, "the 2030 winter week must congest the station at critical stress"
    assert table["stor"]["load_violations"] <= nc
    # beyond the paper: the grid-aware OPF and the MPC hold the station at the limit
    assert table["grid_opf"]["load_violations"] < table["stor"]["load_violations"]
    assert table["mpc"]["max_load_pct"] <= 100.5
    # every step was checked by an AC power flow; the gap to the lossless model is small
    assert 0 < table["stor"]["ac_dc_mean_rel_diff_pct"] < 10
    steps = pd.read_parquet(out / "steps.parquet")
    assert len(steps) == 6 * 7 * 96
    assert {"p_root_kw", "p_root_ac_kw", "e_bat_kwh"} <= set(steps.columns)
    for name in (
        "fig8_violations_critical.png",
        "fig9_violations_by_scenario.png",
        "fig8_violations_critical.html",
    ):
        assert (out / name).stat().st_size > 5_000, name
    report = (out / "report.md").read_text()
    assert "35 %" in report and "Stor+ProA+ProB" in report and "MPC" in report


def test_bad_config_names_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("sizes: {battery_kwh: -3}\n")
    proc = _study("--config", str(cfg), "--out", str(tmp_path / "x"), timeout=60)
    assert proc.returncode == 2
    assert f"{cfg}:sizes.battery_kwh" in proc.stderr
    proc = _study("--config", str(tmp_path / "missing.yaml"), timeout=60)
    assert proc.returncode == 2 and "file not found" in proc.stderr
    proc = _study("--config", str(cfg.with_name("ok.yaml")), timeout=60)
    assert proc.returncode == 2


def test_unknown_scenario_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    proc = _study("--config", str(cfg), "--scenarios", "stor,teleport", timeout=60)
    assert proc.returncode == 2 and "teleport" in proc.stderr
