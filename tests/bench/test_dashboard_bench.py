"""Dashboard figures at 1,000 sites (marker `bench`, printed): first paint, time to drawn data and
bytes per page in Debian's headless Chromium (transferred, encoded and decoded; cold: every page
in a fresh context, warm: the same page again), and server time per API call. Targets from issue 18: first paint < 1 s, < 1 MB.

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

PAGE_BUDGET_BYTES = 1_000_000  # issue 18: < 1 MB per page

# Of the document and every resource it loaded: bytes over the wire (transferSize: headers and
# the gzip-encoded body; 0 for a resource the cache answered), encoded bodies (Content-Length of
# what was sent) and decoded bodies (what the page works with).
TRANSFER_JS = """() => {
  const all = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const sum = (k) => all.reduce((s, r) => s + r[k], 0);
  return {fcp_ms: fcp ? fcp.startTime : null, bytes: sum('transferSize'),
          encoded: sum('encodedBodySize'), decoded: sum('decodedBodySize')};
}"""


def test_dashboard_pages_and_api_at_1000_sites(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    with harness.controller(mosquitto.port, tmp_path, N_SITES) as running:
        sites = harness.site_ids(N_SITES)
        harness.bring_online(running, mosquitto.port, sites)
        harness.publish_last_hour(running, mosquitto.port, sites[1], seq0=2)
        running.call(running.ctl.dispatch_once())
        pages = [*PAGES[:3], (f"/ui/sites/{sites[1]}", "#chart-site .main-svg"), *PAGES[3:]]
        print(
            f"\n{'page':<22} {'visit':<5} {'first paint ms':>14} {'data drawn ms':>14} "
            f"{'kB transferred':>15} {'kB encoded':>11} {'kB decoded':>11}"
        )
        cold: dict[str, int] = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=harness.chromium_or_fail(), args=["--no-sandbox"])
            for path, ready in pages:
                ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                page = ctx.new_page()
                for visit in ("cold", "warm"):  # warm: the same context again, plotly.js from its cache
                    t0 = time.perf_counter()
                    page.goto(running.url + path)
                    page.wait_for_selector(ready, timeout=60_000)
                    drawn_ms = (time.perf_counter() - t0) * 1000
                    m = page.evaluate(TRANSFER_JS)
                    if visit == "cold":
                        cold[path] = m["bytes"]
                    print(
                        f"{path[:22]:<22} {visit:<5} {m['fcp_ms'] or float('nan'):>14.0f} {drawn_ms:>14.0f} "
                        f"{m['bytes'] / 1e3:>15.0f} {m['encoded'] / 1e3:>11.0f} {m['decoded'] / 1e3:>11.0f}"
                    )
                ctx.close()
            browser.close()
        assert max(cold.values()) < PAGE_BUDGET_BYTES, cold  # bytes, not time: the same on any machine
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
