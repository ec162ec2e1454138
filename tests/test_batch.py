"""Batch notices: one PDF per denial, manifest, reported errors, zip; and the notice CLI commands."""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import getpass
import shutil
import zipfile
from types import SimpleNamespace

import pytest

from lendsafe.audit import AuditStore
from lendsafe.batch import MANIFEST_COLUMNS, run_batch, zip_batch
from lendsafe.cli import main
from lendsafe.decision import Decision, Reason
from lendsafe.errors import InvalidApplicationError
from lendsafe.notice import NoticeSettings, check_pdf

pytestmark = pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils (make test installs it)")

FEATURES = ("debt_to_income", "housing_expense_to_income", "loan_to_value", "consumer_credit_history",
            "mortgage_credit_history", "public_bad_credit_record", "mortgage_insurance_denied", "self_employed",
            "condominium")
DENIED = dict(zip(FEATURES, ("1.2", "0.9", "1.3", "6", "4", "yes", "yes", "no", "no")))
APPROVED = dict(zip(FEATURES, ("0.2", "0.15", "0.5", "1", "1", "no", "no", "no", "no")))
INVALID = {**APPROVED, "debt_to_income": "-1"}
NOTICE_DATE = dt.date(2026, 3, 2)


class FakePipeline:
    """Stands in for lendsafe.pipeline.Pipeline: denies when debt_to_income > 0.5."""

    settings = SimpleNamespace(dataset="hmda")

    def __init__(self, refuse_rows_with_dti: float | None = None):
        self.refuse = refuse_rows_with_dti
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
        return Decision(application=app, dataset="hmda", decision="deny" if denied else "approve",
                        risk=0.91 if denied else 0.08, threshold=0.5, reference="population", reasons=reasons,
                        contributions={}, model={"dataset": "hmda", "sha256": "cd" * 32, "threshold_version": "t"},
                        explanation="Your debts are high compared with your income." if denied else None)

    def run_many(self, apps: list[dict], reference: str | None = None) -> list[Decision]:
        self.batches.append(len(apps))
        return [self.run(app) for app in apps]


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
                       progress=lambda done, total: calls.append((done, total)), notice_date=NOTICE_DATE,
                       chunk_size=2)
    assert calls == [(2, 4), (4, 4)] and pipeline.batches == [2, 1]
    assert [r.row for r in result.rows] == [2, 3, 5] and [e.row for e in result.errors] == [4]
    assert "debt_to_income must be between 0 and 3" in result.errors[0].problems[0]
    manifest = read_manifest(result.manifest_path)
    assert tuple(manifest[0]) == MANIFEST_COLUMNS
    assert [m["decision"] for m in manifest] == ["deny", "approve", "deny"] and manifest[1]["path"] == ""
    for row, app in zip((manifest[0], manifest[2]), (pipeline.seen[0], pipeline.seen[2])):
        pdf = (result.out_dir / row["path"]).read_bytes()
        assert hashlib.sha256(pdf).hexdigest() == row["sha256"] and row["check"] == "pass"
        assert row["reasons"] == "DEBT_TO_INCOME;CONSUMER_CREDIT_HISTORY"
        assert check_pdf(pdf, pipeline.run(app)).passed


def test_rows_the_pipeline_rejects_are_reported_and_the_rest_processed(applications, tmp_path):
    result = run_batch(applications, tmp_path / "out", FakePipeline(refuse_rows_with_dti=1.2),
                       notice_date=NOTICE_DATE)
    assert [e.row for e in result.errors] == [2, 4] and result.processed == 2
    assert [r.row for r in result.rows] == [3, 5]
    assert "not plausible" in result.errors[0].problems[0]
    assert "row,problems" in result.errors_path.read_text()


def test_every_decision_of_a_batch_is_recorded_with_the_notice_it_produced(applications, tmp_path):
    from lendsafe.audit import AuditStore

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
        assert store.replay(int(denied["audit_id"])).identical


def test_each_chunk_is_recorded_in_one_transaction_and_the_manifest_names_each_record(applications, tmp_path):
    from sqlalchemy import event

    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as store:
        commits = []
        event.listen(store._engine, "commit", lambda _conn: commits.append(1))
        result = run_batch(applications, tmp_path / "out", FakePipeline(refuse_rows_with_dti=0.8),
                           notice_date=NOTICE_DATE, audit=store, chunk_size=2, actor="batch:test")
        manifest = read_manifest(result.manifest_path)
        assert [e.row for e in result.errors] == [4, 5] and [m["row"] for m in manifest] == ["2", "3"]
        assert len(commits) == 1 and [m["audit_id"] for m in manifest] == ["1", "2"]
        for row, debt_to_income in zip(manifest, (1.2, 0.2)):
            record = store.get(int(row["audit_id"]))
            assert (record.content["document_id"] or "", record.notice_sha256 or "") == (row["id"], row["sha256"])
            assert record.to_decision().application["debt_to_income"] == debt_to_income
        assert store.verify().ok and store.replay(1).identical


def test_zip_holds_manifest_errors_and_pdfs_and_is_reproducible(applications, tmp_path):
    result = run_batch(applications, tmp_path / "out", FakePipeline(), notice_date=NOTICE_DATE)
    data = zip_batch(result)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names[:2] == ["manifest.csv", "errors.csv"] and sorted(names[2:]) == sorted(r.path for r in result.notices)
    again = run_batch(applications, tmp_path / "again", FakePipeline(), notice_date=NOTICE_DATE)
    assert zip_batch(again) == data


def test_notices_command_reports_errors_and_exits_zero(applications, tmp_path, capsys, monkeypatch):
    import lendsafe.commands.notices as commands

    monkeypatch.setattr(commands, "_pipeline", lambda args: FakePipeline())
    out = tmp_path / "out"
    assert main(["notices", str(applications), "--out", str(out), "--notice-date", "2026-03-02"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary == {"processed": 3, "notices": 2, "failed_checks": 0, "errors": 1,
                       "manifest": str(out / "manifest.csv")}
    audit_ids = [int(m["audit_id"]) for m in read_manifest(out / "manifest.csv")]
    with AuditStore() as store:
        assert [store.get(i).actor for i in audit_ids] == [f"cli:{getpass.getuser()}"] * 3
    assert "row 4: debt_to_income must be between 0 and 3" in captured.err


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


def test_notices_command_with_the_real_pipeline(applications, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["notices", str(applications), "--out", str(out), "--no-llm"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["errors"] == 1 and summary["processed"] == 3 and summary["failed_checks"] == 0
    denied = [m for m in read_manifest(out / "manifest.csv") if m["decision"] == "deny"]
    assert denied and all((out / m["path"]).is_file() and m["check"] == "pass" for m in denied)
