"""Shared by the notice tests (tests/test_notice_*.py): a denied decision, the notice it gets, its PDF and
the check of that PDF against the notice as issued."""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections import Counter

import pytest

from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.decision import Decision, Reason
from lendsafe.notice import Notice, NoticeSettings, build_notice, check_pdf, render_pdf
from lendsafe.notice.pdftext import diagonal_text, pdf_text

needs_poppler = pytest.mark.skipif(not (shutil.which("pdftotext") and shutil.which("qpdf")),
                                   reason="needs poppler-utils and qpdf (make test installs them)")

CATALOG = (
    ("DEBT_TO_INCOME", "Excessive obligations in relation to income", "debt_to_income", 0.62, "0.62"),
    ("CONSUMER_CREDIT_HISTORY", "Delinquent past or present credit obligations with others",
     "consumer_credit_history", 5, "5"),
    ("LOAN_TO_VALUE", "Value of collateral not sufficient for the amount of credit requested", "loan_to_value",
     0.97, "0.97"),
    ("PUBLIC_RECORD", "Public record of bankruptcy, judgment, lien or collection action",
     "public_bad_credit_record", True, "yes"),
    ("MORTGAGE_PAYMENT_HISTORY", "Late payments on past or present mortgage obligations",
     "mortgage_credit_history", 3, "3"),
)
NOTICE_DATE = dt.date(2026, 3, 2)
SCORE_SETTINGS = dict(credit_score=612, score_range=(300, 850), score_date="2026-02-18",
                      score_source="Example Scoring Service",
                      score_factors=("Serious delinquency", "Proportion of balances to credit limits",
                                     "Length of time accounts have been established", "Too many accounts"))
LENDER = PROJECT_ROOT / "data" / "examples" / "lender.toml"
MI_REASON = Reason("MORTGAGE_INSURANCE_DENIED", "Private mortgage insurance was denied for this loan",
                   "mortgage_insurance_denied", True, "yes", 0.95, "12 CFR 1002, Supp. I, comment 9(b)(2)-4")


def make_decision(n_reasons: int = 3, **changes) -> Decision:
    """A denied HMDA decision with the first `n_reasons` catalog reasons (fields overridable)."""
    reasons = tuple(Reason(code, text, feature, value, shown, round(0.9 - 0.2 * i, 3), "12 CFR 1002, App. C")
                    for i, (code, text, feature, value, shown) in enumerate(CATALOG[:n_reasons]))
    application = {r.feature: r.value for r in reasons} | {
        "applicant": {"name": "Dana Example", "address": "7 Elm Road\nSpringfield, ST 00001"},
        "application_date": "2026-02-20"}
    data = dict(application=application, dataset="hmda", decision="deny", risk=0.734215, threshold=0.5,
                reference="population", reasons=reasons, contributions={r.feature: r.contribution for r in reasons},
                model={"dataset": "hmda", "sha256": "ab" * 32, "threshold_version": "hmda-test"},
                explanation="Your debts are high compared with your income, and your credit history shows "
                            "late payments to other lenders.", writer="template")
    data.update(changes)
    return Decision(**data)


def lender() -> NoticeSettings:
    return NoticeSettings.from_file(LENDER)


def issued(decision: Decision, settings: NoticeSettings | None = None, **kwargs) -> Notice:
    """The notice issued for `decision` (on NOTICE_DATE unless `notice_date` is given)."""
    return build_notice(decision, settings or NoticeSettings(), **{"notice_date": NOTICE_DATE, **kwargs})


def rendered(decision: Decision, settings: NoticeSettings | None = None, **kwargs) -> bytes:
    return render_pdf(issued(decision, settings, **kwargs))


def checked(pdf: bytes, decision: Decision, settings: NoticeSettings | None = None, **kwargs):
    """check_pdf of `pdf` against the notice `decision` was issued with `settings` (and `kwargs`)."""
    return check_pdf(pdf, issued(decision, settings, **kwargs), decision, settings)


def assert_complete(pdf: bytes, decision: Decision, settings: NoticeSettings | None = None, **kwargs):
    check = checked(pdf, decision, settings, **kwargs)
    assert check.passed, check.failures()
    return check


def qpdf_ok(pdf: bytes, tmp_path) -> bool:
    path = tmp_path / "notice.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["qpdf", "--check", str(path)], capture_output=True).returncode == 0


def marks(pdf: bytes) -> list[bool]:
    """Per page, whether the diagonal SPECIMEN mark is drawn (text only the diagonal extraction has)."""
    return [wanted <= found for found in diagonal_text(pdf_text(pdf, diagonal=False), pdf_text(pdf))
            for wanted in [Counter("SPECIMEN")]]
