"""The Fair lending page end to end in headless Chromium (`streamlit run app.py` on 127.0.0.1): it draws the
saved hmda analysis with its plots, the report PDF it offers is the one on disk, and its button runs the
analysis again. Saved analyses come from ``LENDSAFE_FAIRNESS_DIR`` (a temporary copy of the session's
analysis); a screenshot goes to tests/artifacts/fairness.png."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from lendsafe.config import PROJECT_ROOT
from lendsafe.errors import LendSafeError
from lendsafe.fairness.analysis import FAIRNESS_DIR_ENV
from lendsafe.ui import server as server_helpers

from browser_support import ARTIFACTS, CHROMIUM, browser_tab  # noqa: F401
from lendsafe.ui.server import start

START_TIMEOUT_S = 90
RUN_TIMEOUT_MS = 300_000
PAGE_TIMEOUT_MS = 60_000
TITLE = "Fair lending"

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test installs it)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, fairness_hmda_folder):
    folder = tmp_path_factory.mktemp("browser-fairness")
    shutil.copytree(fairness_hmda_folder, folder / "fairness" / "hmda")
    env = {FAIRNESS_DIR_ENV: str(folder / "fairness"), "LENDSAFE_USE_LLM": "0",
           "LENDSAFE_DATABASE_URL": f"sqlite:///{folder / 'audit.db'}"}
    running = start(log=folder / "streamlit.log", env=env)
    try:
        running.wait_healthy(START_TIMEOUT_S)
    except LendSafeError as exc:
        running.stop()
        pytest.fail(str(exc))
    with running:
        yield SimpleNamespace(url=running.url, saved=folder / "fairness" / "hmda")


@pytest.fixture(scope="module")
def page(server):
    with browser_tab(server.url, PAGE_TIMEOUT_MS) as tab:
        tab.get_by_role("link", name=TITLE).first.click()
        tab.get_by_role("heading", name=TITLE, exact=True).wait_for()
        server_helpers.wait_idle(tab, RUN_TIMEOUT_MS)
        yield tab


def test_the_saved_analysis_is_drawn_with_its_plots_and_report(page, server):
    results = json.loads((server.saved / "fairness.json").read_text())
    for name, section in results["outcomes"].items():
        for group, gap in section["risk_deciles"]["weighted_gaps"].items():
            text = f"{name} = {group} vs {section['control']}, risk held equal"
            assert page.get_by_text(text).first.is_visible()
    images = page.locator("[data-testid='stImage'] img")
    images.nth(len(results["files"]["plots"]) - 1).wait_for()
    assert images.count() == len(results["files"]["plots"])
    assert not page.locator("[data-testid='stException']").count()
    page.set_viewport_size({"width": 1440, "height": 3000})
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "fairness.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1000})
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the report PDF").click()
    assert Path(download.value.path()).read_bytes() == (server.saved / results["files"]["report"]).read_bytes()


def test_the_button_runs_the_analysis_again(page, server):
    before = json.loads((server.saved / "fairness.json").read_text())["created"]
    page.get_by_text("Run the analysis").first.click()
    page.get_by_text("Search for less discriminatory alternatives").click()      # off: a quick run
    page.get_by_role("button", name="Run the fair-lending analysis").click()
    page.get_by_text("Analysis finished").wait_for(timeout=RUN_TIMEOUT_MS)
    server_helpers.wait_idle(page, RUN_TIMEOUT_MS)
    results = json.loads((server.saved / "fairness.json").read_text())
    assert "lda" not in results and results["created"] >= before
    assert page.get_by_text("This analysis ran without the alternative search").first.is_visible()
