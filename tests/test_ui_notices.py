"""The Notices page with hostile uploads (Streamlit AppTest): user data shown as plain text, never as
markdown links or HTML; uploads above the limit refused on the page; settings files with wrong values
refused with the field named; the audit store's URL shown without its password."""
from __future__ import annotations

import csv
import io
import shutil
import tomllib

import pytest
from streamlit.testing.v1 import AppTest

from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.specs import load_spec
from lendsafe.identity import Identity
from lendsafe.ui import fields
from lendsafe.ui.notices import BATCH_MAX_MB

pytestmark = pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs poppler-utils (make test installs it)")
APP = str(PROJECT_ROOT / "app.py")
PAGE = "lendsafe/ui/notices.py"
EVIL = "Ann [click](http://evil.example) <b>http://evil.example</b>"


@pytest.fixture
def audit_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    monkeypatch.setenv("LENDSAFE_DATABASE_URL", url)
    monkeypatch.setenv("LENDSAFE_USE_LLM", "0")
    return url


def notices_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    return at.switch_page(PAGE).run()


def markdown_texts(at: AppTest) -> list[str]:
    """Every element Streamlit renders as markdown (where a URL would become a link)."""
    kinds = ("markdown", "error", "warning", "success", "info", "caption", "subheader", "header", "title")
    return [str(e.value) for kind in kinds for e in at.get(kind)]


def hostile_csv() -> bytes:
    rows = list(csv.DictReader(io.StringIO(fields.sample_csv(load_spec("hmda")))))
    rows = [{**row, "applicant_name": EVIL} for row in rows]
    rows.append({**rows[0], "debt_to_income": "=HYPERLINK(\"http://evil.example\")"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def test_batch_names_and_problems_with_urls_are_plain_text(audit_url):
    at = notices_page()
    at.session_state["ls_identity"] = Identity("local", "alice", "analyst")
    at.file_uploader(key="ls_batch_upload").set_value(("[x](http://evil.example).csv", hostile_csv(), "text/csv"))
    at.run()
    next(b for b in at.button if b.label == "Run the batch").click()
    at.run()
    next(b for b in at.button if b.label == "Confirm: issue the notices").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["ls_work"]["hmda"]["batch"]["errors"], "the formula row is listed as an error"
    assert not [t for t in markdown_texts(at) if "evil.example" in t]
    assert any("evil.example" in t.value for t in at.text), "the file name is shown, as plain text"
    assert any("were not issued" in e.value for e in at.error)


def test_an_upload_above_the_limit_is_refused_on_the_page(audit_url):
    at = notices_page()
    big = b"debt_to_income\n" + b"0.1\n" * ((BATCH_MAX_MB * 1024 * 1024) // 4 + 10)
    at.file_uploader(key="ls_batch_upload").set_value(("big.csv", big, "text/csv"))
    at.run()
    assert not at.exception
    assert any(f"at most {BATCH_MAX_MB} MB" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Run the batch").disabled


def test_the_streamlit_upload_limit_fits_the_batch_page():
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == BATCH_MAX_MB


@pytest.mark.parametrize("name, data, words", [
    ("lender.toml", b'consumer_report_used = "maybe"', "consumer_report_used must be true or false"),
    ("lender.toml", b"score_factors = 'abc'", "score_factors must be a list of texts"),
    ("lender.json", b"{bad json", "is not valid JSON"),
    ("lender.toml", b'template_path = "/etc/passwd"', "template_path must name a notice wording TOML file"),
])
def test_a_bad_settings_upload_is_refused_with_the_field_named(name, data, words, audit_url):
    at = notices_page()
    at.file_uploader(key="ls_settings_upload").set_value((name, data, "text/plain"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(words in t.value for t in at.text), [t.value for t in at.text]


def test_the_audit_store_url_is_shown_without_its_password(monkeypatch):
    monkeypatch.setenv("LENDSAFE_DATABASE_URL", "postgresql://analyst:hunter2secret@127.0.0.1:1/lendsafe")
    monkeypatch.setenv("LENDSAFE_USE_LLM", "0")
    at = AppTest.from_file(APP, default_timeout=180).run()
    at = at.switch_page("lendsafe/ui/audit.py").run()
    shown = " ".join(markdown_texts(at) + [t.value for t in at.text] + [e.value for e in at.exception])
    assert "hunter2secret" not in shown
