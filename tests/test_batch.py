"""Batch notices: one PDF per denial, manifest, reported errors, zip; and the notice CLI commands."""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import getpass
import shutil
import subprocess
import zipfile
from types import SimpleNamespace

import pytest

from lendsafe.audit.replay import replay_notice
from lendsafe.audit.store import AuditStore
from lendsafe.issue.batch import run_batch
from lendsafe.issue.batchfolder import MANIFEST_COLUMNS, zip_batch
from lendsafe.cli import main
from lendsafe.explain.composer import compose
from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.decision import Decision, Reason
from lendsafe.errors import InvalidApplicationError
from lendsafe.notice import NoticeSettings, build_notice, check_pdf
from lendsafe.notice.pdftext import pdf_text

pytestmark = pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils (make test installs it)")

FEATURES = ("debt_to_income", "housing_expense_to_income", "loan_to_value", "consumer_credit_history",
            "mortgage_credit_history", "public_bad_credit_record", "mortgage_insurance_denied", "self_employed",
            "condominium")
DENIED = dict(zip(FEATURES, ("1.2", "0.9", "1.3", "6", "4", "yes", "yes", "no", "no")))
APPROVED = dict(zip(FEATURES, ("0.2", "0.15", "0.5", "1", "1", "no", "no", "no", "no")))
INVALID = {**APPROVED, "debt_to_income": "-1"}
NOTICE_DATE = dt.date(2026, 3, 2)


class FakePipeline:
    """Stands in for lendsafe.explain.pipeline.Pipeline: denies when debt_to_income > 0.5."""

    settings = SimpleNamespace(dataset="hmda")

    def __init__(self, refuse_rows_with_dti: float | None = None, explanation: str | None = None):
        self.refuse = refuse_rows_with_dti
        self.explanation = explanation            # None: the deterministic composer's verified text
        self.seen: list[dict] = []
        self.batches: list[int] = []

    def run(self, app: dict, reference: str | None = None) -> Decision:
        self.seen.append(app)
        if self.refuse is not None and app["debt_to_income"] == self.refuse:
            raise InvalidApplicationError(["debt_to_income is not plausible for this product"])
        denied = app["debt_to_income"] > 0.5
        reasons = (Reason("DEBT_TO_INCOME", "Excessive obligations in relation to income", "debt_to_income",
                          app["debt_to_income"], f"{app['debt_to_income']:.2f}", 0.8, "12 CFR 1002, App. C"),
                   Reason("CONSUMER_CREDIT_HISTORY", "Delinquent past or present credit obligations with others",
                          "consumer_credit_history", app["consumer_credit_history"],
                          str(app["consumer_credit_history"]), 0.4, "12 CFR 1002, App. C")) if denied else ()
        decision = Decision(application=app, dataset="hmda", decision="deny" if denied else "approve",
                            risk=0.91 if denied else 0.08, threshold=0.5, reference="population", reasons=reasons,
                            contributions={}, model={"dataset": "hmda", "sha256": "cd" * 32, "threshold_version": "t"})
        explanation = self.explanation if self.explanation is not None else compose(decision)
        return decision.with_updates(explanation=explanation if denied else None)

    def run_many(self, apps: list[dict], reference: str | None = None) -> list[Decision]:
        self.batches.append(len(apps))
        return [self.run(app) for app in apps]


@pytest.fixture(autouse=True)
def composed_text_passes(monkeypatch):
    """The fake pipeline's composed explanation is taken as verified, so these tests hold the batch's own
    behaviour apart from changes to the composer and the verifier (tested in their own files); any other
    explanation still meets the real verifier."""
    import lendsafe.issue.issuer as issuance

    real = issuance.explanation_failures

    def failures(decision):
        fake = decision.model.get("sha256") == "cd" * 32 and decision.explanation == compose(decision.with_updates(
            explanation=None, writer=None))
        return {} if fake else real(decision)

    monkeypatch.setattr(issuance, "explanation_failures", failures)


@pytest.fixture(autouse=True)
def own_audit_store(tmp_path, monkeypatch):
    """Each test's commands record into a store of its own: an application is issued once per store, so tests
    sharing the session's store would find each other's issues."""
    monkeypatch.setenv("LENDSAFE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli-audit.db'}?synchronous=NORMAL")


def write_csv(path, rows: list[dict]) -> None:
    columns = list(FEATURES) + ["applicant_name", "applicant_address", "application_date"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows([{"applicant_name": "", "applicant_address": "", "application_date": "", **r} for r in rows])


@pytest.fixture
def applications(tmp_path):
    path = tmp_path / "applications.csv"
    write_csv(path, [{**DENIED, "applicant_name": "Zoë <&> O'Brien", "applicant_address": "12 Rue d'Été\nParis",
                      "application_date": "2026-02-01"},
                     APPROVED, INVALID, {**DENIED, "applicant_name": "李小龙", "debt_to_income": "0.8"}])
    return path


def read_manifest(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_batch_writes_one_checked_pdf_per_denial_and_a_manifest(applications, tmp_path):
    pipeline, calls = FakePipeline(), []
    result = run_batch(applications, tmp_path / "out", pipeline, NoticeSettings(),
                       progress=lambda done, total, *_: calls.append((done, total)), notice_date=NOTICE_DATE,
                       chunk_size=2)
    assert calls == [(done, 4) for done in range(5)] and pipeline.batches == [2, 1]
    assert [r.data_row for r in result.rows] == [1, 2, 4] and [e.data_row for e in result.errors] == [3]
    assert "debt_to_income must be between 0 and 3" in result.errors[0].problems[0]
    manifest = read_manifest(result.manifest_path)
    assert tuple(manifest[0]) == MANIFEST_COLUMNS
    assert [m["decision"] for m in manifest] == ["deny", "approve", "deny"] and manifest[1]["path"] == ""
    for row, app in zip((manifest[0], manifest[2]), (pipeline.seen[0], pipeline.seen[2])):
        pdf = (result.out_dir / row["path"]).read_bytes()
        assert hashlib.sha256(pdf).hexdigest() == row["sha256"] and row["check"] == "pass"
        assert row["reasons"] == "DEBT_TO_INCOME;CONSUMER_CREDIT_HISTORY"
        decision = pipeline.run(app)
        assert check_pdf(pdf, build_notice(decision, NoticeSettings(), notice_date=NOTICE_DATE, document_id=row["id"]),
                         decision).passed


def test_manifest_and_errors_name_the_data_row_application_id_and_applicant(tmp_path):
    path = tmp_path / "apps.csv"
    rows = [{**DENIED, "application_id": "A-1", "applicant_name": "Ann Lee"}, {**INVALID, "application_id": "A-2"},
            {**DENIED, "application_id": "A-3", "loan_to_value": ""}]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(FEATURES) + ["application_id", "applicant_name"])
        writer.writeheader()
        writer.writerows(rows)
    result = run_batch(path, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE)
    manifest, errors = read_manifest(result.manifest_path), read_manifest(result.errors_path)
    assert [(m["data_row"], m["application_id"], m["applicant_name"], m["decision"]) for m in manifest] == \
        [("1", "A-1", "Ann Lee", "deny"), ("3", "A-3", "", "incomplete")]
    assert [(e["data_row"], e["application_id"], e["applicant_name"]) for e in errors] == [("2", "A-2", "")]
    assert [(r.application_id, r.applicant_name) for r in result.rows] == [("A-1", "Ann Lee"), ("A-3", "")]
    assert (result.errors[0].data_row, result.errors[0].application_id) == (2, "A-2")
    assert manifest[0]["path"].startswith("notice_row00001_")


def test_without_id_or_name_columns_those_cells_are_blank(applications, tmp_path):
    result = run_batch(applications, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE)
    assert {m["application_id"] for m in read_manifest(result.manifest_path)} == {""}
    assert [m["applicant_name"] for m in read_manifest(result.manifest_path)] == ["Zoë <&> O'Brien", "", "李小龙"]


def test_progress_reports_rows_per_second_and_eta_per_row():
    from lendsafe.issue.batch import ProgressMeter

    now, calls = [0.0], []
    meter = ProgressMeter(lambda *args: calls.append(args), total=5, clock=lambda: now[0])
    meter.start(1)
    now[0] = 2.0
    meter.advance(2)
    assert calls[0][:2] == (1, 5) and calls[0][3] == float("inf"), "no rate before a row is processed"
    assert calls[1:] == [(2, 5, 0.5, 6.0), (3, 5, 1.0, 2.0)], "the rate counts this run's rows only"
    now[0] = 4.0
    meter.advance(2)
    assert calls[-1] == (5, 5, 1.0, 0.0)


def test_rows_the_pipeline_rejects_are_reported_and_the_rest_processed(applications, tmp_path):
    result = run_batch(applications, tmp_path / "out", FakePipeline(refuse_rows_with_dti=1.2),
                       notice_date=NOTICE_DATE)
    assert [e.data_row for e in result.errors] == [1, 3] and result.processed == 2
    assert [r.data_row for r in result.rows] == [2, 4]
    assert "not plausible" in result.errors[0].problems[0]
    assert result.errors_path.read_text().startswith("data_row,application_id,applicant_name,key,problems,refused,audit_id\n")


def test_every_decision_of_a_batch_is_recorded_with_the_notice_it_produced(applications, tmp_path):
    from lendsafe.audit.store import AuditStore

    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as store:
        result = run_batch(applications, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE, audit=store,
                           actor="batch:test")
        manifest = read_manifest(result.manifest_path)
        records = {str(r.id): r for r in store.list()}
        assert sorted(records) == sorted(m["audit_id"] for m in manifest) and len(records) == result.processed
        for row in manifest:
            record = records[row["audit_id"]]
            assert record.actor == "batch:test" and record.decision == row["decision"]
            assert (record.notice_sha256 or "") == row["sha256"]
        assert store.verify().ok
        denied = next(m for m in manifest if m["decision"] == "deny")
        assert replay_notice(store, int(denied["audit_id"])).identical


def test_each_chunk_is_recorded_in_one_transaction_and_the_manifest_names_each_record(applications, tmp_path):
    from sqlalchemy import event

    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as store:
        commits, append = [], store.append

        def recording(*args, **kwargs):
            event.listen(store._engine, "commit", counting)
            try:
                return append(*args, **kwargs)
            finally:
                event.remove(store._engine, "commit", counting)

        def counting(_conn):
            commits.append(1)

        store.append = recording
        result = run_batch(applications, tmp_path / "out", FakePipeline(refuse_rows_with_dti=0.8),
                           notice_date=NOTICE_DATE, audit=store, chunk_size=2, actor="batch:test")
        manifest = read_manifest(result.manifest_path)
        assert [e.data_row for e in result.errors] == [3, 4] and [m["data_row"] for m in manifest] == ["1", "2"]
        assert len(commits) == 1 and [m["audit_id"] for m in manifest] == ["1", "2"]
        for row, debt_to_income in zip(manifest, (1.2, 0.2)):
            record = store.get(int(row["audit_id"]))
            assert (record.content["document_id"] or "", record.notice_sha256 or "") == (row["id"], row["sha256"])
            assert record.to_decision().application["debt_to_income"] == debt_to_income
        assert store.verify().ok and replay_notice(store, 1).identical


def test_zip_holds_manifest_errors_and_pdfs_and_is_reproducible(applications, tmp_path):
    result = run_batch(applications, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE)
    data = zip_batch(result)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names[:2] == ["manifest.csv", "errors.csv"] and sorted(names[2:]) == sorted(r.path for r in result.notices)
    again = run_batch(applications, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE)
    assert zip_batch(again) == data and again.resumed == 3


def test_notices_command_reports_errors_and_exits_zero(applications, tmp_path, capsys, monkeypatch):
    import lendsafe.commands.notices as commands

    monkeypatch.setattr(commands, "_pipeline", lambda args: FakePipeline())
    out = tmp_path / "out"
    assert main(["notices", str(applications), "--out", str(out), "--notice-date", "2026-03-02"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary == {"processed": 3, "notices": 2, "incomplete": 0, "held_for_review": 0, "failed_checks": 0,
                       "errors": 1, "refused": 0,
                       "already_issued": 0, "resumed": 0, "failed_partitions": 0, "specimen": True,
                       "manifest": str(out / "manifest.csv")}
    audit_ids = [int(m["audit_id"]) for m in read_manifest(out / "manifest.csv")]
    with AuditStore() as store:
        assert [store.get(i).actor for i in audit_ids] == [f"cli:{getpass.getuser()}"] * 3
    assert "data_row 3: debt_to_income must be between 0 and 3" in captured.err


def test_notices_command_exits_one_when_nothing_was_processed(tmp_path, capsys, monkeypatch):
    import lendsafe.commands.notices as commands

    monkeypatch.setattr(commands, "_pipeline", lambda args: FakePipeline())
    path = tmp_path / "bad.csv"
    write_csv(path, [INVALID])
    assert main(["notices", str(path), "--out", str(tmp_path / "out")]) == 1
    assert json.loads(capsys.readouterr().out)["errors"] == 1


def test_notice_command_writes_the_pdf_and_prints_a_passing_check(tmp_path, capsys, monkeypatch):
    import lendsafe.commands.notices as commands

    monkeypatch.setattr(commands, "_pipeline", lambda args: FakePipeline())
    app, pdf, decision = tmp_path / "app.json", tmp_path / "n.pdf", tmp_path / "d.json"
    app.write_text(json.dumps({"debt_to_income": 0.9, "consumer_credit_history": 6}))
    assert main(["notice", str(app), "--out", str(pdf), "--decision-out", str(decision)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["check"]["passed"] and printed["sha256"] == hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert main(["check-notice", str(pdf), "--decision", str(decision)]) == 0
    capsys.readouterr()
    assert main(["notice", str(app), "--out", str(pdf), "--counteroffer", "A smaller loan of $90,000"]) == 0
    assert json.loads(capsys.readouterr().out)["check"]["checks"]["action"]["detail"] == "counteroffer stated"


# -------------------------------------------------------------- against the real pipeline (its contract)

def test_notice_command_with_the_real_pipeline(tmp_path, capsys):
    app, pdf, decision = tmp_path / "app.json", tmp_path / "n.pdf", tmp_path / "d.json"
    app.write_text(json.dumps({k: json.loads(v) if v not in ("yes", "no") else v == "yes"
                               for k, v in DENIED.items()}))
    code = main(["notice", str(app), "--out", str(pdf), "--decision-out", str(decision), "--no-llm"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["decision"] == "deny" and printed["check"]["passed"], printed
    assert main(["check-notice", str(pdf), "--decision", str(decision)]) == 0


def test_notice_command_holds_a_denial_for_review_when_asked_and_review_approves_it(tmp_path, capsys):
    app, pdf = tmp_path / "app.json", tmp_path / "n.pdf"
    app.write_text(json.dumps({k: json.loads(v) if v not in ("yes", "no") else v == "yes"
                               for k, v in DENIED.items()}))
    assert main(["notice", str(app), "--out", str(pdf), "--no-llm", "--hold-for-review"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["held_for_review"] and printed["notice"] is None and not pdf.exists()
    item = printed["review_item"]
    assert main(["review", "approve", str(item), "--actor", "cli:reviewer"]) == 0
    capsys.readouterr()
    assert main(["audit", "list", "--decision", "deny", "--json"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as refused:
        main(["notice", str(app), "--out", str(pdf), "--no-llm", "--hold-for-review", "--no-review"])
    assert refused.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_notices_command_with_the_real_pipeline(applications, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["notices", str(applications), "--out", str(out), "--no-llm"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["errors"] == 1 and summary["processed"] == 3 and summary["failed_checks"] == 0
    denied = [m for m in read_manifest(out / "manifest.csv") if m["decision"] == "deny"]
    assert denied and all((out / m["path"]).is_file() and m["check"] == "pass" for m in denied)


# -------------------------------------------------------------- incomplete rows, re-verification, settings

EXAMPLES = PROJECT_ROOT / "data" / "examples"
LENDER = EXAMPLES / "lender.toml"


def test_a_row_with_a_blank_required_cell_gets_a_notice_of_incompleteness(tmp_path):
    from lendsafe.notice.incomplete import check_incomplete_pdf

    path = tmp_path / "apps.csv"
    write_csv(path, [DENIED, {**DENIED, "loan_to_value": "", "condominium": "", "applicant_name": "Ann Lee"},
                     {**DENIED, "loan_to_value": "", "debt_to_income": "lots"}])
    pipeline = FakePipeline()
    result = run_batch(path, tmp_path / "out", pipeline, NoticeSettings.from_file(LENDER), notice_date=NOTICE_DATE)
    manifest = read_manifest(result.manifest_path)
    assert [(m["data_row"], m["decision"]) for m in manifest] == [("1", "deny"), ("2", "incomplete")]
    assert manifest[1]["reasons"] == "loan_to_value;condominium" and manifest[1]["check"] == "pass"
    assert len(pipeline.seen) == 1, "an incomplete application is not scored"
    assert [e.data_row for e in result.errors] == [3] and "debt_to_income must be" in result.errors[0].problems[0]
    assert len(result.notices) == 1 and len(result.incomplete) == 1 and len(result.documents) == 2
    pdf = (result.out_dir / manifest[1]["path"]).read_bytes()
    record = {"kind": "incomplete", "dataset": "hmda", "missing": ["loan_to_value", "condominium"],
              "application": {k: v for k, v in pipeline.run(pipeline.seen[0]).application.items()
                              if k not in ("loan_to_value", "condominium")} | {"applicant": {"name": "Ann Lee",
                                                                                                "address": ""}}}
    check = check_incomplete_pdf(pdf, record, NoticeSettings.from_file(LENDER), notice_date=NOTICE_DATE,
                                 document_id=manifest[1]["id"])
    assert check.passed, check.failures()
    assert sorted(zipfile.ZipFile(io.BytesIO(zip_batch(result))).namelist()[2:]) == sorted(m["path"] for m in manifest
                                                                                          if m["path"])


def test_incompleteness_notices_can_be_turned_off(tmp_path):
    path = tmp_path / "apps.csv"
    write_csv(path, [{**DENIED, "loan_to_value": ""}])
    result = run_batch(path, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE, incomplete=False)
    assert not result.rows and "loan_to_value is required" in result.errors[0].problems[0]


def test_a_missing_required_column_is_an_error_on_every_row_not_incompleteness(tmp_path):
    path = tmp_path / "apps.csv"
    rows = [{k: v for k, v in DENIED.items() if k != "condominium"}] * 2
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = run_batch(path, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE)
    assert not result.rows and [e.data_row for e in result.errors] == [1, 2]
    assert "condominium is required" in result.errors[0].problems[0]


def test_a_denial_whose_explanation_fails_verification_is_not_issued(applications, tmp_path):
    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as store:
        result = run_batch(applications, tmp_path / "out", FakePipeline(explanation="You may apply again soon."),
                           notice_date=NOTICE_DATE, audit=store)
        assert [r.decision for r in result.rows] == ["approve"]
        refusals = store.list(decision="refusal")
        assert [r.kind for r in refusals] == ["refusal"] * 2 and store.count() == 3 and store.verify().ok
        assert {r.notice_sha256 for r in refusals} == {None}, "no PDF issued"
        refused = refusals[0].content["refused"]
        assert refused["reason"] == "explanation verification" and refused["failures"]
        assert refused["decision"]["explanation"] == "You may apply again soon." and refused["document_id"] is None
    assert [e.data_row for e in result.errors] == [1, 3, 4] and not list(result.out_dir.glob("*.pdf"))
    assert "fails verification at issue time" in result.errors[0].problems[0]
    assert [(e.refused, e.audit_id) for e in result.errors] == [("explanation verification", str(refusals[0].id)),
                                                                ("", ""), ("explanation verification",
                                                                           str(refusals[1].id))]
    errors = read_manifest(result.errors_path)
    assert [e["refused"] for e in errors] == ["explanation verification", "", "explanation verification"]
    assert len(result.refused) == 2


def test_notices_command_with_lender_settings_is_not_a_specimen(applications, tmp_path, capsys, monkeypatch):
    import lendsafe.commands.notices as commands

    monkeypatch.setattr(commands, "_pipeline", lambda args: FakePipeline())
    out = tmp_path / "out"
    assert main(["notices", str(applications), "--out", str(out), "--notice-settings", str(LENDER)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["specimen"] is False and "SPECIMEN" not in captured.err
    pdfs = [(out / row["path"]).read_bytes() for row in read_manifest(out / "manifest.csv") if row["path"]]
    assert len(pdfs) == 2 and all("SPECIMEN" not in "".join(pdf_text(pdf)) for pdf in pdfs)
    assert all("Cascade Valley Bank" in "".join(pdf_text(pdf)) for pdf in pdfs)


@pytest.mark.parametrize("change, fragment", [
    ('agency = "occ"', 'agency = "fed"'), ('creditor_phone = "(503) 555-0142"', 'creditor_phone = "call us"'),
    ('creditor_name = "Cascade Valley Bank, N.A."', 'creditor_name = ""'),
])
def test_bad_lender_settings_exit_2_and_write_nothing(change, fragment, tmp_path, capsys, monkeypatch):
    import lendsafe.commands.notices as commands

    monkeypatch.setattr(commands, "_pipeline", lambda args: FakePipeline())
    settings = tmp_path / "lender.toml"
    settings.write_text(LENDER.read_text().replace(change, fragment))
    app, pdf = tmp_path / "app.json", tmp_path / "n.pdf"
    app.write_text(json.dumps({"debt_to_income": 0.9, "consumer_credit_history": 6}))
    assert main(["notice", str(app), "--out", str(pdf), "--notice-settings", str(settings)]) == 2
    field = fragment.split(" =")[0]
    assert f"error: {field} must be" in capsys.readouterr().err and not pdf.exists()
    assert main(["notices", str(app), "--out", str(tmp_path / "out"), "--notice-settings", str(settings)]) == 2
    assert not (tmp_path / "out").exists()


def test_notice_incomplete_command_and_check_notice(tmp_path, capsys):
    app = json.loads((EXAMPLES / "credit_denial.json").read_text())
    del app["seniority"]
    path, pdf, record = tmp_path / "app.json", tmp_path / "i.pdf", tmp_path / "r.json"
    path.write_text(json.dumps(app))
    assert main(["notice", str(path), "--dataset", "credit", "--out", str(pdf), "--no-llm"]) == 2
    err = capsys.readouterr().err
    assert "seniority is required" in err and "--incomplete" in err and not pdf.exists()
    assert main(["notice", str(path), "--dataset", "credit", "--incomplete", "--out", str(pdf),
                 "--decision-out", str(record), "--notice-settings", str(LENDER), "--notice-date", "2026-03-02"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["decision"] == "incomplete" and printed["missing"] == ["seniority"]
    assert printed["deadline"] == "2026-04-01" and printed["check"]["passed"] and not printed["specimen"]
    assert main(["check-notice", str(pdf), "--decision", str(record), "--notice-settings", str(LENDER)]) == 0
    assert json.loads(capsys.readouterr().out)["specimen"] is False
    assert main(["check-notice", str(pdf), "--decision", str(record)]) == 1
    assert subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True).returncode == 0
    app["amount"] = "lots"
    path.write_text(json.dumps(app))
    assert main(["notice", str(path), "--dataset", "credit", "--incomplete", "--out", str(pdf)]) == 2
    assert "amount must be a number" in capsys.readouterr().err


def test_notice_command_on_the_credit_dataset_with_the_real_pipeline(tmp_path, capsys):
    pdf, decision = tmp_path / "n.pdf", tmp_path / "d.json"
    assert main(["notice", str(EXAMPLES / "credit_denial.json"), "--dataset", "credit", "--writer", "template",
                 "--reference", "cutoff", "--out", str(pdf), "--decision-out", str(decision),
                 "--notice-settings", str(LENDER)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["decision"] == "deny" and printed["check"]["passed"] and printed["specimen"] is False, printed
    recorded = json.loads(decision.read_text())
    assert recorded["dataset"] == "credit" and recorded["reference"] == "cutoff" and recorded["writer"] == "template"
    assert main(["check-notice", str(pdf), "--decision", str(decision), "--notice-settings", str(LENDER)]) == 0
    assert subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True).returncode == 0


def test_notices_command_on_a_credit_csv_with_the_real_pipeline(tmp_path, capsys):
    app = json.loads((EXAMPLES / "credit_denial.json").read_text())
    fields = ["application_id", "seniority", "home", "loan_term_months", "public_record", "expenses", "income",
              "assets", "debt", "amount", "price"]
    rows = [{k: app[k] for k in fields}, {**{k: app[k] for k in fields}, "application_id": "C2", "seniority": 20,
                                          "public_record": False, "income": 300, "amount": 500, "price": 2000},
            {**{k: app[k] for k in fields}, "application_id": "C3", "seniority": ""},
            {**{k: app[k] for k in fields}, "application_id": "C4", "loan_term_months": "sixty"}]
    path, out = tmp_path / "credit.csv", tmp_path / "out"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows([{k: str(v).lower() if isinstance(v, bool) else v for k, v in r.items()} for r in rows])
    assert main(["notices", str(path), "--dataset", "credit", "--no-llm", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["processed"] == 3 and summary["incomplete"] == 1 and summary["errors"] == 1, summary
    assert summary["failed_checks"] == 0 and summary["specimen"] is True
    manifest = read_manifest(out / "manifest.csv")
    assert [m["decision"] for m in manifest][2] == "incomplete" and manifest[0]["decision"] == "deny"
    for row in manifest:
        if row["path"]:
            assert row["check"] == "pass"
            assert subprocess.run(["qpdf", "--check", str(out / row["path"])], capture_output=True).returncode == 0


# -------------------------------------------------------------- resumable, idempotent, safe where it lands

def test_identical_rows_get_distinct_document_ids_and_one_record_each(tmp_path):
    path = tmp_path / "apps.csv"
    write_csv(path, [DENIED, DENIED, DENIED])
    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as store:
        result = run_batch(path, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE, audit=store)
        assert len({r.id for r in result.notices}) == 3 and len({r.key for r in result.rows}) == 3
        assert sorted(store.issued()) == sorted(r.key for r in result.rows) and store.count() == 3


def test_a_repeated_application_id_with_the_same_content_is_issued_once(tmp_path):
    path = tmp_path / "apps.csv"
    rows = [{**DENIED, "application_id": "A-1"}, {**DENIED, "application_id": "A-1"},
            {**DENIED, "application_id": "A-2"}]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = run_batch(path, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE)
    assert [r.data_row for r in result.rows] == [1, 3] and [e.data_row for e in result.errors] == [2]
    assert "repeats data_row 1" in result.errors[0].problems[0]


def test_a_rerun_issues_nothing_twice(applications, tmp_path):
    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as store:
        first = run_batch(applications, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE, audit=store)
        pipeline = FakePipeline()
        again = run_batch(applications, tmp_path / "out", pipeline, notice_date=NOTICE_DATE, audit=store)
        assert store.count() == 3 and again.resumed == 3 and again.rows == first.rows
        assert [a["debt_to_income"] for a in pipeline.seen] == [], "the invalid row is read again, nothing decided"
        assert [e.data_row for e in again.errors] == [3]
        pipeline = FakePipeline()
        other = run_batch(applications, tmp_path / "other", pipeline, notice_date=NOTICE_DATE, audit=store)
        assert store.count() == 3 and not pipeline.seen, "another folder issues nothing already issued"
        assert [(r.status, r.id, r.audit_id) for r in other.rows] == [("already issued", r.id, r.audit_id)
                                                                       for r in first.rows]
        assert not other.documents and not list((tmp_path / "other").glob("*.pdf"))
        assert [m["status"] for m in read_manifest(other.manifest_path)] == ["already issued"] * 3


def test_records_committed_before_the_manifest_line_are_listed_on_rerun_not_issued_again(applications, tmp_path,
                                                                                           monkeypatch):
    import lendsafe.issue.batchfolder as batchfolder

    real_append = batchfolder.CsvLog.append
    calls = []

    def crash_after_first_group(log, rows):
        if log.path.name == "manifest.csv" and rows:
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt("killed between the audit commit and the manifest line")
        return real_append(log, rows)

    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as store:
        monkeypatch.setattr(batchfolder.CsvLog, "append", crash_after_first_group)
        with pytest.raises(KeyboardInterrupt):
            run_batch(applications, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE, audit=store,
                      chunk_size=2)
        assert store.count() == 3 and len(read_manifest(tmp_path / "out" / "manifest.csv")) == 2
        monkeypatch.setattr(batchfolder.CsvLog, "append", real_append)
        (tmp_path / "out" / next(p.name for p in (tmp_path / "out").glob("notice_row00004_*.pdf"))).unlink()
        pipeline = FakePipeline()
        result = run_batch(applications, tmp_path / "out", pipeline, notice_date=NOTICE_DATE, audit=store,
                           chunk_size=2)
        assert store.count() == 3 and not pipeline.seen and result.resumed == 3
        manifest = read_manifest(result.manifest_path)
        assert [m["data_row"] for m in manifest] == ["1", "2", "4"] and [m["audit_id"] for m in manifest] == ["1", "2", "3"]
        for row in manifest[::2]:
            assert hashlib.sha256((result.out_dir / row["path"]).read_bytes()).hexdigest() == row["sha256"]
        assert store.verify().ok


def test_a_line_torn_by_a_kill_and_a_pdf_that_does_not_match_are_redone(applications, tmp_path):
    out = tmp_path / "out"
    first = run_batch(applications, out, FakePipeline(), notice_date=NOTICE_DATE)
    text = (out / "manifest.csv").read_text()
    (out / "manifest.csv").write_text(text[: text.rindex("\n", 0, len(text) - 1) + 10])   # last line cut short
    (out / first.rows[0].path).write_bytes(b"%PDF-1.4 truncated")
    (out / ".notice.pdf.123.tmp").write_bytes(b"left by a kill")
    pipeline = FakePipeline()
    again = run_batch(applications, out, pipeline, notice_date=NOTICE_DATE)
    assert again.rows == first.rows and len(pipeline.seen) == 2 and again.resumed == 1
    assert not list(out.glob(".*.tmp"))
    assert all(hashlib.sha256((out / r.path).read_bytes()).hexdigest() == r.sha256 for r in again.documents)


def test_a_second_run_into_a_folder_in_use_is_refused(applications, tmp_path):
    import fcntl

    from lendsafe.issue.batchfolder import LOCK_NAME
    from lendsafe.errors import ConfigurationError

    (tmp_path / "out").mkdir()
    with open(tmp_path / "out" / LOCK_NAME, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ConfigurationError, match="in use by another batch"):
            run_batch(applications, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE)


def test_formula_cells_and_control_characters_are_neutralised_in_the_csv_files(tmp_path):
    path = tmp_path / "apps.csv"
    hostile = {"=cmd|' /C calc'!A0": "1", **APPROVED, "application_id": "@SUM(A1)", "\x1b]8;;http://x\x07": "2"}
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(hostile))
        writer.writeheader()
        writer.writerow(hostile)
        writer.writerow({**APPROVED, "debt_to_income": "-2+3", "application_id": "\x1b[31mred",
                         "=cmd|' /C calc'!A0": ""})
    result = run_batch(path, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE)
    assert len(result.errors) == 2
    for line in read_manifest(result.errors_path):
        assert all(not str(cell).startswith(("=", "+", "-", "@", "\t", "\r")) for cell in line.values()), line
        assert "\x1b" not in line["problems"]
    text = result.errors_path.read_text()
    assert "'=cmd" in text and "\x1b" not in text and "\n=" not in text and ",=" not in text


def test_cells_from_hostile_text_are_quoted():
    from lendsafe.issue.batchfolder import safe_cell

    assert [safe_cell(v) for v in ("=1+1", "+1", "-1", "@x", "\tx", "\rx", "ok", 7)] == \
        ["'=1+1", "'+1", "'-1", "'@x", "\\x09x", "\\x0dx", "ok", 7]


@pytest.mark.parametrize("content, words", [
    ("debt_to_income,debt_to_income,loan_to_value\n1,2,3\n", ["'debt_to_income' appears 2 times"]),
    ("\n\n", ["no header row"]),
    ('a,b\n"unclosed\n', []),
])
def test_a_csv_that_cannot_be_read_as_a_whole_is_refused_with_exit_2(content, words, tmp_path, capsys, monkeypatch):
    import lendsafe.commands.notices as commands

    monkeypatch.setattr(commands, "_pipeline", lambda args: FakePipeline())
    path = tmp_path / "apps.csv"
    path.write_text(content)
    code = main(["notices", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code in (1, 2) and "Traceback" not in err
    for word in words:
        assert code == 2 and word in err, err


@pytest.mark.parametrize("target,words", [("missing.csv", "applications CSV not found"),
                                          (".", "holds no Parquet parts; expected files named *.parquet")])
def test_a_missing_csv_or_a_folder_without_parquet_parts_is_refused(target, words, tmp_path, capsys, monkeypatch):
    import lendsafe.commands.notices as commands

    monkeypatch.setattr(commands, "_pipeline", lambda args: FakePipeline())
    assert main(["notices", str(tmp_path / target), "--out", str(tmp_path / "out")]) == 2
    assert words in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_bad_byte_long_cell_or_extra_cell_is_an_error_of_that_row_only(tmp_path):
    path = tmp_path / "apps.csv"
    header = ",".join(FEATURES) + ",applicant_name"
    good = ",".join(DENIED[f] for f in FEATURES)
    path.write_bytes("\n".join([header, good + ",Ann", good + ",B\xffob", good + "," + "x" * 200_000,
                                good + ",Ann,extra"]).encode("utf-8").replace(b"\xc3\xbf", b"\xff") + b"\n")
    result = run_batch(path, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE)
    assert [r.data_row for r in result.rows] == [1] and [e.data_row for e in result.errors] == [2, 3, 4]
    problems = [e.problems[0] for e in result.errors]
    assert "applicant_name is not UTF-8" in problems[0] and "at most 10,000 characters; got 200,000" in problems[1]
    assert "5 cells" not in problems[2] and "the header has 10 columns" in problems[2]


@pytest.mark.parametrize("change, words", [
    ({"application_date": "9999-12-31"}, "application_date must be a date from 1900-01-01"),
    ({"application_date": "0001-01-01"}, "application_date must be a date from 1900-01-01"),
    ({"applicant_name": "Jordan \U0001F600"}, "not issued"),
])
def test_rows_no_notice_may_print_go_to_errors_and_only_refusals_are_recorded(change, words, tmp_path):
    path = tmp_path / "apps.csv"
    write_csv(path, [{**DENIED, **change}, DENIED])
    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as store:
        result = run_batch(path, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE, audit=store)
        assert [e.data_row for e in result.errors] == [1] and words in result.errors[0].problems[0]
        refused = [r for r in store.list() if r.kind == "refusal"]
        assert [r.data_row for r in result.rows] == [2] and store.count() == 1 + len(refused)
        assert [e.refused for e in result.errors] == ["completeness check" if refused else ""]
        if refused:
            assert refused[0].content["refused"]["document_id"] == result.errors[0].problems[0].split()[1]
            assert "applicant" in refused[0].content["refused"]["failures"]


def test_a_soft_hyphen_in_the_name_is_removed_and_the_notice_issued(tmp_path):
    path = tmp_path / "apps.csv"
    write_csv(path, [{**DENIED, "applicant_name": "Jor\u00addan Avery\u200b"}])
    result = run_batch(path, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE)
    assert not result.errors and "Jordan Avery" in " ".join(pdf_text((result.out_dir / result.rows[0].path).read_bytes()))


# -------------------------------------------------------------- one issue per application across batches

class SlowPipeline(FakePipeline):
    """Decides a group in 0.2 s, so two batches started together both find nothing issued before either commits."""

    def run_many(self, apps: list[dict], reference: str | None = None) -> list[Decision]:
        import time

        time.sleep(0.2)
        return super().run_many(apps, reference)


def _batch_in_a_process(csv_path, out, url, start, results) -> None:
    with AuditStore(url, key=b"k" * 32) as store:
        start.wait()
        result = run_batch(csv_path, out, SlowPipeline(), notice_date=NOTICE_DATE, audit=store, chunk_size=2,
                           actor=f"batch:{out.name}")
    results.put((out.name, [(r.application_id, r.status, r.id, r.audit_id, r.path) for r in result.rows]))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_two_concurrent_batches_of_one_csv_issue_each_application_once(backend, tmp_path, monkeypatch, request):
    import multiprocessing

    monkeypatch.setenv("LENDSAFE_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    url = (f"sqlite:///{tmp_path / 'audit.db'}" if backend == "sqlite"
           else request.getfixturevalue("postgres").new_database())
    path = tmp_path / "apps.csv"
    rows = [{**(DENIED if n % 3 else APPROVED), "application_id": f"A-{n}"} for n in range(12)]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    AuditStore(url, key=b"k" * 32).close()                  # the schema exists before both start
    fork = multiprocessing.get_context("fork")
    start, results = fork.Barrier(2), fork.Queue()
    workers = [fork.Process(target=_batch_in_a_process, args=(path, tmp_path / name, url, start, results))
               for name in ("left", "right")]
    for worker in workers:
        worker.start()
    listed = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    issued = [row for rows_ in listed.values() for row in rows_ if row[1] == "issued"]
    already = [row for rows_ in listed.values() for row in rows_ if row[1] == "already issued"]
    assert sorted(row[0] for row in issued) == sorted(r["application_id"] for r in rows), "each issued once"
    assert len(already) == len(rows) and {row[0] for row in already} == {r["application_id"] for r in rows}
    by_id = {row[0]: row for row in issued}
    assert all(row[2:4] == by_id[row[0]][2:4] and row[4] == "" for row in already), \
        "listed with the issuing batch's document id and record, without a PDF"
    pdfs = sorted(p.name for name in listed for p in (tmp_path / name).glob("*.pdf"))
    assert pdfs == sorted(row[4] for row in issued if row[4])
    with AuditStore(url, key=b"k" * 32) as store:
        assert store.count() == len(rows) and store.verify().ok
        assert len(store.issued()) == len(rows)
    print(f"\n{backend}: {len(rows)} applications, issued by left {sum(r[1] == 'issued' for r in listed['left'])}, "
          f"by right {sum(r[1] == 'issued' for r in listed['right'])}; {len(already)} listed as already issued")


def test_a_batch_held_for_review_records_its_denials_as_held_and_issues_no_notice(applications, tmp_path):
    from lendsafe.review import Reviewer, batch_holder

    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as store:
        result = run_batch(applications, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE, audit=store,
                           hold=batch_holder(hold_all=True))
        assert len(result.held) == 2 and not result.notices and not list((tmp_path / "out").glob("*.pdf"))
        manifest = list(csv.DictReader(result.manifest_path.open(encoding="utf-8")))
        held = [row for row in manifest if row["status"] == "held for review"]
        assert len(held) == 2 and all(row["decision"] == "deny" and not row["path"] for row in held)
        queue = Reviewer(store).queue()
        assert sorted(str(item.id) for item in queue) == sorted(row["audit_id"] for row in held)
        again = run_batch(applications, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE, audit=store,
                          hold=batch_holder(hold_all=True))
        assert again.resumed == 3 and len(again.held) == 2 and len(Reviewer(store).queue()) == 2
        assert store.verify().ok


def test_holding_for_review_needs_an_audit_store(applications, tmp_path):
    from lendsafe.errors import ConfigurationError
    from lendsafe.review import batch_holder

    with pytest.raises(ConfigurationError, match="needs an audit store"):
        run_batch(applications, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE,
                  hold=batch_holder(hold_all=True))


def test_the_notices_command_holds_a_batch_for_review_when_asked(applications, tmp_path, capsys, monkeypatch):
    import lendsafe.commands.notices as commands

    monkeypatch.setattr(commands, "_pipeline", lambda args: FakePipeline())
    out = tmp_path / "out"
    assert main(["notices", str(applications), "--out", str(out), "--hold-for-review"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["held_for_review"] == 2 and summary["notices"] == 0 and "2 held for review" in captured.err
