"""Dashboard figures at 1,000 sites (marker `bench`, printed): first paint, time to drawn data and
bytes transferred per page in Debian's headless Chromium (cold cache: every page in a fresh
context), and server time per API call. Targets from issue 18: first paint < 1 s, < 1 MB.

Run: `.venv/bin/pytest -m bench -s tests/bench/test_dashboard_bench.py`
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from gridflex.ops.broker import MosquittoBroker
from tests.integration.web import harness
from tests.integration.web.test_browser import PAGES

pytestmark = pytest.mark.bench

N_SITES = 1000
API_CALLS = [
    "/fleet/status",
    "/fleet/overview",
    "/fleet/sites?limit=50",
    "/fleet/sites?limit=50&sort=p_net_kw&desc=true&q=b0",
    "/sites/b0001/history",
    "/commands/log?limit=500",
    "/events?limit=500",
    "/grid/loading",
    "/grid/network",
    "/sites",
]
REPEATS = 7

# bytes over the wire (compressed) of the document and every resource it loaded
TRANSFER_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  return {fcp_ms: fcp ? fcp.startTime : null,
          bytes: (nav ? nav.transferSize : 0) + res.reduce((s, r) => s + r.transferSize, 0),
          decoded: (nav ? nav.decodedBodySize : 0) + res.reduce((s, r) => s + r.decodedBodySize, 0)};
}"""


def test_dashboard_pages_and_api_at_1000_sites(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    with harness.controller(mosquitto.port, tmp_path, N_SITES) as running:
        sites = harness.site_ids(N_SITES)
        harness.bring_online(running, mosquitto.port, sites)
        harness.publish_last_hour(running, mosquitto.port, sites[1], seq0=2)
        running.call(running.ctl.dispatch_once())
        pages = [*PAGES[:3], (f"/ui/sites/{sites[1]}", "#chart-site .main-svg"), *PAGES[3:]]
        print(
            f"\n{'page':<22} {'first paint ms':>14} {'data drawn ms':>14} {'kB transferred':>15} {'kB decoded':>11}"
        )
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=harness.chromium_or_fail(), args=["--no-sandbox"])
            for path, ready in pages:
                ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                page = ctx.new_page()
                t0 = time.perf_counter()
                page.goto(running.url + path)
                page.wait_for_selector(ready, timeout=60_000)
                drawn_ms = (time.perf_counter() - t0) * 1000
                m = page.evaluate(TRANSFER_JS)
                print(
                    f"{path[:22]:<22} {m['fcp_ms'] or float('nan'):>14.0f} {drawn_ms:>14.0f} "
                    f"{m['bytes'] / 1e3:>15.0f} {m['decoded'] / 1e3:>11.0f}"
                )
                ctx.close()
            browser.close()
        print(f"\n{'API call (1,000 sites)':<52} {'median ms':>9} {'max ms':>7} {'kB':>7}")
        with httpx.Client(base_url=running.url, headers={"Accept-Encoding": "gzip"}) as http:
            for url in API_CALLS:
                times, size = [], 0
                for _ in range(REPEATS):
                    t0 = time.perf_counter()
                    r = http.get(url)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, url
                    size = len(r.content)
                print(f"{url:<52} {statistics.median(times):>9.1f} {max(times):>7.1f} {size / 1e3:>7.0f}")
