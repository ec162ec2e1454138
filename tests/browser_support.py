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


def sign_in(page, name: str, password: str, timeout_ms: int) -> None:
    """Sign in with the sidebar's form (each field committed with Enter, then Sign in); waits for the run."""
    from lendsafe.ui import server

    sidebar = page.locator("[data-testid=stSidebar]")
    if not sidebar.get_by_role("textbox", name="User name").is_visible():
        sidebar.get_by_text("Sign in to issue notices").click()
    for label, value in (("User name", name), ("Password", password)):
        box = sidebar.get_by_role("textbox", name=label, exact=True)
        box.fill(value)
        box.press("Enter")
        server.wait_idle(page, timeout_ms)
    sidebar.get_by_role("button", name="Sign in", exact=True).click()
    server.wait_idle(page, timeout_ms)
