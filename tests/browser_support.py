"""One headless Chromium tab on a running dashboard, shared by the real-browser test modules."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from lendsafe.config import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"


@contextmanager
def browser_tab(url: str, timeout_ms: int) -> Iterator:
    """A tab (1440x1000, downloads accepted) opened at ``url``; the browser closes on exit."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
        tab = context.new_page()
        tab.set_default_timeout(timeout_ms)
        tab.goto(url)
        try:
            yield tab
        finally:
            browser.close()
