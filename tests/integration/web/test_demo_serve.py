"""`gridflex demo --serve` as an operator runs it (a real process): a taken port is one line and
exit 2; Ctrl-C during the run reports the intervals measured so far and exits 130 (slow).

The served dashboard during and after a full run is checked by the demo test in
`tests/e2e/test_closed_loop.py` (one demo run serves both).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gridflex.ops.broker import free_port

DEMO = [sys.executable, "-m", "gridflex", "demo"]


def test_a_port_in_use_is_one_line_naming_it_and_exit_2(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [*DEMO, "--serve", "--port", str(port), "--out", str(tmp_path / "out")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and str(port) in lines[0] and "in use" in lines[0], lines
    assert not (tmp_path / "out").exists()  # nothing was started


def _dispatches(port: int) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return 0.0
    return next(
        (float(x.split()[1]) for x in text.splitlines() if x.startswith("gridflex_dispatch_total ")), 0.0
    )


@pytest.mark.slow
def test_ctrl_c_during_the_run_reports_what_ran_and_exits_130(tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "out"
    proc = subprocess.Popen(
        [*DEMO, "--sites", "2", "--quick", "--no-bacnet", "--serve", "--port", str(port), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while _dispatches(port) < 3:  # three plans: at least two intervals measured
            assert proc.poll() is None and time.monotonic() < deadline, "the demo never planned"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, stdout[-3000:]
    assert "interrupted after" in stdout and "# GridFlex demo summary" in stdout, stdout[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert 1 <= summary["intervals"] < 28
    assert "Interrupted (Ctrl-C)" in " ".join(summary["notes"])
    assert (out / "demo.png").stat().st_size > 0
