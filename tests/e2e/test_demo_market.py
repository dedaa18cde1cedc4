"""`gridflex demo --market` end to end: forecast requests → FSP offers → clearing → orders as EV/heat-pump limits → settlement.

Also the reference run without the market (the FSPs' sites market-only in both) and the relief per EUR.

Slow (the closed loop with 7 days of imported history: minutes on 2 cores), so not in the
default run: `pytest -m slow tests/e2e/test_demo_market.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2500)]


def test_demo_market_clears_activates_and_settles(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    cmd = [sys.executable, "-m", "gridflex", "demo", "--market", "--quick", "--speed", "200"]
    cmd += ["--sites", "6", "--no-bacnet", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    m = json.loads((out / "summary.json").read_text())["market"]
    assert m["requests"]["count"] >= 1 and max(m["requests"]["kw_per_isp"].values()) > 0
    assert m["offers"]["count"] >= 2 and m["fsp_refusals"] == []
    assert m["orders"]["count"] >= 1 and m["orders"]["kwh"] > 0
    assert m["orders"]["not_activated"] == {}
    st = m["settlement"]
    assert st["settled_orders"] >= 1
    assert st["net_eur"] == pytest.approx(st["price_eur"] - st["penalty_eur"], abs=1e-3)
    assert st["delivered_kwh"] > 0
    for isp, v in st["ordered_vs_delivered_kw_per_isp"].items():
        assert v["ordered"] > 0, isp
    # the FSPs' sites are market-only, and the reference ran first on the same seed without the market
    assert len(m["market_only_sites"]) >= 2 and (out / "reference").is_dir()
    a = m["against_reference"]
    assert a["relief_kvah"] == pytest.approx(a["reference_kvah"] - a["with_market_kvah"], abs=0.02)
    if st["net_eur"] > 0:
        assert a["relief_kvah_per_eur"] == pytest.approx(a["relief_kvah"] / st["net_eur"], rel=0.05, abs=0.01)
    md = (out / "summary.md").read_text()
    assert "## Market" in md and "kVAh per EUR" in md
