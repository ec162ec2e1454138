"""Incomplete applications: required fields found missing from the spec, the rest validated as usual,
and the Reg B 1002.9(c)(2) notice of incompleteness checked from its PDF's text."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from dataclasses import replace

import pytest

from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.specs import load_spec
from lendsafe.errors import InvalidApplicationError, LendSafeError
from lendsafe.notice.incomplete import (build_incomplete_notice, check_incomplete_pdf, incompleteness_record,
                                 missing_fields, read_csv, render_incomplete_pdf, triage)
from lendsafe.notice.pdftext import pdf_text
from lendsafe.notice.settings import NoticeSettings
from lendsafe.notice.wording import load_wording

pytestmark = pytest.mark.skipif(not (shutil.which("pdftotext") and shutil.which("qpdf")),
                                reason="needs poppler-utils and qpdf")
EXAMPLES = PROJECT_ROOT / "data" / "examples"
NOTICE_DATE = dt.date(2026, 3, 2)


def credit_app(**changes) -> dict:
    app = json.loads((EXAMPLES / "credit_denial.json").read_text())
    return {k: v for k, v in {**app, **changes}.items() if v is not ...}


def lender(**changes) -> NoticeSettings:
    return replace(NoticeSettings.from_file(EXAMPLES / "lender.toml"), **changes)


def test_missing_means_absent_null_or_blank_and_only_required_fields_count():
    spec = load_spec("credit")
    required = [f.name for f in spec.input_fields if not f.optional]
    app = credit_app(seniority=..., expenses=None, amount="  ", income=None)
    assert [f.name for f in missing_fields(app, "credit")] == ["seniority", "expenses", "amount"]
    assert "income" not in required and missing_fields(credit_app(), "credit") == ()


def test_triage_validates_the_rest_and_keeps_what_was_given():
    complete = triage(credit_app(), "credit")
    assert not complete.incomplete and complete.application["seniority"] == 1
    lacking = triage(credit_app(seniority=..., expenses=None), "credit")
    assert lacking.missing == ("seniority", "expenses")
    assert "seniority" not in lacking.application and lacking.application["amount"] == 1400.0
    assert lacking.application["applicant"]["name"] == "Alex Moreno"


def test_a_wrong_value_beside_a_missing_field_is_still_the_field_named_error():
    with pytest.raises(InvalidApplicationError) as caught:
        triage(credit_app(seniority=..., amount="lots", home="castle"), "credit")
    problems = " ".join(caught.value.problems)
    assert "amount must be a number" in problems and "home must be one of" in problems
    assert "seniority" not in problems


def test_the_notice_names_the_missing_information_and_the_period(tmp_path):
    record = incompleteness_record(triage(credit_app(seniority=..., expenses=None), "credit"), "credit")
    notice = build_incomplete_notice(record, lender(incomplete_days=45), notice_date=NOTICE_DATE)
    assert notice.deadline == "2026-04-16" and notice.days == 45 and not notice.specimen
    assert notice.missing == ("Years with current employer", "Monthly expenses")
    pdf = render_incomplete_pdf(notice)
    assert pdf == render_incomplete_pdf(notice), "same notice, same bytes"
    check = check_incomplete_pdf(pdf, record, lender(incomplete_days=45), notice_date=NOTICE_DATE)
    assert check.passed and not check.specimen, check.failures()
    text = " ".join(" ".join(pdf_text(pdf)).split())
    wording = load_wording()["text"]
    assert "April 16, 2026" in text and "45 days" in text and wording["incomplete_consequence"] in text
    assert "Cascade Valley Bank" in text and "Office of the Comptroller" in text
    path = tmp_path / "n.pdf"
    path.write_bytes(pdf)
    assert subprocess.run(["qpdf", "--check", str(path)], capture_output=True).returncode == 0


def test_a_consumer_report_field_is_named_as_such():
    record = incompleteness_record(triage(credit_app(public_record=None), "credit"), "credit")
    [item] = build_incomplete_notice(record, lender(), notice_date=NOTICE_DATE).missing
    assert "credit history" in item


def test_without_settings_the_notice_of_incompleteness_is_a_specimen():
    record = incompleteness_record(triage(credit_app(seniority=...), "credit"), "credit")
    pdf = render_incomplete_pdf(build_incomplete_notice(record, NoticeSettings(), notice_date=NOTICE_DATE))
    check = check_incomplete_pdf(pdf, record, notice_date=NOTICE_DATE)
    assert check.passed and check.specimen and check.checks["specimen_marking"].passed


def test_the_check_catches_a_wrong_item_period_or_creditor():
    record = incompleteness_record(triage(credit_app(seniority=...), "credit"), "credit")
    pdf = render_incomplete_pdf(build_incomplete_notice(record, lender(), notice_date=NOTICE_DATE))
    other = {**record, "missing": ["expenses"]}
    assert "missing_information" in check_incomplete_pdf(pdf, other, lender(), notice_date=NOTICE_DATE).failures()
    assert "deadline" in check_incomplete_pdf(pdf, record, lender(incomplete_days=60),
                                              notice_date=NOTICE_DATE).failures()
    assert "creditor" in check_incomplete_pdf(pdf, record, lender(creditor_name="Other Bank"),
                                              notice_date=NOTICE_DATE).failures()


def test_a_notice_of_incompleteness_needs_something_missing():
    with pytest.raises(LendSafeError, match="at least one missing field"):
        build_incomplete_notice({"kind": "incomplete", "dataset": "credit", "application": {}, "missing": []},
                                lender(), notice_date=NOTICE_DATE)


def test_read_csv_triages_each_row(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("seniority,home,loan_term_months,public_record,expenses,income,assets,debt,amount,price\n"
                    "1,rent,60,yes,75,90,0,0,1400,1500\n"
                    ",rent,60,yes,75,90,0,0,1400,1500\n"
                    ",rent,sixty,yes,75,90,0,0,1400,1500\n")
    rows = read_csv(path, "credit")
    assert [r.data_row for r in rows] == [1, 2, 3]
    assert not rows[0].triage.incomplete and rows[1].triage.missing == ("seniority",)
    assert rows[2].error is not None and "loan_term_months" in rows[2].error.problems[0]
