"""`make bundle` installs `gridflex edge` on a gateway with no network: pip with --no-index, in a netns.

A site gateway often has no PyPI: the bundle (the project's wheel and every runtime wheel
the lock pins) must install alone. The install runs inside a new network namespace
(`unshare -n`: only a loopback that is down) with pip's own configuration ignored, so a
missing wheel fails the test instead of being fetched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def test_bundle_installs_offline_into_a_fresh_venv_and_checks_a_site_config(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("no network namespaces here (unshare -n)")
    bundle = tmp_path / "bundle"
    made = subprocess.run(
        ["make", "-C", str(ROOT), "bundle", f"BUNDLE={bundle}"], capture_output=True, text=True, timeout=900
    )
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    wheels = sorted(p.name for p in bundle.glob("*.whl"))
    assert any(w.startswith("gridflex-") for w in wheels) and len(wheels) > 50
    dev = {"pytest", "pytest_asyncio", "pytest_timeout", "hypothesis", "ruff", "mypy"}
    assert not dev & {w.split("-")[0].lower() for w in wheels}  # no dev group

    venv = tmp_path / "gw"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}
    pip = [str(venv / "bin/pip"), "install", "-q", "--no-index", "--find-links", str(bundle)]
    install = subprocess.run(
        ["unshare", "-n", *pip, "gridflex"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    check = subprocess.run(
        [
            "unshare",
            "-n",
            str(venv / "bin/gridflex"),
            "edge",
            "check-config",
            str(ROOT / "examples/site.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stderr[-2000:]
    assert '"site": "b001"' in check.stdout and '"config_hash"' in check.stdout
