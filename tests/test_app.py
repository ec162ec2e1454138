"""The dashboard in-process (Streamlit AppTest): every page draws, the form checks values as they
change, explorer decisions are drafts that record nothing until a signed-in analyst issues them, the
result goes stale when the inputs change, each dataset keeps its work, notices preview, batches run
after a confirmation with the session's reference, the audit page searches, verifies, replays and
exports, the evaluation shows the run it just finished, the model cards read the artifacts."""
from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from lendsafe.decide.application import parse_application, read_applications_csv, row_to_application
from lendsafe.audit.store import AuditStore
from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.specs import load_spec
from lendsafe.errors import InvalidApplicationError
from lendsafe.identity import UsersFile
from lendsafe.decide.scoring import Scorer
from lendsafe.ui import PAGES, display, fields, record_rows, tables
from lendsafe.ui.evaluation import RISK_METRICS, _evaluation_time, metric_rows, sample_words
from lendsafe.ui.form import widget_key
from lendsafe.ui.models import adapter_status

pytestmark = pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs poppler-utils (make test installs it)")
APP = str(PROJECT_ROOT / "app.py")
EXPLORER = "lendsafe/ui/explorer.py"
TIMEOUT = 180
DENIAL = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
ANALYST, PASSWORD = "alice", "a long analyst password"


@pytest.fixture(scope="module")
def audit_url(tmp_path_factory):
    """A fresh audit store, a users file with one analyst and the deterministic writer for the module."""
    folder = tmp_path_factory.mktemp("app-audit")
    url = f"sqlite:///{folder / 'audit.db'}"
    UsersFile(folder / "users.json").add(ANALYST, PASSWORD, "analyst")
    patch = pytest.MonkeyPatch()
    patch.setenv("LENDSAFE_DATABASE_URL", url)
    patch.setenv("LENDSAFE_USE_LLM", "0")
    patch.setenv("LENDSAFE_USERS_FILE", str(folder / "users.json"))
    yield url
    patch.undo()


def new_app(page: str = EXPLORER) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    return at.switch_page(page).run() if page else at


def no_failure(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def sign_in(at: AppTest, name: str = ANALYST, password: str = PASSWORD) -> AppTest:
    at.text_input(key="ls_signin_name").input(name)
    at.text_input(key="ls_signin_password").input(password)
    button(at, "Sign in").click()
    return no_failure(at.run())


def denied_app() -> AppTest:
    """The explorer after deciding the example denial from the form (its default values)."""
    at = new_app()
    button(at, "Decide").click()
    return no_failure(at.run())


def entry(at: AppTest) -> dict:
    return at.session_state["ls_work"][at.session_state["ls_dataset"]]["current"]


def issue(at: AppTest) -> AppTest:
    button(at, "Issue notice").click()
    return no_failure(at.run())


# ---------------------------------------------------------------------------- routing

def test_every_page_draws_with_its_title(audit_url):
    at = no_failure(new_app(page=""))
    assert at.title[0].value == "LendSafe" and PAGES[0].module == "home"
    for page in PAGES[1:]:
        at.switch_page(page.path).run()
        no_failure(at)
        assert at.title[0].value == page.title
    assert at.sidebar.selectbox[0].label == "Dataset" and at.sidebar.selectbox[0].value == "hmda"


# ---------------------------------------------------------------------------- explorer: the form

def test_form_has_one_field_per_application_field_from_the_spec_with_units_and_levels(audit_url):
    at = no_failure(new_app())
    spec = load_spec("hmda")
    labels = {w.label for w in [*at.text_input, *at.selectbox, *at.text_area]}
    assert {fields.field_label(f) for f in spec.input_fields} <= labels
    assert {e.label for e in fields.EXTRA_FIELDS} <= labels
    rating = at.selectbox(key=widget_key("hmda", "consumer_credit_history"))
    assert rating.options == [f"{value} - {meaning}" for value, meaning in spec.feature("consumer_credit_history").levels]
    credit = load_spec("credit")
    assert fields.field_label(credit.feature("income")).endswith("($)")


def test_a_bad_value_shows_the_library_message_at_once_and_it_goes_when_valid(audit_url):
    at = no_failure(new_app())
    at.text_input(key=widget_key("hmda", "debt_to_income")).input("-1")
    at.text_input(key=widget_key("hmda", "loan_to_value")).input("lots")
    at.text_input(key=widget_key("hmda", "application_date")).input("yesterday")
    no_failure(at.run())
    row = {**fields.form_values(load_spec("hmda"), DENIAL), "debt_to_income": "-1", "loan_to_value": "lots",
           "application_date": "yesterday"}
    with pytest.raises(InvalidApplicationError) as expected:
        parse_application(row_to_application(row, load_spec("hmda")), "hmda")
    assert sorted(e.value for e in at.error) == sorted(tables.md_escape(p) for p in expected.value.problems)
    button(at, "Decide").click()
    no_failure(at.run())
    assert not at.metric and AuditStore(audit_url).count() == 0
    at.text_input(key=widget_key("hmda", "debt_to_income")).input("0.4").run()
    assert not any("debt_to_income" in e.value for e in at.error), "the error goes as soon as the value is valid"
    assert len(at.error) == 2


# ---------------------------------------------------------------------------- explorer: drafts

def test_a_decision_is_a_draft_shown_first_in_words_and_records_nothing(audit_url):
    before = AuditStore(audit_url).count()
    at = denied_app()
    expected = Scorer.load("hmda").score(DENIAL)
    assert metric(at, "Decision") == "Denied" and any("the **population** reference" in c.value for c in at.caption)
    assert metric(at, "Risk") == f"{expected.risk:.1%}"
    assert at.header[0].value == "Result (from the form)"
    listed = next(m.value for m in at.markdown if m.value.startswith("1. **"))
    assert [line.split("**")[1] for line in listed.splitlines()] == [tables.md_escape(r.statement)
                                                                      for r in expected.reasons]
    assert "pp" in listed and "log-odds" not in listed
    draft = entry(at)["drafts"]["population"]
    assert draft.pdf and record_rows.pdf_page_images(draft.pdf)
    checklist = next(m.value for m in at.markdown if m.value.startswith("- :"))
    checks = draft.decision.verification["checks"]
    assert len(checklist.splitlines()) == len(checks) and not any(name in checklist for name in checks)
    assert tables.md_escape(tables.CHECK_SENTENCES["numbers_match"][0]) in checklist
    assert any(s.label.startswith("Draft decided") for s in at.get("status"))
    assert button(at, "Issue notice").disabled, "anonymous users cannot issue"
    assert AuditStore(audit_url).count() == before


def test_a_draft_reports_every_stage_and_says_the_template_wrote_while_the_model_loads():
    from lendsafe.config import Settings
    from lendsafe.notice.settings import NoticeSettings
    from lendsafe.ui.engine import LOADING_REASON, STAGES, Engine

    shared = Engine(Settings(use_llm=True))          # not started: the language model counts as still loading
    assert shared.llm_loading
    heard = []
    draft = shared.draft(DENIAL, "hmda", "cutoff", "auto", NoticeSettings(), lambda name, text: heard.append(name))
    assert list(dict.fromkeys(heard)) == list(STAGES)
    assert draft.decision.writer == "template" and draft.decision.writer_reason == LOADING_REASON
    assert draft.decision.reference == "cutoff" and draft.written_while_loading and draft.pdf.startswith(b"%PDF")


@pytest.mark.parametrize("grace_s, drawn, loads_before_drawn", [(30.0, True, False), (0.2, False, True)])
def test_the_warm_up_leaves_the_cpu_to_the_first_page_until_it_is_drawn(monkeypatch, grace_s, drawn,
                                                                       loads_before_drawn):
    import time

    from lendsafe.config import Settings
    from lendsafe.ui import engine as engines

    monkeypatch.setattr(engines, "FIRST_PAGE_GRACE_S", grace_s)
    shared = engines.Engine(Settings(use_llm=False))
    loaded = []
    monkeypatch.setattr(shared, "_import_heavy", lambda: shared._imported.set())
    monkeypatch.setattr(shared, "_load", lambda name, step: loaded.append(name))
    shared.start()
    time.sleep(0.6)
    assert bool(loaded) == loads_before_drawn
    if drawn:
        shared.go()
    shared.thread.join(10)
    assert set(loaded) == {"risk model", "regulation index"}


def test_needing_a_part_ends_the_wait_for_the_first_page(monkeypatch):
    from lendsafe.config import Settings
    from lendsafe.ui import engine as engines

    monkeypatch.setattr(engines, "FIRST_PAGE_GRACE_S", 60.0)
    shared = engines.Engine(Settings(use_llm=False))
    monkeypatch.setattr(shared, "_import_heavy", lambda: shared._imported.set())
    monkeypatch.setattr(shared, "_load", lambda name, step: None)
    shared.start()
    shared.wait_for_imports(timeout_s=10)
    assert shared._imported.is_set()
    shared.thread.join(10)


def test_the_draft_pdf_is_stamped_draft():
    from pypdf import PdfReader

    from lendsafe.notice.settings import NoticeSettings
    from lendsafe.ui.engine import draft_pdf

    pdf = draft_pdf(Scorer.load("hmda").score(DENIAL).with_updates(explanation=None), NoticeSettings())
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "DRAFT - not issued" in text and "SPECIMEN" not in text


def test_the_draft_shows_the_educational_section_the_issued_notice_would_carry():
    from pypdf import PdfReader

    from lendsafe.notice.settings import NoticeSettings
    from lendsafe.ui.engine import draft_pdf

    decision = Scorer.load("hmda").score(DENIAL).with_updates(explanation=None)
    off = PdfReader(io.BytesIO(draft_pdf(decision, NoticeSettings()))).pages[0].extract_text()
    on = PdfReader(io.BytesIO(draft_pdf(decision, NoticeSettings(educational_section=True)))).pages[0].extract_text()
    assert "what would have met our credit standards" not in off
    assert "what would have met our credit standards" in on and "For your information only: had the" in on


def test_issuing_as_a_signed_in_analyst_records_the_draft_shown_with_her_identity(audit_url):
    at = denied_app()
    sign_in(at, ANALYST, "not the password")
    assert any("wrong" in e.value for e in at.sidebar.error) and button(at, "Issue notice").disabled
    sign_in(at)
    issue(at)
    record = AuditStore(audit_url).list(limit=None)[-1]
    shown = entry(at)["drafts"]["population"].decision
    assert record.actor == f"local:{ANALYST}" and record.to_decision() == shown
    assert entry(at)["issued"]["population"].record_id == record.id
    assert any(s.value.startswith(f"Issued: audit record #{record.id}") for s in at.success)


def test_with_oidc_configured_the_sidebar_signs_in_with_the_provider(audit_url):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "id", "client_secret": "secret",
                          "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}
    no_failure(at.run())
    keys = [b.key for b in at.sidebar.button]
    assert "ls_oidc_login" in keys and "ls_signin_button" not in keys
    assert not [t for t in at.sidebar.text_input if t.key == "ls_signin_password"]


def test_changing_the_inputs_marks_the_result_stale(audit_url):
    at = denied_app()
    at.text_input(key=widget_key("hmda", "debt_to_income")).input("0.2").run()
    assert at.header[0].value == "Result (from the form) - stale"
    assert any(w.value.startswith("Stale: the inputs changed") for w in at.warning)
    at.text_input(key=widget_key("hmda", "debt_to_income")).input(fields.cell_text(None, DENIAL["debt_to_income"])).run()
    assert at.header[0].value == "Result (from the form)"


def test_switching_the_dataset_keeps_each_datasets_work(audit_url):
    at = denied_app()
    first = entry(at)["id"]
    at.sidebar.selectbox[0].set_value("credit").run()
    spec = load_spec("credit")
    labels = {w.label for w in [*at.text_input, *at.selectbox]}
    assert {fields.field_label(f) for f in spec.input_fields} <= labels and "Debt-to-income ratio" not in labels
    housing = at.selectbox(key=widget_key("credit", "home"))
    assert housing.options[0] == "not given (left blank)" and "ignore" not in housing.options
    button(at, "Decide").click()
    no_failure(at.run())
    expected = Scorer.load("credit").score(fields.example_application("credit"))
    assert metric(at, "Decision") == ("Denied" if expected.denied else "Approved")
    at.sidebar.selectbox[0].set_value("hmda").run()
    assert entry(at)["id"] == first and metric(at, "Decision") == "Denied"


def test_comparing_references_decides_drafts_and_shows_what_changes(audit_url):
    before = AuditStore(audit_url).count()
    at = denied_app()
    at.session_state["ls_result_tab"] = "Compare references"
    button(no_failure(at.run()), "Compare with the cutoff reference").click()
    no_failure(at.run())
    drafts = entry(at)["drafts"]
    shown = next(d.value for d in at.dataframe if "change" in d.value.columns)
    assert shown.equals(tables.reference_changes(drafts["cutoff"].decision, drafts["population"].decision))
    at.sidebar.radio(key="ls_reference").set_value("cutoff").run()
    assert any("the **cutoff** reference" in c.value for c in no_failure(at).caption)
    assert AuditStore(audit_url).count() == before, "comparisons are drafts"


def test_held_out_filters_and_decides_a_matching_application(audit_url):
    at = no_failure(new_app())
    at.radio(key="ls_source").set_value("Held-out application").run()
    at.selectbox(key="ls_filter_decision").set_value("deny").run()
    at.selectbox(key="ls_filter_reason").set_value("DEBT_TO_INCOME").run()
    shown = next(d.value for d in at.dataframe if "first_reason" in d.value.columns)
    assert len(shown) > 0 and set(shown["decision"]) == {"deny"}
    assert all("DEBT_TO_INCOME" in reasons.split(", ") for reasons in shown["reasons"])
    assert shown["risk"].max() > 1, "risk in percent, as everywhere"
    button(at, "Decide this application").click()
    no_failure(at.run())
    decision = entry(at)["drafts"]["population"].decision
    assert metric(at, "Decision") == "Denied" and "DEBT_TO_INCOME" in [r.code for r in decision.reasons]
    at.selectbox(key="ls_filter_decision").set_value("approve").run()
    assert any("No held-out application matches" in i.value for i in no_failure(at).info)
    at.selectbox(key="ls_filter_reason").set_value("").run()
    assert at.header[0].value.endswith("- stale"), "another application is picked: the result is stale"
    approvals = next(d.value for d in at.dataframe if "first_reason" in d.value.columns)
    selected = at.selectbox(key="ls_held_out_row").value
    assert selected in set(approvals["row"])
    expected_dti = approvals.set_index("row").loc[selected, "debt_to_income"]
    button(at, "Copy into the form").click()
    no_failure(at.run())
    assert at.radio(key="ls_source").value == "Fill the form"
    shown = float(at.text_input(key=widget_key("hmda", "debt_to_income")).value)
    assert shown == pytest.approx(expected_dti, rel=1e-6)


# ---------------------------------------------------------------------------- notices

@pytest.fixture(scope="module")
def issued(audit_url) -> AppTest:
    """An app where the analyst issued the example denial."""
    at = denied_app()
    sign_in(at)
    return issue(at)


def test_notices_page_previews_the_notices_issued_in_the_session(issued):
    at = no_failure(issued.switch_page("lendsafe/ui/notices.py").run())
    done = at.session_state["ls_work"]["hmda"]["issued"][-1]["issued"]
    assert len(at.image) >= 1
    assert "Download the notice PDF" in [b.label for b in at.get("download_button")]
    check = next(d.value for d in at.dataframe if list(d.value.columns) == ["check", "result", "detail"])
    assert done.check.passed and set(check["result"]) == {tables.CHECK_MARKS[True]}


def test_notices_page_without_an_issued_notice_says_what_to_do(audit_url):
    at = new_app("lendsafe/ui/notices.py")
    assert any("Nothing issued yet" in i.value for i in no_failure(at).info)


def batch_upload(at: AppTest, rows: list[dict]) -> AppTest:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    at.file_uploader(key="ls_batch_upload").set_value(("apps.csv", buffer.getvalue().encode(), "text/csv"))
    return at.run()


def test_batch_needs_a_sign_in_and_a_confirmation_and_uses_the_session_reference(audit_url):
    spec = load_spec("hmda")
    rows = list(csv.DictReader(io.StringIO(fields.sample_csv(spec))))
    rows.append({**rows[0], "debt_to_income": "-5", "application_id": "BAD-1"})
    rows.append({**rows[0], "debt_to_income": "", "application_id": "INCOMPLETE-1"})
    at = new_app("lendsafe/ui/notices.py")
    batch_upload(at, rows)
    assert button(at, "Run the batch").disabled, "anonymous users cannot issue a batch"
    sign_in(at)
    at.sidebar.radio(key="ls_reference").set_value("cutoff").run()
    before = AuditStore(audit_url).count()
    button(at, "Run the batch").click()
    no_failure(at.run())
    assert AuditStore(audit_url).count() == before, "nothing issued before the confirmation"
    assert any("reason reference cutoff" in w.value for w in at.warning)
    button(at, "Confirm: issue the notices").click()
    no_failure(at.run())
    outcome = at.session_state["ls_work"]["hmda"]["batch"]
    assert outcome["reference"] == "cutoff" and len(outcome["rows"]) == len(rows) - 1 and outcome["incomplete"] == 1
    assert "debt_to_income must be between 0 and 3" in outcome["errors"][0]["problems"]
    made = AuditStore(audit_url).list(limit=None)[before:]
    assert {r.content["decision"]["reference"] for r in made if r.kind == "decision"} == {"cutoff"}
    assert {r.actor for r in made} == {f"local:{ANALYST}"}
    names = zipfile.ZipFile(io.BytesIO(outcome["zip"])).namelist()
    assert "manifest.csv" in names and outcome["notices"] >= 1
    assert sum(n.endswith(".pdf") for n in names) == outcome["notices"] + outcome["incomplete"]
    assert any("were not issued" in e.value for e in at.error)
    assert at.get("progress"), "the batch shows a progress bar"


def test_a_batch_held_for_review_issues_no_notice_and_fills_the_review_queue(audit_url):
    from lendsafe.review import Reviewer

    rows = [{**row, "application_id": f"HOLD-{i}"}       # not the rows other tests issued into this store
            for i, row in enumerate(csv.DictReader(io.StringIO(fields.sample_csv(load_spec("hmda")))))]
    at = new_app("lendsafe/ui/notices.py")
    sign_in(at)
    assert [r.key for r in at.radio if r.key == "ls_batch_where"] and \
        at.radio(key="ls_batch_where").options == ["this server"], "no cluster configured: this server only"
    at.checkbox(key="ls_batch_hold").check().run()
    batch_upload(at, rows)
    pending = len(Reviewer(AuditStore(audit_url)).queue())
    button(at, "Run the batch").click()
    no_failure(at.run())
    assert any("every denial held for review" in w.value for w in at.warning)
    button(at, "Confirm: issue the notices").click()
    no_failure(at.run())
    outcome = at.session_state["ls_work"]["hmda"]["batch"]
    denials = [r for r in outcome["rows"] if r["decision"] == "deny"]
    assert denials and outcome["held"] == len(denials) and outcome["notices"] == 0
    assert len(Reviewer(AuditStore(audit_url)).queue()) == pending + len(denials)


def test_the_batch_page_offers_the_configured_cluster(audit_url, monkeypatch):
    monkeypatch.setenv("LENDSAFE_CLUSTER", "local:1")
    at = new_app("lendsafe/ui/notices.py")
    assert at.radio(key="ls_batch_where").options == ["this server", "the cluster local:1"]


def test_batch_progress_says_rate_and_time_left():
    from lendsafe.ui.notices import progress_text

    assert progress_text(12, 40, 3.0, 9.4) == "Issued 12 of 40 rows · 3.0 rows/s · about 9 s left"
    assert progress_text(0, 40, 0.0, float("inf")) == "Issued 0 of 40 rows · estimating the time left"
    assert progress_text(40, 40, 2.5, 0.0) == "Issued 40 of 40 rows · 2.5 rows/s"


def test_sample_csv_reads_back_without_errors():
    for dataset in ("hmda", "credit"):
        rows = read_applications_csv_text(fields.sample_csv(load_spec(dataset)), dataset)
        assert rows and all(error is None for _, _, error in rows)


def read_applications_csv_text(text: str, dataset: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.csv"
        path.write_text(text)
        return read_applications_csv(path, dataset)


# ---------------------------------------------------------------------------- audit

def test_audit_page_opens_verifies_replays_and_exports_a_record(issued, audit_url):
    at = no_failure(issued.switch_page("lendsafe/ui/audit.py").run())
    store = AuditStore(audit_url)
    listed = next(d.value for d in at.dataframe if "actor" in d.value.columns)
    assert list(listed["id"]) == sorted((r.id for r in store.list(limit=None)), reverse=True)
    assert {"applicant", "application id"} <= set(listed.columns)
    newest = store.list(limit=None)[-1]
    assert at.subheader[0].value == f"Record #{newest.id}"
    button(at, "Verify the audit chain").click()
    no_failure(at.run())
    assert any(store.verify().summary() == s.value for s in at.success)
    denial = store.list(decision="deny", limit=None)[-1]
    at.selectbox(key="ls_audit_open").set_value(denial.id).run()
    button(at, "Replay the notice from this record").click()
    no_failure(at.run())
    assert any("regenerated byte for byte" in s.value for s in at.success)
    button(at, "Prepare the evidence pack").click()
    no_failure(at.run())
    pack = zipfile.ZipFile(io.BytesIO(at.session_state[f"ls_evidence_{denial.id}"]))
    assert {f"record-{denial.id}.json", f"notice-{denial.id}.pdf"} <= set(pack.namelist())


def test_audit_searches_by_applicant_id_reason_and_date(issued, audit_url):
    store = AuditStore(audit_url)
    record = next(r for r in store.list(limit=None) if record_rows.record_applicant(r)[0])
    name, application_id = record_rows.record_applicant(record)
    at = no_failure(issued.switch_page("lendsafe/ui/audit.py").run())
    at.text_input(key="ls_audit_who").input(name.lower()[2:]).run()
    listed = next(d.value for d in at.dataframe if "actor" in d.value.columns)
    assert record.id in set(listed["id"]) and set(listed["applicant"]) == {name}
    at.text_input(key="ls_audit_who").input(application_id.lower()).run()
    assert record.id in set(next(d.value for d in at.dataframe if "actor" in d.value.columns)["id"])
    at.text_input(key="ls_audit_who").input("").run()
    at.text_input(key="ls_audit_reason").input(record.first_reason.lower().replace("_", " ")).run()
    listed = next(d.value for d in at.dataframe if "actor" in d.value.columns)
    assert record.id in set(listed["id"])
    at.text_input(key="ls_audit_reason").input("no such reason anywhere").run()
    assert any("No decision matches" in i.value for i in no_failure(at).info)


def test_audit_shows_a_notice_of_incompleteness_record(issued, audit_url):
    incomplete = AuditStore(audit_url).list(decision="incomplete", limit=None)
    assert incomplete, "the batch test issued one"
    at = no_failure(issued.switch_page("lendsafe/ui/audit.py").run())
    at.text_input(key="ls_audit_reason").input("")
    at.text_input(key="ls_audit_who").input("")
    at.selectbox(key="ls_audit_decision").set_value("incomplete").run()
    at.selectbox(key="ls_audit_open").set_value(incomplete[-1].id).run()
    assert any("notice of incompleteness" in m.value for m in no_failure(at).markdown)
    assert any(t.value.startswith("Missing: debt_to_income") for t in at.text)
    assert record_rows.record_applicant(incomplete[-1])[1] == "INCOMPLETE-1"


def test_audit_link_opens_the_named_record(issued, audit_url):
    first = AuditStore(audit_url).list(limit=None)[0]
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["record"] = str(first.id)
    at.run()
    at.switch_page("lendsafe/ui/audit.py").run()
    assert no_failure(at).subheader[0].value == f"Record #{first.id}"


def test_audit_text_search_is_case_insensitive_over_codes_and_statements():
    from types import SimpleNamespace

    record = SimpleNamespace(content={"decision": {"application": {"application_id": "HMDA-7", "applicant": {"name": "Ann Lee"}},
                                                   "reasons": [{"code": "DEBT_TO_INCOME", "statement": "Excessive obligations"}]}})
    assert record_rows.record_matches(record, "ann") and record_rows.record_matches(record, "hmda-7")
    assert record_rows.reason_matches(record, "debt to income") and record_rows.reason_matches(record, "excessive")
    assert not record_rows.reason_matches(record, "collateral") and record_rows.record_matches(record, "")


# ---------------------------------------------------------------------------- evaluation

def test_evaluation_without_results_says_so_then_runs_with_a_limit(audit_url, tmp_path, monkeypatch):
    monkeypatch.setenv("LENDSAFE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("lendsafe.evaluation.config.DEFAULT_OUT", tmp_path / "absent.json")
    at = no_failure(new_app("lendsafe/ui/evaluation.py"))
    assert any("No results yet" in i.value for i in at.info)
    at.multiselect[1].set_value(["risk", "reasons"])
    at.number_input[0].set_value(2)
    button(at, "Run the evaluation").click()
    no_failure(at.run())
    results = json.loads((tmp_path / "home" / "eval" / "app_results.json").read_text())
    assert set(results["sections"]) == {"risk", "reasons"}
    risk = [d.value for d in at.dataframe if "logistic baseline" in d.value.columns]
    shown = {frame.loc[frame["metric"] == "AUC", "model"].iloc[0] for frame in risk}
    assert shown == {round(d["model"]["auc"], 4) for d in results["sections"]["risk"]["datasets"].values()}
    assert all({"what it means", "floor", "ceiling"} <= set(frame.columns) for frame in risk)
    assert len(at.image) >= 1, "the risk plots are shown"
    assert at.selectbox(key="ls_eval_file").value == "last dashboard run", "the run just finished is shown"
    assert any(m.value.startswith("Risk model (hmda): given one applicant") for m in at.markdown)
    timing = [c.value for c in at.caption if "s of evaluation" in c.value]
    assert timing and "None" not in timing[0] and str(results["timing"]["total_seconds"]) in timing[0]


def test_evaluation_time_of_unfinished_results_sums_the_finished_sections():
    assert _evaluation_time({"risk": 0.5, "retrieval": 2.0, "explanations": {"lora": 10.0}}) == "12.5 s of evaluation so far"
    assert _evaluation_time({"risk": 0.5, "total_seconds": 40.1}) == "40.1 s of evaluation"


def test_metric_rows_carry_meaning_floor_and_ceiling():
    frame = metric_rows(RISK_METRICS, {"model": {"auc": 0.81234, "ks": 0.5, "brier": 0.07}})
    assert list(frame["metric"]) == ["AUC", "KS", "Brier"] and frame.loc[0, "model"] == 0.8123
    assert frame["what it means"].str.len().min() > 10 and frame.loc[0, "floor"].startswith("0.5")


# ---------------------------------------------------------------------------- models and data

def test_models_page_shows_the_risk_card_from_the_artifacts(audit_url):
    at = no_failure(new_app("lendsafe/ui/models.py"))
    meta = json.loads((PROJECT_ROOT / "models" / "risk" / "hmda" / "metadata.json").read_text())
    metrics = next(d.value for d in at.dataframe if "logistic baseline" in d.value.columns)
    assert metrics.loc[metrics["metric"] == "AUC", "XGBoost (monotone)"].iloc[0] == round(meta["metrics"]["test"]["auc"], 4)
    excluded = next(d.value for d in at.dataframe if "why excluded" in d.value.columns)
    assert list(excluded["column"]) == [e["column"] for e in meta["excluded_columns"]]
    features = next(d.value for d in at.dataframe if "reason code" in d.value.columns)
    assert set(features["field"]) == {f.name for f in load_spec("hmda").features}
    trained = bool((adapter_status(PROJECT_ROOT / "models" / "adapters" / "lendsafe-smollm2")["manifest"] or {}).get("trained"))
    assert trained == (not any("Not trained" in w.value for w in at.warning))
    assert trained == any("loss curve" in caption for image in at.image for caption in image.captions)


def test_adapter_status_reads_manifest_losses_and_curve(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    assert adapter_status(folder)["manifest"] is None
    (tmp_path / "adapter.train.log").write_text("step 1/9 loss 2.0\nstep 2/9 loss 1.5\n")
    assert adapter_status(folder)["log_tail"][-1] == "step 2/9 loss 1.5"
    (folder / "lendsafe_adapter.json").write_text(json.dumps({"trained": True, "steps": 9}))
    (folder / "loss.json").write_text(json.dumps({"train": [{"step": 1, "loss": 2.0}], "validation": []}))
    (folder / "loss_curve.png").write_bytes(b"\x89PNG")
    status = adapter_status(folder)
    assert status["manifest"]["steps"] == 9 and status["loss"]["train"][0]["loss"] == 2.0 and status["curve"]


# ---------------------------------------------------------------------------- shaping (no Streamlit)

def test_problems_are_keyed_by_the_field_they_name():
    by_field, general = fields.problems_by_field(
        ["debt_to_income must be between 0 and 3; got -1", "applicant.name is too long: x; got 'y'",
         "application must be a JSON object; got list"], ["debt_to_income", "applicant_name"])
    assert set(by_field) == {"debt_to_income", "applicant_name"} and general == [
        "application must be a JSON object; got list"]


def test_markdown_escape_keeps_text_literal():
    text = "Loan of $245,000 and $1,000 fee; *not* a [link](x) # or `code` ~~ | <b>"
    escaped = tables.md_escape(text)
    assert escaped.replace("\\", "") == text
    assert all(escaped[i - 1] == "\\" for i, ch in enumerate(escaped) if ch in "$*[]#`~|<>" and i)


def test_form_values_round_trip_to_the_same_application():
    for dataset in ("hmda", "credit"):
        spec = load_spec(dataset)
        example = fields.example_application(dataset)
        row = fields.form_values(spec, example)
        assert parse_application(row_to_application(row, spec), spec) == parse_application(example, spec)


def test_contributions_mark_the_adverse_ones_behind_the_reasons():
    decision = Scorer.load("hmda").score(DENIAL)
    frame = tables.contribution_frame(decision, load_spec("hmda"))
    assert list(frame["log-odds"]) == sorted(frame["log-odds"], reverse=True)
    assert list(frame["effect (pp)"]) == [tables.points(v, decision.risk) for v in frame["log-odds"]]
    principal = frame[frame["role"] == tables.ROLE_PRINCIPAL]
    assert set(principal["reason_code"]) == {r.code for r in decision.reasons}
    assert (frame[frame["adverse"]]["log-odds"] > 0).all() and (frame[~frame["adverse"]]["log-odds"] <= 1e-6).all()


def test_points_are_the_risk_the_factor_adds_in_percentage_points():
    assert tables.points(0.0, 0.4) == 0.0
    assert tables.points(1.0, 0.5) == pytest.approx(23.1, abs=0.05)       # 50% vs sigmoid(-1) = 26.9%
    assert tables.points(-1.0, 0.5) == pytest.approx(-23.1, abs=0.05)
    assert tables.points_text(3.14) == "+3.1 pp" and tables.risk_text(0.1196) == "12.0%"


def test_every_verifier_check_has_a_sentence():
    from lendsafe.explain.composer import compose
    from lendsafe.explain.verify import verify

    decision = Scorer.load("hmda").score(DENIAL)
    names = {c.check for c in verify(decision, compose(decision)).checks}
    assert names <= set(tables.CHECK_SENTENCES), names - set(tables.CHECK_SENTENCES)


def test_sample_words_never_say_limit_none():
    assert sample_words({"limit": None}, {"evaluated": 183}) == "all 183 held-out denials"
    assert "limited to 8" in sample_words({"limit": 8}, {"evaluated": 8})


def test_reference_changes_name_new_dropped_and_moved_reasons():
    scorer = Scorer.load("hmda")
    population, cutoff = scorer.score(DENIAL, "population"), scorer.score(DENIAL, "cutoff")
    frame = tables.reference_changes(population, cutoff)
    assert set(frame["code"]) == {r.code for r in population.reasons} | {r.code for r in cutoff.reasons}
    same = frame[frame["change"] == "same rank"]
    assert (same["rank (population)"] == same["rank (cutoff)"]).all()
    assert tables.reference_changes(population, population)["change"].eq("same rank").all()


def test_pdf_pages_render_as_png():
    from lendsafe.notice import NoticeSettings, build_notice, render_pdf

    pdf = render_pdf(build_notice(Scorer.load("hmda").score(DENIAL), NoticeSettings(), notice_date="2026-03-02"))
    pages = record_rows.pdf_page_images(pdf)
    assert 1 <= len(pages) <= 2 and all(p.startswith(b"\x89PNG") for p in pages)


def test_the_explorer_shows_each_rights_sentence_with_its_passage_and_the_dropped_candidates(audit_url):
    decided = denied_app()
    decision = entry(decided)["drafts"]["population"].decision
    assert decision.grounding and all(row["passage_id"] for row in decision.grounding)
    labels = [e.label for e in decided.expander]
    for row in decision.grounding:
        assert tables.md_escape(row["sentence"]) in labels
    passages = {c.passage_id: c for c in decision.citations}
    shown = [t.value for t in decided.text]
    assert all(passages[row["passage_id"]].text in shown for row in decision.grounding)
    if decision.dropped:
        assert any(label.startswith("Candidates not stated as reasons") for label in labels)



def test_the_explorer_shows_what_would_change_a_denial_re_scored(audit_url):
    from lendsafe.recourse import find_recourse
    from lendsafe.ui.recourse import DECISION_WORDS, TITLE

    at = denied_app()
    at.session_state["ls_result_tab"] = TITLE
    no_failure(at.run())
    assert TITLE in [s.value for s in at.subheader]
    decision = entry(at)["drafts"]["population"].decision
    found = find_recourse(Scorer.load("hmda"), decision.application, "population")
    assert found.options and all(o.decision.decision == "approve" for o in found.options)
    table = next(d.value for d in at.dataframe if "re-scored decision" in d.value.columns)
    assert list(table["re-scored decision"]) == [DECISION_WORDS["approve"]] * len(found.options)
    labels = {load_spec("hmda").feature(name).label.lower() for o in found.options for name in o.features}
    shown = " ".join(table["what changes"]).lower()
    assert all(label in shown for label in labels), (labels, shown)


def test_the_audit_page_lists_and_opens_a_notice_held_for_review(tmp_path, monkeypatch):
    from lendsafe.config import Settings
    from lendsafe.explain.pipeline import Pipeline
    from lendsafe.issue.issuer import Issuer
    from lendsafe.review import hold_for_review

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    monkeypatch.setenv("LENDSAFE_DATABASE_URL", url)
    monkeypatch.setenv("LENDSAFE_USE_LLM", "0")
    pipeline = Pipeline(Settings(use_llm=False))
    with AuditStore(url) as store:
        [held] = hold_for_review(Issuer(pipeline, audit=store, actor="app:test"), [pipeline.run(DENIAL)])
        held_id = store.list(decision="held", limit=None)[-1].id
    at = no_failure(AppTest.from_file(str(PROJECT_ROOT / "lendsafe" / "ui" / "audit.py"), default_timeout=120).run())
    at.selectbox(key="ls_audit_decision").set_value("held").run()
    listed = next(d.value for d in at.dataframe if "actor" in d.value.columns)
    assert list(listed["id"]) == [held_id]
    at.selectbox(key="ls_audit_open").set_value(held_id).run()
    no_failure(at)
    assert any("A review action" in m.value and "held" in m.value for m in at.markdown)
