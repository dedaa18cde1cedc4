"""The dashboard in a real headless Chromium (Debian's), against a real controller and Mosquitto.

Every page loads with 0, 20 and 1,000 sites without console errors and without a request
to any host but the server; live values follow telemetry published through the broker;
the site chart spans the last hour; losing the broker shows a banner. With
GRIDFLEX_SCREENSHOTS=<dir> the 20-site run saves one PNG per page there (docs/dashboard/).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page

from cloud_controller.grid import build_schutterwald_region
from cloud_controller.web.assets import PLOTLY_URL
from gridflex.ops.broker import MosquittoBroker
from protocols.topics import site_topic
from tests.integration.web import harness

pytestmark = pytest.mark.integration

PAGES = [
    ("/", "#chart-horizon .main-svg"),
    ("/ui/grid", "#chart-network .main-svg"),
    ("/ui/sites", "#site-count:not(:empty)"),
    ("/ui/commands", "#command-summary:not(:empty)"),
    ("/ui/events", "#events"),
    ("/docs", ".swagger-ui .info"),
    ("/redoc", "redoc .api-content, [role=main], .redoc-wrap"),
]


def _shot_name(path: str) -> str:
    if path == "/":
        return "overview"
    if path.startswith("/ui/sites/"):
        return "site"
    return path.removeprefix("/ui/").strip("/")


@dataclass
class Watched:
    """A page with every request and every console error / uncaught exception recorded."""

    page: Page
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def foreign(self, base: str) -> list[str]:
        return [
            u
            for u in self.requests
            if not (
                u.startswith(base + "/")
                or u == base
                or u.startswith(("data:", base.replace("http:", "blob:http:")))
            )
        ]


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="Europe/Berlin")
    page = ctx.new_page()
    w = Watched(page)
    page.on("request", lambda r: w.requests.append(r.url))
    page.on("console", lambda m: w.errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: w.errors.append(f"pageerror: {e}"))
    try:
        yield w
    finally:
        ctx.close()


@pytest.mark.parametrize("n_sites", [0, 20, 1000], ids=["0-sites", "20-sites", "1000-sites"])
def test_every_page_loads_without_errors_or_foreign_requests(
    n_sites: int, mosquitto: MosquittoBroker, tmp_path: Path, watched: Watched
) -> None:
    shots = os.environ.get("GRIDFLEX_SCREENSHOTS") if n_sites == 20 else None
    # the 20-site run draws the Schutterwald study's region from its geodata; the others the generated layout
    region = build_schutterwald_region() if n_sites == 20 else None
    with harness.controller(mosquitto.port, tmp_path, n_sites, region=region) as running:
        sites = harness.site_ids(n_sites)
        if sites:
            harness.bring_online(running, mosquitto.port, sites, p_kw=1.5)
        if n_sites == 20:  # one site with an hour of history (and the screenshot of its page)
            harness.publish_last_hour(running, mosquitto.port, sites[1], seq0=2)
            harness.wait_until(lambda: running.ctl.store.count_samples(sites[1]) == 122)
        running.call(running.ctl.dispatch_once())
        pages = list(PAGES)
        if sites:
            pages.insert(3, (f"/ui/sites/{sites[1]}", "#chart-site .main-svg"))
        page = watched.page
        for path, ready in pages:
            page.goto(running.url + path)
            page.wait_for_selector(ready, timeout=30_000)
            if path == "/":
                expected = f"{1.5 * n_sites:.2f}"
                page.wait_for_function(f"document.getElementById('fleet-kw').textContent === '{expected}'")
            if path == "/ui/sites":
                rows = page.locator("#sites tbody tr")
                assert rows.count() == min(50, n_sites)
                assert page.locator("#site-count").inner_text() == f"{n_sites} of {n_sites} sites"
            if path == "/ui/grid":
                source = "pandapower geodata" if region is not None else "generated one-line layout"
                assert page.locator("#network-note").inner_text().startswith(source)
                assert page.locator("#run-scenarios").is_disabled()  # the stand-in planner has no scenarios
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(shots) / f"{_shot_name(path)}.png"))
        assert watched.foreign(running.url) == []
        assert watched.errors == []
        assert any(u.endswith(PLOTLY_URL) for u in watched.requests)


def test_sites_table_filters_sorts_and_pages_1000_sites(
    mosquitto: MosquittoBroker, tmp_path: Path, watched: Watched
) -> None:
    with harness.controller(mosquitto.port, tmp_path, 1000) as running:
        harness.bring_online(running, mosquitto.port, harness.site_ids(1000)[:300])
        page = watched.page
        page.goto(running.url + "/ui/sites")
        page.wait_for_selector("#site-count:not(:empty)")
        page.select_option("#mode", "online")
        page.wait_for_function("document.getElementById('site-count').textContent === '300 of 1000 sites'")
        page.fill("#q", "b00")
        page.wait_for_function("document.getElementById('site-count').textContent === '100 of 1000 sites'")
        page.click("#next")
        page.wait_for_function("document.querySelector('#sites tbody tr').dataset.site === 'b0050'")
        page.click("th[data-sort=site]")  # second click on the sorted column: descending
        page.wait_for_function("document.querySelector('#sites tbody tr').dataset.site === 'b0099'")
        assert watched.errors == []


def test_live_values_follow_telemetry_and_broker_loss_shows_a_banner(
    mosquitto: MosquittoBroker, tmp_path: Path, watched: Watched
) -> None:
    with harness.controller(mosquitto.port, tmp_path, 20, poll_s=0.5) as running:
        sites = harness.site_ids(20)
        harness.bring_online(running, mosquitto.port, sites, p_kw=1.0)
        page = watched.page
        page.goto(running.url + "/")
        page.wait_for_function("document.getElementById('fleet-kw').textContent === '20.00'")
        as_of = page.locator("#as-of").inner_text()
        later = datetime.now(UTC) + timedelta(seconds=2)
        harness.publish(
            running,
            mosquitto.port,
            [
                (
                    site_topic(sites[0], "telemetry"),
                    harness.telemetry(sites[0], 2, [later], [11.0], 60.0),
                    False,
                )
            ],
        )
        page.wait_for_function("document.getElementById('fleet-kw').textContent === '30.00'", timeout=15_000)
        # "data as of" comes from /fleet/status, polled apart from the fleet's kW: wait for it too
        page.wait_for_function(
            "prev => document.getElementById('as-of').textContent !== prev", arg=as_of, timeout=15_000
        )
        page.goto(f"{running.url}/ui/sites/{sites[0]}")
        page.wait_for_function("document.getElementById('site-p-kw').textContent === '11.00'")
        mosquitto.close()
        page.wait_for_function(
            "document.getElementById('banners').textContent.includes('lost the MQTT broker')", timeout=20_000
        )
        assert page.locator("#broker").inner_text() == "broker lost"
        assert watched.errors == []


def test_site_chart_shows_the_last_hour_in_the_operators_zone(
    mosquitto: MosquittoBroker, tmp_path: Path, watched: Watched
) -> None:
    with harness.controller(mosquitto.port, tmp_path, 2, timezone="America/New_York") as running:
        site = harness.site_ids(2)[0]
        now = datetime.now(UTC).replace(microsecond=0)
        at = [now - timedelta(minutes=m) for m in range(110, -1, -10)]  # 2 h back, every 10 min
        harness.publish(
            running,
            mosquitto.port,
            [
                (
                    site_topic(site, "telemetry"),
                    harness.telemetry(site, 0, at, [float(m) for m in range(len(at))], 40.0),
                    False,
                )
            ],
        )
        harness.wait_until(lambda: running.ctl.store.count_samples(site) == 2 * len(at))
        page = watched.page
        page.goto(f"{running.url}/ui/sites/{site}")
        page.wait_for_selector("#chart-site .main-svg")
        page.wait_for_function("document.getElementById('chart-site').data.length >= 2")
        xrange = page.evaluate("document.getElementById('chart-site').layout.xaxis.range")
        meter = page.evaluate("document.getElementById('chart-site').data.find(t => t.name === 'meter/p_kw')")
        ny = [datetime.fromisoformat(x) for x in xrange]  # wall-clock in New York, as drawn
        assert (ny[1] - ny[0]) == timedelta(hours=1)
        new_york_now = now.astimezone(ZoneInfo("America/New_York")).replace(tzinfo=None)
        assert abs((ny[1] - new_york_now).total_seconds()) < 30
        # only the samples of the last hour (6, one every 10 min), hover text in UTC
        assert len(meter["x"]) in (6, 7)
        assert all(c.endswith("Z") for c in meter["customdata"])
        assert watched.errors == []


def test_grid_page_colours_each_transformer_from_the_background_forecast(
    mosquitto: MosquittoBroker, tmp_path: Path, watched: Watched
) -> None:
    """The grid page reads the probabilistic forecast of every plan: each transformer's row and its alerts."""
    import numpy as np

    from cloud_controller.forecast.background import LatestForecast
    from cloud_controller.forecast.probabilistic import ProbabilisticCongestion

    region = build_schutterwald_region()
    households = list(range(0, region.n_sites, 4))  # 80 sites over the three stations
    forecast = ProbabilisticCongestion(region, households).forecast(
        np.full((8, len(households)), 6.0), np.full((8, len(households)), 1.5)
    )
    now = datetime.now(UTC)
    with harness.controller(mosquitto.port, tmp_path, 20, region=region) as running:
        running.ctl.congestion.latest = LatestForecast(forecast, now, 900.0, now)
        page = watched.page
        page.goto(running.url + "/ui/grid")
        page.wait_for_selector("#chart-network .main-svg")
        page.wait_for_function(
            "document.getElementById('forecast-note').textContent.startsWith('forecast of')"
        )
        rows = {
            r.locator("td").nth(0).inner_text(): [r.locator("td").nth(i).inner_text() for i in range(1, 5)]
            for r in page.locator("#elements tbody tr").all()
        }
        for station in ("T_idx_77", "T_idx_118", "T_idx_80"):
            e = list(forecast.names).index(station)
            assert rows[station][1] == f"{float(np.nanmax(forecast.expected[e])):.0f}"
            assert rows[station][2] == f"{float(np.nanmax(forecast.p_exceed[e])):.2f}"
            assert rows[station][3] == f"forecast ({forecast.n_scenarios} scenarios)"
        assert rows["hvmv"][3].startswith("plan + forecast")  # the plan's HV/MV row, with the forecast's
        note = page.locator("#forecast-note").inner_text()
        assert f"{len(forecast.alerts)} alert(s)" in note
        assert watched.errors == []
