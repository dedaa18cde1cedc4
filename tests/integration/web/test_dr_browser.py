"""The DR page in a real headless Chromium against a real controller, Mosquitto and HTTP server.

One request through the real path: site b0000 reports 2 kW (its measured baseline) and a
battery at 50 %; a 3 kW reduce request over one 2-s interval selects its battery at −3 kW;
the activator publishes the command, the site's ack (published on its `ack` topic) says
`applied`; the meter then reads −1 kW through the interval, so the report says 2 − (−1) =
3.00 kW delivered, 0.00 short, 3 kW × 2 s = 0.002 kWh. The page shows the request, its
selection, the ack and the delivery, without a console error or a request to another host.
GRIDFLEX_SCREENSHOTS=<dir> saves the page as `dr.png` there (docs/dashboard/).
"""

from __future__ import annotations

import json
import os
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from cloud_controller.service import CloudController
from gridflex.ops.broker import MosquittoBroker
from protocols.assets import BATTERY
from protocols.clock import RealClock
from protocols.codec import encode
from protocols.messages import Ack
from protocols.topics import site_topic
from tests.integration.web import harness

pytestmark = pytest.mark.integration

SITE = "b0000"
TOKEN = "operator-0123456789abcdef"
CONTRACTS = f"""
contracts:
  - {{site: {SITE}, program: peak, directions: [reduce], p_max_kw: 3, events_per_day: 5,
     max_duration: PT1H, battery: {{asset: {BATTERY}, capacity_kwh: 10}}}}
"""


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        out: dict[str, Any] = json.loads(resp.read())
        return out


def _report(ctl: CloudController) -> dict[str, Any]:
    return ctl.dr_activator.report("r1") or {}


def test_dr_page_shows_request_selection_acks_and_delivery(
    mosquitto: MosquittoBroker, tmp_path: Path, browser: Browser
) -> None:
    (tmp_path / "token").write_text(TOKEN, encoding="utf-8")
    (tmp_path / "contracts.yaml").write_text(CONTRACTS, encoding="utf-8")
    cfg = harness.config(mosquitto.port, tmp_path)
    cfg = cfg.model_copy(
        update={
            "api": cfg.api.model_copy(update={"operator_token_file": tmp_path / "token"}),
            "dr": cfg.dr.model_copy(
                update={"contracts": tmp_path / "contracts.yaml", "lead_s": 1.0, "report_after_s": 1.5}
            ),
        }
    )
    ctl = CloudController(cfg, harness.registry(1), clock=RealClock(), planner=harness.StandInPlanner())
    running = harness.RunningController(ctl).start()
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        harness.bring_online(running, mosquitto.port, [SITE], p_kw=2.0)
        start = datetime.now(UTC) + timedelta(seconds=2)
        end = start + timedelta(seconds=2)
        posted = _post(
            running.url + "/dr/requests",
            {
                "program": "peak",
                "ts": datetime.now(UTC).isoformat(),
                "request_id": "r1",
                "start": start.isoformat(),
                "end": end.isoformat(),
                "direction": "reduce",
                "p_kw": 3.0,
            },
        )
        assert posted["status"] == "selected"
        harness.wait_until(lambda: _report(ctl).get("commands_sent") == 1, 30)
        cmd_id = f"dr-r1-0-{SITE}-{BATTERY}"
        ack = Ack(
            site=SITE,
            ts=datetime.now(UTC),
            cmd_id=cmd_id,
            asset=BATTERY,
            status="applied",
            requested=-3.0,
            applied_value=-3.0,
            request_id="r1",
        )
        meter = harness.telemetry(SITE, 2, [start - timedelta(milliseconds=50)], [-1.0], 50.0)
        harness.publish(
            running,
            mosquitto.port,
            [(site_topic(SITE, "ack"), encode(ack), False), (site_topic(SITE, "telemetry"), meter, False)],
        )
        harness.wait_until(lambda: _report(ctl).get("intervals_reported") == 1, 60)
        assert _report(ctl)["acks"] == {"ok": 1}

        page = ctx.new_page()
        requests: list[str] = []
        errors: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(running.url + "/ui/dr")
        page.wait_for_selector("#dr-requests")
        assert page.locator("nav a.active").inner_text() == "DR"
        row = page.locator("#dr-requests tr[data-request=r1]")
        assert row.locator(".status").inner_text() == "completed"
        assert row.locator(".kw").inner_text() == "3.00"
        section = page.locator("section[data-request=r1]")
        assert section.locator(f".dr-selection tr[data-asset={BATTERY}] .kw").inner_text() == "-3.00"
        assert section.locator(f".dr-commands tr[data-cmd={cmd_id}] .ack").inner_text() == "ok"
        delivery = section.locator(f".dr-delivery tr[data-site={SITE}][data-step='0']")
        assert delivery.locator(".baseline").inner_text() == "2.00"
        assert delivery.locator(".actual").inner_text() == "-1.00"
        assert delivery.locator(".delivered").inner_text() == "3.00"
        assert delivery.locator(".shortfall").inner_text() == "0.00"
        assert section.locator(".delivered-kwh").inner_text() == "0.002"
        assert section.locator(".shortfall-kwh").inner_text() == "0.000"
        if shots := os.environ.get("GRIDFLEX_SCREENSHOTS"):
            page.screenshot(path=str(Path(shots) / "dr.png"), full_page=True)
        base = running.url
        assert [u for u in requests if not u.startswith(base + "/")] == []
        assert errors == []
    finally:
        ctx.close()
        running.stop()
