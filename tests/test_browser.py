"""End to end in headless Chromium: `streamlit run app.py` on 127.0.0.1, driven the way an analyst
uses it. Score the example denial from the form, see its reasons and explanation, download its
notice PDF and pass it through the completeness check, upload a batch CSV with one bad row and get
the zip and the error list. A screenshot of each page goes to tests/artifacts/.

The server runs with the real default writer (the LoRA language model, verified, with the
template fallback); only the audit store is a temporary one.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from lendsafe.audit import AuditStore
from lendsafe.config import PROJECT_ROOT
from lendsafe.datasets import load_spec
from lendsafe.errors import LendSafeError
from lendsafe.notice import NoticeSettings, check_pdf
from lendsafe.scoring import Scorer
from lendsafe.ui import PAGES, tables
from lendsafe.ui import server as server_helpers
from lendsafe.ui.server import start

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"
DENIAL = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
START_TIMEOUT_S = 90
DECISION_TIMEOUT_MS = 300_000         # first decision may load the language model
PAGE_TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test installs it)"),
    pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs poppler-utils (make test installs it)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    audit_url = f"sqlite:///{folder / 'audit.db'}"
    # the real default writer: LENDSAFE_USE_LLM is removed from the server's environment
    running = start(log=folder / "streamlit.log", env={"LENDSAFE_DATABASE_URL": audit_url, "LENDSAFE_USE_LLM": None})
    try:
        running.wait_healthy(START_TIMEOUT_S)
    except LendSafeError as exc:
        running.stop()
        pytest.fail(str(exc))
    with running:
        yield SimpleNamespace(url=running.url, audit_url=audit_url, log=running.log, folder=folder)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
        tab = context.new_page()
        tab.set_default_timeout(PAGE_TIMEOUT_MS)
        tab.goto(server.url)
        tab.get_by_role("heading", name=PAGES[0].title).wait_for()
        yield tab
        browser.close()


def wait_idle(page) -> None:
    server_helpers.wait_idle(page, DECISION_TIMEOUT_MS)


def open_page(page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    page.get_by_role("heading", name=title, exact=True).wait_for()
    wait_idle(page)


def screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main area, so the viewport grows to fit it."""
    size = page.viewport_size
    height = page.evaluate("Math.max(document.body.scrollHeight, ...[...document.querySelectorAll("
                           "'[data-testid=stMain], [data-testid=stAppViewContainer], [data-testid=stMainBlockContainer]')]"
                           ".map(e => e.scrollHeight))")
    page.set_viewport_size({"width": size["width"], "height": min(max(height + 120, size["height"]), 12000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def latest_record(server):
    with AuditStore(server.audit_url) as store:
        return store.list(limit=None)[-1]


def test_score_a_denial_and_see_its_reasons_and_explanation(page, server):
    spec = load_spec("hmda")
    for feature in spec.input_fields:
        text = tables.cell_text(feature, DENIAL[feature.name])
        if feature.type in ("float", "int"):
            page.get_by_role("textbox", name=feature.label).fill(text)
        else:
            assert page.get_by_role("combobox", name=feature.label).input_value() == text
    page.get_by_role("button", name="Decide").click()
    page.get_by_role("heading", name="Principal reasons").wait_for(timeout=DECISION_TIMEOUT_MS)
    wait_idle(page)
    expected = Scorer.load("hmda").score(DENIAL)
    for reason in expected.reasons:
        assert page.get_by_text(reason.statement, exact=True).first.is_visible()
    record = latest_record(server)
    decision = record.to_decision()
    assert record.decision == "deny" and record.actor.startswith("app:")
    assert [r.code for r in decision.reasons] == [r.code for r in expected.reasons]
    first_sentence = decision.explanation.split(". ")[0]
    assert page.get_by_text(first_sentence).first.is_visible()
    assert page.get_by_text(f"Written by: {decision.writer}").first.is_visible()
    screenshot(page, "explorer")


def test_download_the_notice_and_pass_the_completeness_check(page, server):
    open_page(page, "Notices")
    page.locator("[data-testid='stImage'] img").first.wait_for()
    screenshot(page, "notices")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the notice PDF").click()
    pdf = Path(download.value.path()).read_bytes()
    record = latest_record(server)
    assert hashlib.sha256(pdf).hexdigest() == record.notice_sha256
    report = check_pdf(pdf, record.to_decision(), NoticeSettings())
    assert report.passed, report.failures()


def test_batch_with_one_bad_row_returns_the_zip_and_the_error_list(page, server):
    rows = list(csv.DictReader(io.StringIO(tables.sample_csv(load_spec("hmda")))))
    rows.insert(1, {**rows[0], "application_id": "BAD-ROW", "loan_to_value": "-2"})
    path = server.folder / "applications.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    page.locator("input[type=file][accept*='.csv']").set_input_files(str(path))
    page.get_by_text("applications.csv").first.wait_for()
    page.get_by_role("button", name="Run the batch").click()
    download_button = page.get_by_role("button", name="Download the notices (zip with manifest)")
    download_button.wait_for(timeout=DECISION_TIMEOUT_MS)
    wait_idle(page)
    assert page.get_by_text("1 row(s) were not decided; all of them are in errors.csv inside the zip.").first.is_visible()
    screenshot(page, "notices_batch")
    with page.expect_download() as download:
        download_button.click()
    archive = zipfile.ZipFile(Path(download.value.path()))
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    errors = list(csv.DictReader(io.StringIO(archive.read("errors.csv").decode())))
    assert [e["row"] for e in errors] == ["3"] and len(manifest) == len(rows) - 1
    assert "loan_to_value must be between 0 and 3" in errors[0]["problems"]
    pdfs = [name for name in archive.namelist() if name.endswith(".pdf")]
    assert sorted(pdfs) == sorted(m["path"] for m in manifest if m["path"]) and pdfs
    assert all(m["check"] == "pass" for m in manifest if m["path"])


@pytest.mark.parametrize("page_spec", PAGES[2:], ids=[p.module for p in PAGES[2:]])
def test_every_other_page_renders(page, server, page_spec):
    open_page(page, page_spec.title)
    assert not page.locator("[data-testid='stException']").count()
    screenshot(page, page_spec.module)
