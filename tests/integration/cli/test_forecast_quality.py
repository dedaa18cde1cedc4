"""`gridflex forecast-quality` on a tiny run (in-process): its files, and the controller serving what it published."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

# the profile generators' own imports at collection, not inside a test
import cloud_controller.study.profiles  # noqa: F401
from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from gridflex.cli import app
from protocols.clock import SimClock

pytestmark = pytest.mark.integration

TINY = ["--sites", "3", "--days", "2", "--every", "8"]


def test_tiny_run_writes_json_table_and_figure_and_the_controller_serves_what_it_published(
    tmp_path: Path,
) -> None:
    out, state = tmp_path / "res", tmp_path / "state"
    published = state / "forecast_quality.json"
    r = CliRunner().invoke(app, ["forecast-quality", *TINY, "--out", str(out), "--publish", str(published)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "forecast_quality.json").read_text(encoding="utf-8"))
    assert data["config"]["sites"] == 3 and data["origins"] == 72 and len(data["days"]) == 2
    assert published.read_bytes() == (out / "forecast_quality.json").read_bytes()
    md = (out / "forecast_quality.md").read_text(encoding="utf-8")
    assert md.startswith("3 sites, 2 days, seed 2030, year 2030")
    assert md.count("| all | ") == 5 + 2  # five scored kinds, then the two forecasts' skill rows
    html = (out / "forecast_quality.html").read_text(encoding="utf-8")
    assert '<script charset="utf-8" src="plotly.min.js"></script>' in html and "cdn" not in html.lower()
    assert (out / "plotly.min.js").stat().st_size > 1_000_000  # offline: plotly's own bundle beside it
    assert "skill vs yesterday" in r.output and "published" in r.output

    cfg = CloudConfig.model_validate({"store": {"path": str(state / "cloud.sqlite")}})
    ctl = CloudController(cfg, Registry(sites=()), clock=SimClock(datetime(2030, 1, 15, tzinfo=UTC)))
    try:
        with TestClient(create_app(ctl)) as c:
            served = c.get("/forecast/quality")
    finally:
        ctl.store.close()
    assert served.status_code == 200 and served.json() == data


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--sites", "0"], "--sites"), (["--sites", "320"], "--sites"), (["--every", "0"], "--every")],
    ids=["no-sites", "beyond-region", "no-stride"],
)
def test_bad_options_exit_2_naming_the_option(args: list[str], message: str) -> None:
    r = CliRunner().invoke(app, ["forecast-quality", *args])
    assert r.exit_code == 2 and message in r.output


@pytest.mark.slow
def test_default_run_as_a_process_finishes_well_under_a_minute(tmp_path: Path) -> None:
    """The defaults (10 sites, 14 days over the year, hourly forecasts) as a user runs them."""
    proc = subprocess.run(
        [sys.executable, "-m", "gridflex", "forecast-quality", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "forecast_quality.json").read_text(encoding="utf-8"))
    assert data["config"]["sites"] == 10 and len(data["days"]) == 14
    whole = data["buckets"][-1]["metrics"]["baseline"]
    assert 0.3 < whole["coverage_p10_p90"] < 1.0
