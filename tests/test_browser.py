"""End to end in headless Chromium: `streamlit run app.py` on 127.0.0.1, driven the way an analyst
uses it. A what-if decision from the form is a draft that records nothing; editing a value marks the
result stale and a field's error goes as soon as the value is valid; an analyst signs in and issues
the notice, and the audit record names her; a batch runs with the reference chosen in the session
and its manifest names each application; the audit page finds records by applicant, id and reason
and opens one from a link. A screenshot of each page goes to tests/artifacts/.

The server runs with the real default writer (the LoRA language model, verified, with the template
fallback; drafts use the template writer while the model is still loading); the audit store and the
users file are temporary ones.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from lendsafe.audit.store import AuditStore
from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.specs import load_spec
from lendsafe.errors import LendSafeError
from lendsafe.identity import UsersFile
from lendsafe.notice import Notice, NoticeSettings, check_pdf
from lendsafe.decide.scoring import Scorer
from lendsafe.ui import PAGES, fields, record_rows
from lendsafe.ui import server as server_helpers

import browser_support
from browser_support import ARTIFACTS, CHROMIUM, browser_tab  # noqa: F401
from lendsafe.ui.server import start

DENIAL = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
START_TIMEOUT_S = 90
DECISION_TIMEOUT_MS = 300_000
PAGE_TIMEOUT_MS = 60_000
ANALYST, PASSWORD = "alice", "a long analyst password"

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test installs it)"),
    pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs poppler-utils (make test installs it)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    audit_url = f"sqlite:///{folder / 'audit.db'}"
    users = folder / "users.json"
    UsersFile(users).add(ANALYST, PASSWORD, "analyst")
    # the real default writer: LENDSAFE_USE_LLM is removed from the server's environment
    running = start(log=folder / "streamlit.log", env={"LENDSAFE_DATABASE_URL": audit_url, "LENDSAFE_USE_LLM": None,
                                                       "LENDSAFE_USERS_FILE": str(users)})
    try:
        running.wait_healthy(START_TIMEOUT_S)
    except LendSafeError as exc:
        running.stop()
        pytest.fail(str(exc))
    with running:
        yield SimpleNamespace(url=running.url, audit_url=audit_url, log=running.log, folder=folder)


@pytest.fixture(scope="module")
def page(server):
    with browser_tab(server.url, PAGE_TIMEOUT_MS) as tab:
        tab.get_by_role("heading", name="LendSafe").wait_for()
        yield tab


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


def records(server, **filters):
    with AuditStore(server.audit_url) as store:
        return store.list(limit=None, **filters)


def set_text(page, label: str, value: str) -> None:
    """Type into a text field and commit it (Streamlit commits on Enter)."""
    box = page.get_by_role("textbox", name=label, exact=True)
    box.fill(value)
    box.press("Enter")
    wait_idle(page)


def decide_the_denial_from_the_form(page) -> None:
    spec = load_spec("hmda")
    for feature in spec.input_fields:
        if not fields.is_choice(feature):
            set_text(page, fields.field_label(feature), fields.cell_text(feature, DENIAL[feature.name]))
    page.get_by_role("button", name="Decide", exact=True).click()
    page.get_by_role("heading", name="Result (from the form)").wait_for(timeout=DECISION_TIMEOUT_MS)
    wait_idle(page)


def test_the_start_page_says_what_the_tool_does_and_where_to_start(page):
    assert page.get_by_text("why was this applicant denied").first.is_visible()
    for title in ("Decision explorer", "Notices", "Audit", "Evaluation"):
        assert page.get_by_role("link", name=title).first.is_visible()
    screenshot(page, "start")


def test_a_what_if_decision_records_nothing_and_cannot_be_issued_anonymously(page, server):
    open_page(page, "Decision explorer")
    spec = load_spec("hmda")
    rating = spec.feature("consumer_credit_history")
    shown = page.get_by_role("combobox", name=rating.label)
    assert fields.choice_label(rating, str(DENIAL[rating.name])) in shown.input_value()
    decide_the_denial_from_the_form(page)
    expected = Scorer.load("hmda").score(DENIAL)
    for reason in expected.reasons:
        assert page.get_by_text(reason.statement, exact=True).first.is_visible()
    assert page.get_by_text(re.compile(r"^Draft decided")).first.is_visible(), "the stages' status closes as done"
    assert page.get_by_role("button", name="Issue notice").is_disabled()
    assert page.get_by_text("Draft only: not issued, not recorded.").first.is_visible()
    page.get_by_role("tab", name="Compare references").click()
    wait_idle(page)
    page.get_by_role("button", name="Compare with the cutoff reference").click()
    page.get_by_text(re.compile(r"reason\(s\) differ from cutoff|Same reasons in the same order")).first.wait_for(
        timeout=DECISION_TIMEOUT_MS)
    wait_idle(page)
    assert records(server) == [], "drafts and comparisons record nothing"
    screenshot(page, "explorer_draft")


def test_editing_a_value_marks_the_result_stale_and_errors_clear_when_valid(page):
    label = fields.field_label(load_spec("hmda").feature("debt_to_income"))
    set_text(page, label, "-1")
    page.get_by_role("heading", name="Result (from the form) - stale").wait_for()
    assert page.get_by_text("debt_to_income must be between 0 and 3").first.is_visible()
    assert page.get_by_text(re.compile("^Stale: a value on the form is not valid")).first.is_visible()
    set_text(page, label, "0.5")
    assert not page.get_by_text("debt_to_income must be between 0 and 3").count(), "the error goes once valid"
    assert page.get_by_text(re.compile("^Stale: the inputs changed since this decision")).first.is_visible()
    set_text(page, label, fields.cell_text(None, DENIAL["debt_to_income"]))
    page.get_by_role("heading", name="Result (from the form)", exact=True).wait_for()
    assert not page.get_by_text(re.compile("^Stale:")).count(), "back to the decided values: not stale"


def sign_in(page, name: str, password: str) -> None:
    browser_support.sign_in(page, name, password, DECISION_TIMEOUT_MS)


def test_issuing_as_a_signed_in_analyst_records_her_identity(page, server):
    sign_in(page, ANALYST, "wrong password!")
    assert page.get_by_text("User name or password is wrong.").first.is_visible()
    sign_in(page, ANALYST, PASSWORD)
    assert page.get_by_text(f"Signed in: local:{ANALYST}").first.is_visible()
    page.get_by_role("button", name="Issue notice").click()
    page.get_by_text(re.compile(r"^Issued: audit record #")).first.wait_for(timeout=DECISION_TIMEOUT_MS)
    wait_idle(page)
    [record] = records(server)
    assert record.actor == f"local:{ANALYST}" and record.decision == "deny"
    assert [r.code for r in record.to_decision().reasons] == [r.code for r in Scorer.load("hmda").score(DENIAL).reasons]
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the issued notice").click()
    pdf = Path(download.value.path()).read_bytes()
    assert hashlib.sha256(pdf).hexdigest() == record.notice_sha256
    assert check_pdf(pdf, Notice.from_dict(record.content["notice"]), record.to_decision(), NoticeSettings()).passed
    screenshot(page, "explorer_issued")


def batch_csv(server) -> Path:
    rows = list(csv.DictReader(io.StringIO(fields.sample_csv(load_spec("hmda")))))
    rows = [{**row, "application_id": f"BATCH-{i}", "applicant_name": f"Batch Applicant {i}"} for i, row in enumerate(rows)]
    rows.insert(1, {**rows[0], "application_id": "BAD-ROW", "applicant_name": "Bad Row", "loan_to_value": "-2"})
    path = server.folder / "applications.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_batch_runs_with_the_reference_chosen_in_the_session(page, server):
    page.locator("[data-testid=stSidebar]").get_by_text("cutoff", exact=True).click()
    wait_idle(page)
    open_page(page, "Notices")
    assert page.get_by_text(re.compile("runs with this session's dataset hmda · reason reference cutoff")).first.is_visible()
    before = len(records(server))
    page.locator("input[type=file][accept*='.csv']").set_input_files(str(batch_csv(server)))
    page.get_by_text("applications.csv").first.wait_for()
    page.get_by_role("button", name="Run the batch").click()
    page.get_by_role("button", name="Confirm: issue the notices").click()
    download_button = page.get_by_role("button", name="Download the notices (zip with manifest)")
    download_button.wait_for(timeout=DECISION_TIMEOUT_MS)
    wait_idle(page)
    assert page.get_by_text("1 row(s) were not issued; all of them are in errors.csv inside the zip.").first.is_visible()
    made = records(server)[before:]
    assert made and {r.content["decision"]["reference"] for r in made} == {"cutoff"}
    assert {r.actor for r in made} == {f"local:{ANALYST}"}
    screenshot(page, "notices_batch")
    with page.expect_download() as download:
        download_button.click()
    archive = zipfile.ZipFile(Path(download.value.path()))
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    errors = list(csv.DictReader(io.StringIO(archive.read("errors.csv").decode())))
    assert [(e["data_row"], e["application_id"]) for e in errors] == [("2", "BAD-ROW")]
    assert "loan_to_value must be between 0 and 3" in errors[0]["problems"]
    assert {m["application_id"] for m in manifest} == {f"BATCH-{i}" for i in range(len(manifest))}
    assert all(m["applicant_name"].startswith("Batch Applicant") for m in manifest)


def test_the_audit_page_searches_by_applicant_and_reason_and_opens_a_linked_record(page, server):
    open_page(page, "Audit")
    target = next(r for r in records(server) if record_rows.record_applicant(r)[0] == "Batch Applicant 1")
    set_text(page, "Applicant or application id", "batch applicant 1")
    table = page.locator("[data-testid=stDataFrame]").first
    assert page.get_by_text(re.compile(r"^1 record\(s\) match")).first.is_visible()
    set_text(page, "Applicant or application id", "")
    code = target.first_reason
    set_text(page, "Reason", code.lower())
    expected = [r for r in records(server) if record_rows.reason_matches(r, code.lower())]
    assert page.get_by_text(re.compile(rf"^{len(expected)} record\(s\) match")).first.is_visible()
    assert table.is_visible()
    page.goto(f"{server.url}/audit?record={target.id}")
    page.get_by_role("heading", name=f"Record #{target.id}").wait_for()
    wait_idle(page)
    page.get_by_role("button", name="Prepare the evidence pack").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the evidence pack (zip)").click()
    names = zipfile.ZipFile(Path(download.value.path())).namelist()
    assert f"record-{target.id}.json" in names
    screenshot(page, "audit")


@pytest.mark.parametrize("page_spec", [p for p in PAGES if p.module in ("evaluation", "models")],
                         ids=lambda p: p.module)
def test_every_other_page_renders(page, server, page_spec):
    open_page(page, page_spec.title)
    assert not page.locator("[data-testid='stException']").count()
    screenshot(page, page_spec.module)
