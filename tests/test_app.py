"""The dashboard in-process (Streamlit AppTest): every page draws, the form shows the library's
per-field messages, decisions are issued and recorded, notices preview, batches run, the audit
chain verifies and replays, the evaluation runs with a limit, the model cards read the artifacts."""
from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from lendsafe.application import parse_application, read_applications_csv, row_to_application
from lendsafe.audit import AuditStore
from lendsafe.config import PROJECT_ROOT
from lendsafe.datasets import load_spec
from lendsafe.errors import InvalidApplicationError
from lendsafe.scoring import Scorer
from lendsafe.ui import PAGES, display, tables
from lendsafe.ui.evaluation import RISK_METRICS, _evaluation_time, metric_rows
from lendsafe.ui.form import widget_key
from lendsafe.ui.models import adapter_status

pytestmark = pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs poppler-utils (make test installs it)")
APP = str(PROJECT_ROOT / "app.py")
TIMEOUT = 180
DENIAL = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())


@pytest.fixture(scope="module")
def audit_url(tmp_path_factory):
    """A fresh audit store and the deterministic writer for the whole module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('app-audit') / 'audit.db'}"
    patch = pytest.MonkeyPatch()
    patch.setenv("LENDSAFE_DATABASE_URL", url)
    patch.setenv("LENDSAFE_USE_LLM", "0")
    yield url
    patch.undo()


def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run()


def no_failure(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def denied_app() -> AppTest:
    """The app after deciding the example denial from the form (its default values)."""
    at = new_app()
    button(at, "Decide").click()
    return no_failure(at.run())


@pytest.fixture(scope="module")
def decided(audit_url) -> AppTest:
    return denied_app()


# ---------------------------------------------------------------------------- routing

def test_every_page_draws_with_its_title(audit_url):
    at = no_failure(new_app())
    assert at.title[0].value == PAGES[0].title
    for page in PAGES[1:]:
        at.switch_page(page.path).run()
        no_failure(at)
        assert at.title[0].value == page.title
    assert at.sidebar.selectbox[0].label == "Dataset" and at.sidebar.selectbox[0].value == "hmda"


# ---------------------------------------------------------------------------- explorer

def test_form_has_one_field_per_application_field_from_the_spec(audit_url):
    at = no_failure(new_app())
    spec = load_spec("hmda")
    labels = {w.label for w in [*at.text_input, *at.selectbox, *at.text_area]}
    assert {f.label for f in spec.input_fields} <= labels
    assert {e.label for e in tables.EXTRA_FIELDS} <= labels


def test_bad_input_shows_the_library_message_under_each_field_and_issues_nothing(audit_url):
    at = no_failure(new_app())
    at.text_input(key=widget_key("hmda", "debt_to_income")).input("-1")
    at.text_input(key=widget_key("hmda", "loan_to_value")).input("lots")
    at.text_input(key=widget_key("hmda", "application_date")).input("yesterday")
    before = AuditStore(audit_url).count()
    button(at, "Decide").click()
    no_failure(at.run())
    row = {**tables.form_values(load_spec("hmda"), DENIAL), "debt_to_income": "-1", "loan_to_value": "lots",
           "application_date": "yesterday"}
    with pytest.raises(InvalidApplicationError) as expected:
        parse_application(row_to_application(row, load_spec("hmda")), "hmda")
    shown = [e.value for e in at.error]
    assert len(expected.value.problems) == 3
    assert sorted(shown) == sorted(tables.md_escape(p) for p in expected.value.problems)
    assert any(s.startswith(tables.md_escape("debt_to_income must be between 0 and 3")) for s in shown)
    assert not at.metric and AuditStore(audit_url).count() == before


def test_deciding_the_form_shows_decision_reasons_explanation_and_records_it(decided, audit_url):
    expected = Scorer.load("hmda").score(DENIAL)
    assert metric(decided, "Decision") == "Denied" and metric(decided, "Reason reference") == "population"
    assert metric(decided, "Risk") == f"{expected.risk:.1%}"
    listed = next(m.value for m in decided.markdown if m.value.startswith("1. **"))
    assert [line.split("**")[1] for line in listed.splitlines()] == [tables.md_escape(r.statement)
                                                                      for r in expected.reasons]
    reasons = next(d.value for d in decided.dataframe if "statement" in d.value.columns)
    assert list(reasons["code"]) == [r.code for r in expected.reasons]
    explanation = decided.session_state["ls_current"]["issued"]["population"].decision.explanation
    assert explanation and any(tables.md_escape(explanation) in m.value for m in decided.markdown)
    checklist = next(m.value for m in decided.markdown if m.value.startswith("- :"))
    assert len(checklist.splitlines()) == len(decided.session_state["ls_current"]["issued"]["population"]
                                              .decision.verification["checks"])
    assert all(line.startswith(f"- {display.CHECK_ICONS['pass']}") for line in checklist.splitlines())
    records = AuditStore(audit_url).list(decision="deny", limit=None)
    assert records and records[-1].actor.startswith("app:") and records[-1].notice_sha256


def test_switching_the_dataset_rebuilds_the_form_from_its_spec(audit_url):
    at = no_failure(new_app())
    at.sidebar.selectbox[0].set_value("credit").run()
    spec = load_spec("credit")
    labels = {w.label for w in [*at.text_input, *at.selectbox]}
    assert {f.label for f in spec.input_fields} <= labels and "Debt-to-income ratio" not in labels
    housing = at.selectbox(key=widget_key("credit", "home"))
    assert housing.options == ["not stated", *spec.feature("home").categories], "optional: may be left unstated"
    button(at, "Decide").click()
    no_failure(at.run())
    expected = Scorer.load("credit").score(tables.example_application("credit"))
    assert metric(at, "Decision") == ("Denied" if expected.denied else "Approved")
    assert at.session_state["ls_current"]["issued"]["population"].decision.dataset == "credit"


def test_switching_the_reference_reissues_and_shows_what_changes(audit_url):
    at = denied_app()
    at.radio(key="ls_reference_choice").set_value("cutoff").run()
    no_failure(at)
    assert metric(at, "Reason reference") == "cutoff"
    issued = at.session_state["ls_current"]["issued"]
    assert set(issued) == {"population", "cutoff"}
    shown = next(d.value for d in at.dataframe if "change" in d.value.columns)
    expected = tables.reference_changes(issued["population"].decision, issued["cutoff"].decision)
    assert shown.equals(expected)
    last_two = AuditStore(audit_url).list(limit=None)[-2:]
    assert [r.content["decision"]["reference"] for r in last_two] == ["population", "cutoff"]
    assert len({r.actor for r in last_two}) == 1


def test_held_out_filters_and_decides_a_matching_application(audit_url):
    at = no_failure(new_app())
    at.radio(key="ls_source").set_value("Held-out application").run()
    at.selectbox(key="ls_filter_decision").set_value("deny").run()
    at.selectbox(key="ls_filter_reason").set_value("DEBT_TO_INCOME").run()
    shown = next(d.value for d in at.dataframe if "first_reason" in d.value.columns)
    assert len(shown) > 0 and set(shown["decision"]) == {"deny"}
    assert all("DEBT_TO_INCOME" in reasons.split(", ") for reasons in shown["reasons"])
    button(at, "Decide this application").click()
    no_failure(at.run())
    decision = at.session_state["ls_current"]["issued"]["population"].decision
    assert metric(at, "Decision") == "Denied" and "DEBT_TO_INCOME" in [r.code for r in decision.reasons]
    at.selectbox(key="ls_filter_decision").set_value("approve").run()
    assert any("No held-out application matches" in i.value for i in no_failure(at).info)
    at.selectbox(key="ls_filter_reason").set_value("").run()
    approvals = next(d.value for d in at.dataframe if "first_reason" in d.value.columns)
    assert at.selectbox(key="ls_held_out_row").value in set(approvals["row"]), "a denial's row is not kept"
    selected = at.selectbox(key="ls_held_out_row").value
    expected_dti = approvals.set_index("row").loc[selected, "debt_to_income"]
    button(at, "Copy into the form").click()
    no_failure(at.run())
    assert at.radio(key="ls_source").value == "Fill the form"
    shown = float(at.text_input(key=widget_key("hmda", "debt_to_income")).value)
    assert shown == pytest.approx(expected_dti, rel=1e-6)


# ---------------------------------------------------------------------------- notices

def test_notices_page_previews_and_offers_the_current_notice(decided):
    at = no_failure(decided.switch_page("lendsafe/ui/notices.py").run())
    issued = at.session_state["ls_current"]["issued"]["population"]
    assert len(at.image) >= 1
    labels = [b.label for b in at.get("download_button")]
    assert "Download the notice PDF" in labels
    check = next(d.value for d in at.dataframe if list(d.value.columns) == ["check", "result", "detail"])
    assert issued.check.passed and set(check["result"]) == {tables.CHECK_MARKS[True]}


def test_notices_page_without_a_decision_says_what_to_do(audit_url):
    at = new_app().switch_page("lendsafe/ui/notices.py").run()
    assert any("No decision yet" in i.value for i in no_failure(at).info)


def test_batch_upload_lists_the_bad_row_and_builds_the_zip(audit_url):
    spec = load_spec("hmda")
    rows = list(csv.DictReader(io.StringIO(tables.sample_csv(spec))))
    rows.append({**rows[0], "debt_to_income": "-5", "application_id": "BAD-1"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    at = new_app().switch_page("lendsafe/ui/notices.py").run()
    at.file_uploader(key="ls_batch_upload").set_value(("apps.csv", buffer.getvalue().encode(), "text/csv"))
    at.run()
    button(at, "Run the batch").click()
    no_failure(at.run())
    outcome = at.session_state["ls_batch"]
    assert [e["row"] for e in outcome["errors"]] == [len(rows) + 1]
    assert "debt_to_income must be between 0 and 3" in outcome["errors"][0]["problems"]
    assert len(outcome["rows"]) == len(rows) - 1
    names = zipfile.ZipFile(io.BytesIO(outcome["zip"])).namelist()
    assert "manifest.csv" in names and sum(n.endswith(".pdf") for n in names) == outcome["notices"] >= 1
    assert any("were not decided" in e.value for e in at.error)
    assert at.get("progress"), "the batch shows a progress bar"


def test_sample_csv_reads_back_without_errors():
    for dataset in ("hmda", "credit"):
        rows = read_applications_csv_text(tables.sample_csv(load_spec(dataset)), dataset)
        assert rows and all(error is None for _, _, error in rows)


def read_applications_csv_text(text: str, dataset: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.csv"
        path.write_text(text)
        return read_applications_csv(path, dataset)


# ---------------------------------------------------------------------------- audit

def test_audit_page_opens_verifies_and_replays_a_record(decided, audit_url):
    at = no_failure(decided.switch_page("lendsafe/ui/audit.py").run())
    store = AuditStore(audit_url)
    listed = next(d.value for d in at.dataframe if "record_hash" not in d.value.columns and "actor" in d.value.columns)
    assert list(listed["id"]) == sorted((r.id for r in store.list(limit=None)), reverse=True)
    newest = store.list(limit=None)[-1]
    assert at.subheader[0].value == f"Record #{newest.id}"
    button(at, "Verify the audit chain").click()
    no_failure(at.run())
    assert any(store.verify().summary() == s.value for s in at.success)
    at.selectbox(key="ls_audit_decision").set_value("deny").run()
    denial = store.list(decision="deny", limit=None)[-1]
    at.selectbox(key="ls_audit_open").set_value(denial.id).run()
    button(at, "Replay the notice from this record").click()
    no_failure(at.run())
    assert any("regenerated byte for byte" in s.value for s in at.success)


def test_audit_filters_narrow_the_list(decided, audit_url):
    at = decided.switch_page("lendsafe/ui/audit.py").run()
    at.selectbox(key="ls_audit_decision").set_value("approve").run()
    expected = AuditStore(audit_url).list(decision="approve", limit=None)
    if expected:
        listed = next(d.value for d in at.dataframe if "actor" in d.value.columns)
        assert set(listed["decision"]) == {"approve"} and len(listed) == len(expected)
    else:
        assert any("No decision matches" in i.value for i in no_failure(at).info)


# ---------------------------------------------------------------------------- evaluation

def test_evaluation_without_results_says_so_then_runs_with_a_limit(audit_url, tmp_path, monkeypatch):
    monkeypatch.setenv("LENDSAFE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("lendsafe.evaluation.DEFAULT_OUT", tmp_path / "absent.json")
    at = no_failure(new_app().switch_page("lendsafe/ui/evaluation.py").run())
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
    at = no_failure(new_app().switch_page("lendsafe/ui/models.py").run())
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
    by_field, general = tables.problems_by_field(
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
        example = tables.example_application(dataset)
        row = tables.form_values(spec, example)
        assert parse_application(row_to_application(row, spec), spec) == parse_application(example, spec)


def test_contributions_mark_the_adverse_ones_behind_the_reasons():
    decision = Scorer.load("hmda").score(DENIAL)
    frame = tables.contribution_frame(decision, load_spec("hmda"))
    assert list(frame["contribution"]) == sorted(frame["contribution"], reverse=True)
    principal = frame[frame["role"] == tables.ROLE_PRINCIPAL]
    assert set(principal["reason_code"]) == {r.code for r in decision.reasons}
    assert (frame[frame["adverse"]]["contribution"] > 0).all() and (frame[~frame["adverse"]]["contribution"] <= 1e-6).all()


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
    pages = tables.pdf_page_images(pdf)
    assert 1 <= len(pages) <= 2 and all(p.startswith(b"\x89PNG") for p in pages)


def test_the_explorer_shows_each_rights_sentence_with_its_passage_and_the_dropped_candidates(audit_url):
    decided = denied_app()  # its own app: the module's shared one has moved to other pages by now
    decision = decided.session_state["ls_current"]["issued"]["population"].decision
    assert decision.grounding and all(row["passage_id"] for row in decision.grounding)
    labels = [e.label for e in decided.expander]
    for row in decision.grounding:
        assert tables.md_escape(row["sentence"]) in labels
    passages = {c.passage_id: c for c in decision.citations}
    shown = [t.value for t in decided.text]
    assert all(passages[row["passage_id"]].text in shown for row in decision.grounding)
    if decision.dropped:
        assert any(label.startswith("Candidates not stated as reasons") for label in labels)
