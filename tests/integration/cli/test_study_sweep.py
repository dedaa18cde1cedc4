"""`gridflex study --sweep`: bad keys refused before anything runs (in-process); as a real command, outputs per point,
the sweep table and its figure; the same numbers on a given Dask scheduler (real `dask scheduler` and
`dask worker` processes on loopback) as on the local cluster."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gridflex.cli import app

runner = CliRunner()
pytestmark = pytest.mark.integration

TINY = """
stations: [T_idx_118]
station_roles: {T_idx_118: focus_ev}
quick_weeks: ["01-13"]
scenarios: [stor, stor_proa_prob]
stress: [critical]
"""
SWEEP = (
    "--sweep",
    "sizes.battery_kwh=4,32",
    "--scenarios",
    "stor,stor_proa_prob",
    "--quick",
    "--no-validate",
)


def _study(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridflex", "study", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_an_unknown_sweep_key_exits_2_naming_it_before_any_run(tmp_path: Path) -> None:
    out = tmp_path / "res"
    args = ["study", "--out", str(out), "--sweep", "sizes.battery_kwh=8", "--sweep", "mix.*.evv=0.1,0.2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--sweep:mix.*.evv: unknown key 'evv' (did you mean 'ev'?)" in result.output
    assert not out.exists()
    result = runner.invoke(app, ["study", "--out", str(out), "--scheduler", "tcp://127.0.0.1:1"])
    assert result.exit_code == 2 and "--scheduler needs --sweep" in result.output


def _table(out: Path) -> list[dict[str, Any]]:
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["axes"] == [{"key": "sizes.battery_kwh", "values": [4.0, 32.0]}]
    points: list[dict[str, Any]] = doc["points"]
    return points


@pytest.mark.slow
def test_sweep_on_the_local_cluster_writes_points_table_and_figure(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "res"
    proc = _study("--config", str(cfg), "--out", str(out), *SWEEP, "--jobs", "2", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on a local Dask cluster of 2 process(es)" in proc.stderr
    points = _table(out)
    assert [p["point"] for p in points] == ["p01_sizes.battery_kwh=4", "p02_sizes.battery_kwh=32"]
    for p in points:
        summary = json.loads((out / "points" / str(p["point"]) / "summary.json").read_text())
        assert summary["quick"] is True and summary["steps"] == 7 * 96
        for sc in ("no_control", "stor", "stor_proa_prob"):
            assert (
                p["results"]["critical"][sc]["load_violations"]
                == (summary["results"]["critical"][sc]["load_violations"])
            )
    small, large = (p["results"]["critical"] for p in points)
    assert large["stor_proa_prob"]["load_violations"] < small["stor_proa_prob"]["load_violations"]
    md = (out / "sweep.md").read_text()
    assert md.startswith("| sizes.battery_kwh | critical: no-control viol. | critical: Stor resolved % |")
    assert len(md.strip().splitlines()) == 2 + 2
    assert (out / "sweep_resolved.png").stat().st_size > 5_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(popen: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM this process by PID, SIGKILL after `timeout_s`."""
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(10)


@pytest.fixture
def dask_scheduler(tmp_path: Path) -> Iterator[str]:
    """A real `dask scheduler` and one `dask worker` (one thread, with its nanny) on loopback."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask"
    logs.mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, module, args in (
            ("scheduler", "distributed.cli.dask_scheduler", ["--host", "127.0.0.1", "--port", str(port)]),
            ("worker", "distributed.cli.dask_worker", [address, "--host", "127.0.0.1", "--nthreads", "1"]),
        ):
            with (logs / f"{name}.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", module, *args, "--no-dashboard"],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        cwd=tmp_path,
                    )
                )
        deadline = time.monotonic() + 180
        while "Starting established connection" not in (logs / "worker.log").read_text(errors="replace"):
            assert time.monotonic() < deadline, (logs / "worker.log").read_text(errors="replace")[-2000:]
            assert all(p.poll() is None for p in procs), (logs / "scheduler.log").read_text()[-2000:]
            time.sleep(0.5)
        yield address
    finally:
        for popen in reversed(procs):
            _stop(popen)


@pytest.mark.slow
def test_sweep_on_a_given_scheduler_gives_the_local_clusters_numbers(
    tmp_path: Path, dask_scheduler: str
) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    remote, local = tmp_path / "remote", tmp_path / "local"
    proc = _study(
        "--config", str(cfg), "--out", str(remote), *SWEEP, "--scheduler", dask_scheduler, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"on {dask_scheduler}" in proc.stderr
    proc = _study("--config", str(cfg), "--out", str(local), *SWEEP, "--jobs", "1", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _table(remote) == _table(local)
