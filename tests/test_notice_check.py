"""The completeness check: a notice PDF's own text against the notice as issued and its decision."""
from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import replace

import pytest

from lendsafe.explain.grounding import information_sources
from lendsafe.explain.verify import FORBIDDEN_PATTERNS, INTERNAL_PATTERNS
from lendsafe.decide.reasons import load_catalog
from lendsafe.decide.decision import Reason
from lendsafe.notice import NoticeSettings, build_notice, check_pdf, render_pdf
from lendsafe.notice.wording import load_wording

from notice_helpers import (MI_REASON, NOTICE_DATE, SCORE_SETTINGS, assert_complete, checked, issued, lender,
                            make_decision, needs_poppler, qpdf_ok, rendered)

pytestmark = needs_poppler


@pytest.mark.parametrize("variant", ["deny", "counteroffer", "request", "score", "no_report", "no_explanation",
                                     "no_applicant", "large_bank_affiliate"])
def test_every_variant_passes_the_completeness_check_and_qpdf(variant, tmp_path):
    decision, settings, kwargs = make_decision(), NoticeSettings(), {}
    if variant == "counteroffer":
        kwargs["counteroffer"] = "A loan of $150,000 at a fixed rate over 30 years"
    elif variant == "request":
        settings = NoticeSettings(reasons_mode="request", request_contact_name="Credit Review Desk")
    elif variant == "score":
        settings = NoticeSettings(**SCORE_SETTINGS | {"inquiries_is_key_factor": True,
                                                     "score_factors": SCORE_SETTINGS["score_factors"] +
                                                     ("Number of recent inquiries",)})
    elif variant == "no_report":     # a dataset of its own, whose only reason rests on the application
        decision, settings = make_decision(1, dataset="own"), NoticeSettings(consumer_report_used=False)
    elif variant == "no_explanation":
        decision = make_decision(explanation=None)
    elif variant == "no_applicant":
        decision = make_decision(application={"debt_to_income": 0.62})
    elif variant == "large_bank_affiliate":
        settings = NoticeSettings(creditor_type="large_bank_nonbank_affiliate")
    pdf = rendered(decision, settings, **kwargs)
    check = assert_complete(pdf, decision, settings, **kwargs)
    assert qpdf_ok(pdf, tmp_path)
    text = check.text
    if variant == "request":
        assert "Credit Review Desk" in text and decision.reasons[0].statement not in text
    if variant == "score":
        assert "612" in text and "Number of recent inquiries" in text
    if variant == "no_report":
        assert load_wording()["headings"]["fcra"] not in text


def test_check_fails_when_reasons_differ_or_are_reordered():
    decision = make_decision(3)
    swapped = decision.with_updates(reasons=(decision.reasons[1], decision.reasons[0], decision.reasons[2]))
    check = checked(rendered(swapped), decision)
    assert not check.checks["reasons"].passed and not check.checks["evidence_sha256"].passed


def test_check_fails_when_a_required_block_is_missing():
    decision = make_decision(1, dataset="own")
    pdf = rendered(decision, NoticeSettings(consumer_report_used=False))
    check = checked(pdf, decision, NoticeSettings())
    assert check.failures().keys() == {"fcra_block"}


def test_check_fails_when_the_score_block_is_missing_or_unexpected():
    decision = make_decision()
    with_score = NoticeSettings(**SCORE_SETTINGS)
    assert checked(rendered(decision), decision, with_score).failures().keys() == {"credit_score_block"}
    assert checked(rendered(decision, with_score), decision).failures().keys() == {"credit_score_block"}


def test_check_fails_for_another_creditor():
    decision = make_decision()
    check = checked(rendered(decision, NoticeSettings(creditor_name="Other Bank")), decision)
    assert "creditor" in check.failures()


@pytest.mark.parametrize("explanation, failing", [
    ("You may reapply in 90 days.", "forbidden_phrases"),
    ("Approval is guaranteed next time.", "forbidden_phrases"),
    ("You are pre-approved for a card.", "forbidden_phrases"),
    ("We will reconsider if you call.", "forbidden_phrases"),
    ("The approval cutoff is 0.50 and you were above it.", "threshold_absent"),
    ("Your estimated chance of default was 73.4%.", "risk_score_absent"),
    ("Your score of 0.734 was too high.", "risk_score_absent"),
])
def test_check_finds_promises_the_threshold_and_the_risk_score(explanation, failing):
    decision = make_decision(explanation=explanation)
    check = checked(rendered(decision), decision)
    assert failing in check.failures()


def test_applicant_values_in_the_explanation_are_not_mistaken_for_internals():
    decision = make_decision(explanation="Your debt-to-income ratio of 0.62 is high.", risk=0.62)
    assert_complete(rendered(decision), decision)
    application = {**decision.application, "housing_expense_to_income": 0.5}
    decision = make_decision(explanation="Your housing expense is 0.50 of your income.", application=application)
    assert_complete(rendered(decision), decision)


def test_check_rejects_a_notice_for_an_approved_decision():
    decision = make_decision()
    check = check_pdf(rendered(decision), issued(decision), decision.with_updates(decision="approve"))
    assert not check.passed and "adverse_decision" in check.failures()


def test_check_rejects_a_pdf_without_a_notice():
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, invariant=1)
    page.drawString(72, 720, "Hello")
    page.showPage()
    page.save()
    check = checked(buffer.getvalue(), make_decision())
    assert {"title", "reasons", "ecoa_notice", "evidence_sha256", "document_id"} <= check.failures().keys()


def test_check_fails_when_the_specimen_marking_is_wrong_either_way():
    decision, real = make_decision(), lender()
    unmarked = render_pdf(replace(build_notice(decision, NoticeSettings(), notice_date=NOTICE_DATE), specimen=False))
    assert checked(unmarked, decision).failures().keys() == {"specimen_marking"}
    marked = render_pdf(replace(build_notice(decision, real, notice_date=NOTICE_DATE), specimen=True))
    assert checked(marked, decision, real).failures().keys() == {"specimen_marking"}


def test_a_reason_from_an_outside_source_adds_the_615b_block(tmp_path):
    decision = make_decision(2, reasons=(MI_REASON, *make_decision(2).reasons))
    notice = build_notice(decision, lender(), notice_date=NOTICE_DATE)
    assert notice.third_party and "third_party" in information_sources(decision)
    assert "third_party" not in information_sources(make_decision(2))
    pdf = render_pdf(notice)
    check = assert_complete(pdf, decision, lender())
    wording = load_wording()
    assert wording["headings"]["third_party"] in check.text and "written request" in wording["text"]["third_party_text"]
    assert "60 days" in wording["text"]["third_party_text"] and qpdf_ok(pdf, tmp_path)
    dropped = check_pdf(render_pdf(replace(notice, third_party=False)), notice, decision, lender())
    assert dropped.failures().keys() == {"third_party_block"}


def test_no_615b_block_without_an_outside_source():
    decision = make_decision(3)
    check = assert_complete(rendered(decision), decision)
    assert not build_notice(decision, NoticeSettings(), notice_date=NOTICE_DATE).third_party
    assert load_wording()["headings"]["third_party"] not in check.text
    added = render_pdf(replace(build_notice(decision, NoticeSettings(), notice_date=NOTICE_DATE), third_party=True))
    assert "third_party_block" in checked(added, decision).failures()


@pytest.mark.parametrize("dataset, n_reasons, consumer_report_used, expected", [
    ("own", 1, False, False),      # application-only reason, no report-based input, settings say none
    ("own", 2, False, True),       # a principal reason rests on a consumer report
    ("own", 1, True, True),        # the settings say a report was used (today's behaviour)
    ("hmda", 1, False, True),      # the model's inputs include credit-report data
])
def test_the_615a_block_follows_the_sources_of_reasons_and_inputs(dataset, n_reasons, consumer_report_used, expected):
    decision = make_decision(n_reasons, dataset=dataset)
    settings = NoticeSettings(consumer_report_used=consumer_report_used)
    notice = build_notice(decision, settings, notice_date=NOTICE_DATE)
    assert (notice.consumer_report is not None) == expected
    check = assert_complete(render_pdf(notice), decision, settings)
    assert (load_wording()["headings"]["fcra"] in check.text) == expected


@pytest.mark.parametrize("explanation", [
    "You can apply again next month.", "Your application will be reconsidered if you call.",
    "You will be approved next time.", "Our model found your debts too high.",
    "The granite LoRA adapter wrote this letter.", "Your probability of default was high.",
    "We promise a quick answer.", "Your debts are high compared with your income.",
])
def test_the_notice_check_and_the_verifier_share_one_list(explanation):
    decision = make_decision(explanation=explanation)
    failures = checked(rendered(decision, lender()), decision, lender()).failures()
    verifier_finds = any(re.search(p, explanation, re.IGNORECASE) for p in FORBIDDEN_PATTERNS + INTERNAL_PATTERNS)
    assert bool({"forbidden_phrases", "internal_terms"} & failures.keys()) == verifier_finds, failures


def test_the_issue_examples_are_caught():
    for explanation in ("Please apply again in 90 days.", "Your file will be reconsidered.", "Our model decided."):
        decision = make_decision(explanation=explanation)
        assert {"forbidden_phrases", "internal_terms"} & checked(rendered(decision), decision).failures().keys()


def test_notice_wording_and_catalog_statements_pass_the_shared_list():
    import importlib
    import pkgutil

    import lendsafe.notice as package

    modules = [importlib.import_module(f"lendsafe.notice.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    assert len(modules) >= 10 and not any(hasattr(module, "FORBIDDEN_PHRASES") for module in modules)
    reasons = tuple(Reason(code, entry.statement, "f", 1, "1", 0.5, entry.citation)
                    for code, entry in list(load_catalog().items())[:4])
    decision = make_decision(reasons=reasons, explanation=None)
    settings = NoticeSettings(**SCORE_SETTINGS | {"reasons_mode": "specific"})
    check = checked(rendered(decision, settings), decision, settings)
    assert check.checks["forbidden_phrases"].passed and check.checks["internal_terms"].passed, check.failures()


# ------------------------------------------------------------------------------- against the notice as issued

@pytest.mark.parametrize("other, failing", [
    ({"notice_date": NOTICE_DATE + dt.timedelta(days=1), "document_id": "AAN-1"}, {"dates"}),
    ({"document_id": "AAN-2"}, {"document_id"}),
    ({"notice_date": NOTICE_DATE + dt.timedelta(days=1)}, {"dates", "document_id"}),
])
def test_a_pdf_whose_date_or_document_id_differs_from_the_issued_notice_fails(other, failing):
    decision = make_decision()
    notice = issued(decision, document_id=other.get("document_id") and "AAN-1")
    pdf = render_pdf(build_notice(decision, NoticeSettings(), **{"notice_date": NOTICE_DATE, **other}))
    check = check_pdf(pdf, notice, decision)
    assert check.failures().keys() == failing, check.failures()
    assert check.checks["issued_notice"].passed


def test_an_issued_notice_the_decision_and_settings_do_not_make_fails():
    decision = make_decision()
    altered = replace(issued(decision), creditor_name="Other Bank")
    check = check_pdf(render_pdf(altered), altered, decision)
    assert check.failures().keys() == {"issued_notice"}
    assert "creditor_name" in check.checks["issued_notice"].detail
    assert check_pdf(render_pdf(altered), altered, decision, NoticeSettings(creditor_name="Other Bank")).passed
