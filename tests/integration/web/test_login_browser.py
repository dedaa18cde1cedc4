"""The dashboard's login in a real headless Chromium (Debian's) against a real controller and Mosquitto.

With roles configured, a page redirects to the login; a wrong token is refused; a viewer sees
the overview but no operator control, and the page's JavaScript cannot read the session cookie.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from cloud_controller.service import CloudController
from gridflex.ops.broker import MosquittoBroker
from protocols.clock import RealClock
from tests.integration.web import harness

pytestmark = pytest.mark.integration

VIEWER = "viewer-token-for-the-browser"
OPERATOR = "operator-token-for-the-browser"


def test_viewer_logs_in_sees_the_overview_and_no_operator_control(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    (tmp_path / "viewer.token").write_text(VIEWER + "\n")
    (tmp_path / "operator.token").write_text(OPERATOR + "\n")
    cfg = harness.config(mosquitto.port, tmp_path)
    api = cfg.api.model_copy(
        update={
            "viewer_token_file": tmp_path / "viewer.token",
            "operator_token_file": tmp_path / "operator.token",
        }
    )
    ctl = CloudController(
        cfg.model_copy(update={"api": api}),
        harness.registry(3),
        clock=RealClock(),
        planner=harness.StandInPlanner(),
    )
    running = harness.RunningController(ctl).start()
    try:
        harness.bring_online(running, mosquitto.port, harness.site_ids(3), p_kw=1.5)
        running.call(ctl.dispatch_once())
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=harness.chromium_or_fail(), args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(running.url + "/")
                assert page.url == running.url + "/login?next=%2F"
                page.fill("#token", "not-the-viewer-token")
                page.click("#login-submit")
                assert page.locator("#login-error").inner_text() == "Wrong token."
                page.fill("#token", VIEWER)
                page.click("#login-submit")
                page.wait_for_url(running.url + "/")
                page.wait_for_function("document.getElementById('fleet-kw').textContent === '4.50'")
                assert page.locator("#role").inner_text() == "viewer"
                assert "gridflex_session" not in page.evaluate("document.cookie")  # HttpOnly
                page.goto(running.url + "/ui/grid", wait_until="domcontentloaded")
                assert page.locator("h1").inner_text() == "Grid"
                assert page.locator("#run-scenarios").count() == 0  # the operator's control is not there
                page.click("#logout")
                page.wait_for_url(running.url + "/login")
                page.goto(running.url + "/")
                assert page.url.startswith(running.url + "/login")
                assert errors == []
            finally:
                browser.close()
    finally:
        running.stop()
