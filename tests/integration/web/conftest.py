"""One headless Chromium (Debian's) for every dashboard test in this folder: launched once per module (as before: test_login_browser starts its own Playwright)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.integration.web import harness


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = harness.chromium_or_fail()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()
