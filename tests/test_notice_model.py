"""The notice content built from a denied decision and the lender's settings."""
from __future__ import annotations

import hashlib
import json

import pytest

from lendsafe.canonical import canonical_sha256
from lendsafe.errors import ConfigurationError, LendSafeError
from lendsafe.decide.reasons import load_catalog
from lendsafe.notice import Notice, NoticeSettings, build_notice

from notice_helpers import NOTICE_DATE, SCORE_SETTINGS, make_decision


def test_notice_carries_reasons_in_order_in_the_catalogs_words():
    decision = make_decision(4)
    notice = build_notice(decision, NoticeSettings(), notice_date=NOTICE_DATE)
    assert notice.reasons == tuple(r.statement for r in decision.reasons)
    assert notice.application_date == "2026-02-20" and notice.notice_date == NOTICE_DATE.isoformat()
    assert notice.applicant_name == "Dana Example" and notice.consumer_report is not None
    assert notice.credit_score is None
    assert notice.evidence_sha256 == canonical_sha256(decision.to_dict()) == hashlib.sha256(json.dumps(
        decision.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()).hexdigest()


def test_notice_round_trips_through_json():
    notice = build_notice(make_decision(), NoticeSettings(reasons_mode="request", **SCORE_SETTINGS),
                          notice_date=NOTICE_DATE, counteroffer="A loan of $150,000 over 30 years")
    assert Notice.from_dict(json.loads(json.dumps(notice.to_dict()))) == notice


@pytest.mark.parametrize("decision, fragment", [
    (make_decision(decision="approve"), "needs a denied decision"),
    (make_decision(5), "at most 4"),
    (make_decision(0), "needs 1 to 4 reasons"),
])
def test_build_notice_refuses_decisions_a_notice_cannot_state(decision, fragment):
    with pytest.raises(LendSafeError, match=fragment):
        build_notice(decision, NoticeSettings(), notice_date=NOTICE_DATE)


def test_document_id_must_be_printable_and_short():
    with pytest.raises(LendSafeError, match="document_id"):
        build_notice(make_decision(), NoticeSettings(), notice_date=NOTICE_DATE, document_id="a b<c>")


def test_every_catalog_code_names_its_information_source():
    assert {entry.source for entry in load_catalog().values()} <= {"application", "consumer_report", "third_party"}
    assert load_catalog()["MORTGAGE_INSURANCE_DENIED"].source == "third_party"


def test_a_report_based_reason_needs_the_agency_named():
    settings = NoticeSettings(consumer_report_used=False, cra_name="")
    with pytest.raises(ConfigurationError, match="cra_name"):
        build_notice(make_decision(2, dataset="own"), settings, notice_date=NOTICE_DATE)
