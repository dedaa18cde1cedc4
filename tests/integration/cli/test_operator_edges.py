"""`gridflex cloud` as a process: a taken API port is one stderr line and exit 2; none of the start-up
noise (HiGHS banner, pandapower's numba and plotly notices): at its sources in the default run, and
(slow) from the grid model and solver at DEBUG and from the cloud process up to its first plan."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from cloud_controller.grid.quiet import quiet_pandapower
from gridflex.ops.broker import MosquittoBroker
from tests.integration.cli.procs import NOISE, start

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[3]
EXAMPLES = ROOT / "examples"


def _config(tmp_path: Path, *, broker_port: int, api_port: int) -> Path:
    doc = yaml.safe_load((EXAMPLES / "cloud.yaml").read_text())
    doc["broker"]["port"] = broker_port
    doc["store"]["path"] = str(tmp_path / "cloud.sqlite")
    doc["registry"] = str(EXAMPLES / "registry.yaml")
    doc["control"]["period_s"] = 60  # the first plan 6 s after connecting
    doc["control"]["horizon_steps"] = 8
    doc["api"]["port"] = api_port
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_taken_api_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = _config(tmp_path, broker_port=1, api_port=port)
        proc = start(tmp_path, "cloud", "cloud", "--config", str(cfg))
        rc = proc.popen.wait(120)
    err = proc.err.read_text().strip().splitlines()
    assert rc == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"gridflex cloud: port {port} on 127.0.0.1 is in use (")
    assert str(cfg) in err[0]


def test_an_unreachable_postgres_store_is_one_line_and_exit_1(tmp_path: Path) -> None:
    from gridflex.ops.broker import free_port

    cfg = _config(tmp_path, broker_port=1, api_port=free_port())
    doc = yaml.safe_load(cfg.read_text())
    doc["store"] = {"kind": "postgres", "dsn": f"postgresql://gridflex@127.0.0.1:{free_port()}/gridflex"}
    cfg.write_text(yaml.safe_dump(doc))
    proc = start(tmp_path, "cloud-pg", "cloud", "--config", str(cfg))
    rc = proc.popen.wait(120)
    err = proc.err.read_text().strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("gridflex cloud: cannot start: ") and "127.0.0.1" in err[0]


PLAN_ONCE = """
import logging, sys
from datetime import UTC, datetime
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
from cloud_controller.grid import build_schutterwald_region
from cloud_controller.live.planner import build_planner
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
site = SiteRef("b001", 12, (AssetRef("meter", "meter"), AssetRef("bat1", "battery", 5.0, 10.0)))
planner = build_planner(build_schutterwald_region(), [site], period_s=900, horizon_steps=4, margin_s=0,
                        station_limit_kw=5.0)
class History:
    def read_series(self, *args): return []
plan = planner.plan(datetime(2030, 1, 15, 17, tzinfo=UTC), {"b001": SiteSnapshot("b001", "online")}, History())
print("commands", len(plan.commands))
"""


HIGHS_ONCE = """
import importlib.util, sys
print("before", flush=True)
# the module alone, without the dispatch package's heavy __init__ (pyomo, the grid model)
spec = importlib.util.spec_from_file_location("quiet", "cloud_controller/dispatch/highs/quiet.py")
quiet = importlib.util.module_from_spec(spec)
spec.loader.exec_module(quiet)
quiet_highs = quiet.quiet_highs
h = quiet_highs()
h2 = quiet_highs()
print("after", h.getOptionValue("output_flag")[1], h2.getOptionValue("output_flag")[1], flush=True)
"""


def test_highs_starts_without_its_banner_and_keeps_stdout() -> None:
    """The banner HiGHS prints at C level on the first `Highs()`: gone; the process's own output kept."""
    proc = subprocess.run(
        [sys.executable, "-c", HIGHS_ONCE], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "before\nafter False False\n"
    assert [n for n in NOISE if n in proc.stdout + proc.stderr] == []


def test_only_pandapowers_two_notices_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    quiet_pandapower()
    quiet_pandapower()  # idempotent: one filter per logger
    caplog.set_level(logging.DEBUG)
    plotting = logging.getLogger("pandapower.plotting.plotly.draw_layers")
    aux = logging.getLogger("pandapower.auxiliary")
    plotting.info("Failed to import plotly - interactive plotting will not be available")
    aux.warning("numba cannot be imported and numba functions are disabled.\nProbably the execution is slow.")
    aux.warning("a real pandapower warning")
    plotting.warning("plotly version 2 is no longer supported")
    assert [r.getMessage() for r in caplog.records] == [
        "a real pandapower warning",
        "plotly version 2 is no longer supported",
    ]
    assert len(aux.filters) == len(plotting.filters) == 1


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_controllers_grid_and_solver_start_silently() -> None:
    """The sources themselves (the region from pandapower, the HiGHS LP, one solve), logging at DEBUG."""
    proc = subprocess.run([sys.executable, "-c", PLAN_ONCE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "commands 1\n"  # nothing but the script's own line on stdout
    assert [n for n in NOISE if n in proc.stderr] == [], proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_cloud_starts_and_plans_without_start_up_noise(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    cfg = _config(tmp_path, broker_port=mosquitto.port, api_port=0)
    proc = start(tmp_path, "cloud", "cloud", "--config", str(cfg))
    try:
        api_port = int(proc.wait_for(r"API on http://127\.0\.0\.1:(\d+)/", 300).group(1))
        deadline = time.monotonic() + 600
        health: dict[str, object] = {}
        while time.monotonic() < deadline:  # the first plan: pandapower region, HiGHS LP, solve
            health = httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=10).json()
            if health["last_plan_at"] is not None:
                break
            time.sleep(0.5)
        assert health.get("last_plan_at") is not None, proc.text()[-2000:]
    finally:
        assert proc.stop() == 0
    out = proc.text()
    assert [n for n in NOISE if n in out] == [], out[-3000:]
    assert "Traceback" not in out
