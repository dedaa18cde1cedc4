"""Helpers for tests that run `gridflex` commands as real processes: start, wait for a line, stop by PID."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: The start-up noise issue 18 removed; none of it may appear in a command's output.
NOISE = (
    "Running HiGHS",
    "THIRD_PARTY_NOTICES",
    "install numba",
    "numba cannot be imported",
    "Failed to import plotly",
)


@dataclass
class Proc:
    """A `gridflex` child process whose stdout/stderr go to files (read while it runs)."""

    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    def text(self) -> str:
        """Everything it printed so far, stdout then stderr."""
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """The first match of `pattern` in its output; AssertionError with the output's tail if none in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text())
            if m is not None:
                return m
            if self.popen.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} (rc {self.popen.poll()}):\n{self.text()[-3000:]}")

    def stop(self, timeout_s: float = 40.0) -> int:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL: this process only, by PID."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return int(self.popen.returncode)


def start(tmp: Path, name: str, *args: str) -> Proc:
    """Start `python -m gridflex ARGS` with its output in tmp/<name>.out / .err."""
    out, err = tmp / f"{name}.out", tmp / f"{name}.err"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    with out.open("wb") as o, err.open("wb") as e:
        popen = subprocess.Popen(
            [sys.executable, "-m", "gridflex", *args], stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env
        )
    return Proc(popen, out, err)
