"""Adverse-action notices: model, deterministic PDF, completeness check over the PDF's own text."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.decision import Decision, Reason
from lendsafe.errors import ConfigurationError, LendSafeError
from lendsafe.explain.grounding import information_sources
from lendsafe.notice.document import (AGENCIES, CREDITOR_TYPES, MAX_REASONS, Notice, NoticeSettings, build_notice,
                             check_pdf, clean_text, diagonal_text, evidence_sha256, is_phone, is_toll_free,
                             load_wording, normalize, pdf_text, render_pdf)
from lendsafe.decide.reasons import load_catalog
from lendsafe.explain.verify import FORBIDDEN_PATTERNS, INTERNAL_PATTERNS

pytestmark = pytest.mark.skipif(not (shutil.which("pdftotext") and shutil.which("qpdf")),
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


def qpdf_ok(pdf: bytes, tmp_path) -> bool:
    path = tmp_path / "notice.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["qpdf", "--check", str(path)], capture_output=True).returncode == 0


def rendered(decision: Decision, settings: NoticeSettings | None = None, **kwargs) -> bytes:
    settings = settings or NoticeSettings()
    return render_pdf(build_notice(decision, settings, notice_date=NOTICE_DATE, **kwargs))


def assert_complete(pdf: bytes, decision: Decision, settings: NoticeSettings | None = None):
    check = check_pdf(pdf, decision, settings)
    assert check.passed, check.failures()
    return check


SCORE_SETTINGS = dict(credit_score=612, score_range=(300, 850), score_date="2026-02-18",
                      score_source="Example Scoring Service",
                      score_factors=("Serious delinquency", "Proportion of balances to credit limits",
                                     "Length of time accounts have been established", "Too many accounts"))


# ------------------------------------------------------------------------------- settings

def test_every_notice_setting_is_documented():
    assert all(NoticeSettings.help_table().values())


def test_settings_round_trip_through_dict_and_file(tmp_path):
    settings = NoticeSettings(creditor_name="Harbor Bank", creditor_type="national_bank", **SCORE_SETTINGS)
    assert NoticeSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings.to_dict()))
    assert NoticeSettings.from_file(path) == settings


@pytest.mark.parametrize("changes, fragment", [
    ({"creditor_type": "bank"}, "creditor_type must be one of"),
    ({"creditor_name": " "}, "creditor_name must be a non-empty text"),
    ({"reasons_mode": "vague"}, "reasons_mode must be one of"),
    ({"cra_phone": ""}, "cra_phone must be a non-empty text"),
    ({**SCORE_SETTINGS, "credit_score": 900}, "credit_score must lie in score_range"),
    ({**SCORE_SETTINGS, "score_factors": ("a", "b", "c", "d", "e")}, "1 to 4 key factors"),
    ({**SCORE_SETTINGS, "score_date": "yesterday"}, "score_date must be a date"),
])
def test_settings_reject_bad_values_with_a_clear_message(changes, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        NoticeSettings(**changes)


def test_unknown_setting_names_are_rejected():
    with pytest.raises(ConfigurationError, match="unknown notice settings"):
        NoticeSettings.from_dict({"creditor": "x"})


def test_replacement_template_must_carry_every_key(tmp_path):
    path = tmp_path / "wording.toml"
    path.write_text('[headings]\ntitle = "Notice"\n[text]\n')
    with pytest.raises(ConfigurationError, match="lacks"):
        NoticeSettings(template_path=path)


def test_every_creditor_type_names_agencies_from_the_table():
    for creditor_type, keys in CREDITOR_TYPES.items():
        agencies = NoticeSettings(creditor_type=creditor_type).agencies()
        assert agencies == tuple(AGENCIES[k] for k in keys) and all(name and address for name, address in agencies)
    assert NoticeSettings(creditor_type="large_bank").agencies()[0][0].startswith("Bureau of Consumer Financial")
    assert NoticeSettings(agency_name="X Agency", agency_address="1 Road").agencies() == (("X Agency", "1 Road"),)


# ------------------------------------------------------------------------------- model

def test_notice_carries_reasons_in_order_in_the_catalogs_words():
    decision = make_decision(4)
    notice = build_notice(decision, NoticeSettings(), notice_date=NOTICE_DATE)
    assert notice.reasons == tuple(r.statement for r in decision.reasons)
    assert notice.application_date == "2026-02-20" and notice.notice_date == NOTICE_DATE.isoformat()
    assert notice.applicant_name == "Dana Example" and notice.consumer_report is not None
    assert notice.credit_score is None
    assert notice.evidence_sha256 == hashlib.sha256(json.dumps(
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


def test_clean_text_drops_controls_and_truncates_with_an_ellipsis():
    assert clean_text("A\x00B\u202eC\x07  D", 100) == "ABC D"
    cut = clean_text("x" * 50, 10)
    assert len(cut) == 10 and cut.endswith("\u2026")


# ------------------------------------------------------------------------------- rendering

def test_same_notice_gives_identical_bytes_also_after_a_round_trip():
    notice = build_notice(make_decision(), NoticeSettings(), notice_date=NOTICE_DATE)
    pdf = render_pdf(notice)
    assert pdf.startswith(b"%PDF") and render_pdf(notice) == pdf
    assert render_pdf(Notice.from_dict(json.loads(json.dumps(notice.to_dict())))) == pdf


def test_rebuilding_from_recorded_json_gives_the_same_bytes():
    decision = make_decision(application={**make_decision().application, "application_date": dt.date(2026, 2, 20)})
    settings = NoticeSettings(creditor_name="Harbor Bank", **SCORE_SETTINGS)
    notice = build_notice(decision, settings, notice_date=NOTICE_DATE, counteroffer="x " * 400)
    recorded = json.loads(json.dumps({"decision": decision.to_dict(), "settings": settings.to_dict(),
                                      "notice": notice.to_dict()}, default=str))
    again = build_notice(Decision.from_dict(recorded["decision"]), NoticeSettings.from_dict(recorded["settings"]),
                         notice_date=dt.date.fromisoformat(recorded["notice"]["notice_date"]),
                         document_id=recorded["notice"]["document_id"],
                         application_date=recorded["notice"]["application_date"],
                         counteroffer=recorded["notice"]["counteroffer_terms"])
    assert again == notice and render_pdf(again) == render_pdf(notice)


def test_pdf_bytes_are_the_same_in_a_fresh_process():
    notice = build_notice(make_decision(), NoticeSettings(creditor_name="Ünïcode Κρέδιτ 信贷"),
                          notice_date=NOTICE_DATE)
    code = ("import json,sys,hashlib; from lendsafe.notice.document import Notice, render_pdf; "
            "n = Notice.from_dict(json.load(sys.stdin)); print(hashlib.sha256(render_pdf(n)).hexdigest())")
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(notice.to_dict()), capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == hashlib.sha256(render_pdf(notice)).hexdigest()


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
    check = assert_complete(pdf, decision, settings)
    assert qpdf_ok(pdf, tmp_path)
    text = check.text
    if variant == "request":
        assert "Credit Review Desk" in text and decision.reasons[0].statement not in text
    if variant == "score":
        assert "612" in text and "Number of recent inquiries" in text
    if variant == "no_report":
        assert load_wording()["headings"]["fcra"] not in text


@pytest.mark.parametrize("n_reasons", [1, 2, 3, 4])
def test_all_reasons_are_printed_in_order(n_reasons):
    decision = make_decision(n_reasons)
    check = assert_complete(rendered(decision), decision)
    positions = [check.text.index(r.statement) for r in decision.reasons]
    assert positions == sorted(positions)
    assert check.checks["reasons"].detail.startswith(f"{n_reasons} reason(s)")


def test_markup_characters_are_printed_literally():
    settings = NoticeSettings(creditor_name="A&B <Lending> & Co </font><b>", creditor_address="1 <Main> St & 2nd\nX")
    decision = make_decision(application={"applicant": {"name": "<script>alert(1)</script> & Sons"}})
    check = assert_complete(rendered(decision, settings), decision, settings)
    assert "A&B <Lending> & Co </font><b>" in check.text and "<script>alert(1)</script> & Sons" in check.text


@pytest.mark.parametrize("name", ["北京信贷有限公司", "شركة الإقراض العربية", "Кредитный союз «Москва»",
                                  "Τράπεζα Αθηνών", "Crédit Agricole Société Générale Ærø Øresund",
                                  "בנק הפועלים", "東京スター銀行 한국은행"])
def test_non_latin_scripts_come_back_from_pdftotext(name):
    settings = NoticeSettings(creditor_name=name, creditor_address=f"{name}\n12 Road")
    decision = make_decision()
    assert_complete(rendered(decision, settings), decision, settings)


def test_empty_optional_fields_render():
    settings = NoticeSettings(creditor_phone="", consumer_report_used=False)
    decision = make_decision(1, dataset="own", explanation="", application={"applicant": {"name": "", "address": ""}})
    pdf = rendered(decision, settings)
    check = assert_complete(pdf, decision, settings)
    assert "Telephone" not in check.text


def test_over_long_text_is_cut_and_the_notice_stays_within_two_pages(tmp_path):
    long = "Lorem ipsum dolor sit amet consectetur " * 200
    settings = NoticeSettings(creditor_name=long, creditor_address="\n".join([long] * 8), cra_name=long,
                              cra_address=long, max_explanation_chars=10_000, **SCORE_SETTINGS)
    decision = make_decision(4, explanation=long * 3,
                             application={"applicant": {"name": "W" * 3000, "address": long}})
    pdf = rendered(decision, settings, counteroffer=long)
    check = assert_complete(pdf, decision, settings)
    assert len(pdf_text(pdf)) <= 2 and "\u2026" in check.text and qpdf_ok(pdf, tmp_path)


# ------------------------------------------------------------------------------- the check catches faults

def test_check_fails_when_reasons_differ_or_are_reordered():
    decision = make_decision(3)
    swapped = decision.with_updates(reasons=(decision.reasons[1], decision.reasons[0], decision.reasons[2]))
    check = check_pdf(rendered(swapped), decision)
    assert not check.checks["reasons"].passed and not check.checks["evidence_sha256"].passed


def test_check_fails_when_a_required_block_is_missing():
    decision = make_decision(1, dataset="own")
    pdf = rendered(decision, NoticeSettings(consumer_report_used=False))
    check = check_pdf(pdf, decision, NoticeSettings())
    assert check.failures().keys() == {"fcra_block"}


def test_check_fails_when_the_score_block_is_missing_or_unexpected():
    decision = make_decision()
    with_score = NoticeSettings(**SCORE_SETTINGS)
    assert check_pdf(rendered(decision), decision, with_score).failures().keys() == {"credit_score_block"}
    assert check_pdf(rendered(decision, with_score), decision).failures().keys() == {"credit_score_block"}


def test_check_fails_for_another_creditor():
    decision = make_decision()
    check = check_pdf(rendered(decision, NoticeSettings(creditor_name="Other Bank")), decision)
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
    check = check_pdf(rendered(decision), decision)
    assert failing in check.failures()


def test_applicant_values_in_the_explanation_are_not_mistaken_for_internals():
    decision = make_decision(explanation="Your debt-to-income ratio of 0.62 is high.", risk=0.62)
    assert_complete(rendered(decision), decision)
    application = {**decision.application, "housing_expense_to_income": 0.5}
    decision = make_decision(explanation="Your housing expense is 0.50 of your income.", application=application)
    assert_complete(rendered(decision), decision)


def test_check_rejects_a_notice_for_an_approved_decision():
    decision = make_decision()
    check = check_pdf(rendered(decision), decision.with_updates(decision="approve"))
    assert not check.passed and "adverse_decision" in check.failures()


def test_check_rejects_a_pdf_without_a_notice():
    from reportlab.pdfgen import canvas
    import io

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, invariant=1)
    page.drawString(72, 720, "Hello")
    page.showPage()
    page.save()
    check = check_pdf(buffer.getvalue(), make_decision())
    assert {"title", "reasons", "ecoa_notice", "evidence_sha256", "document_id"} <= check.failures().keys()


def test_check_notice_command_prints_json_and_sets_the_exit_code(tmp_path, capsys):
    from lendsafe.cli import main

    decision = make_decision()
    pdf, decision_file = tmp_path / "n.pdf", tmp_path / "d.json"
    pdf.write_bytes(rendered(decision))
    decision_file.write_text(json.dumps(decision.to_dict(), default=str))
    assert main(["check-notice", str(pdf), "--decision", str(decision_file)]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    decision_file.write_text(json.dumps(make_decision(2).to_dict(), default=str))
    assert main(["check-notice", str(pdf), "--decision", str(decision_file)]) == 1
    assert json.loads(capsys.readouterr().out)["passed"] is False
    pdf.write_bytes(b"not a pdf at all")
    assert main(["check-notice", str(pdf), "--decision", str(decision_file)]) == 2
    assert "pdf: expected a PDF file" in capsys.readouterr().err


# ------------------------------------------------------------------------------- hostile inputs

SCRIPTS = {
    "latin": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,'-#/éèçñüßøåÆŒ",
    "markup": "<>&\"';/=!?%$@ ab",
    "cjk": "北京上海广州深圳信贷银行有限公司中国建设东京大阪한국은행 ",
    "arabic": "شركةالإقراضالعربيةمحمدعلي ",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяМОСКВА ",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωΑΘΗΝΑ ",
}
SCRIPTS["mixed"] = "".join(SCRIPTS.values())
script_text = st.sampled_from(sorted(SCRIPTS)).flatmap(
    lambda script: st.text(alphabet=SCRIPTS[script], min_size=0, max_size=260))
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@hyp_settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
@given(name=script_text.filter(lambda s: s.strip()), address=script_text, applicant=script_text,
       explanation=st.one_of(st.none(), script_text))
def test_hostile_names_and_addresses_always_give_a_complete_valid_notice(tmp_path_factory, name, address,
                                                                         applicant, explanation):
    settings = NoticeSettings(creditor_name=name, creditor_address=address if address.strip() else "-")
    decision = make_decision(explanation=explanation, application={"applicant": {"name": applicant,
                                                                                "address": address}})
    pdf = rendered(decision, settings)
    assert_complete(pdf, decision, settings)
    assert qpdf_ok(pdf, tmp_path_factory.mktemp("q"))


@hyp_settings(max_examples=15, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
@given(name=any_text.filter(lambda s: clean_text(s, 120).strip("\ufffd ")), address=any_text)
def test_arbitrary_unicode_never_breaks_the_file(tmp_path_factory, name, address):
    settings = NoticeSettings(creditor_name=name, creditor_address=address if clean_text(address, 9) else "-")
    decision = make_decision()
    pdf = rendered(decision, settings)
    assert qpdf_ok(pdf, tmp_path_factory.mktemp("q")) and 1 <= len(pdf_text(pdf)) <= 2
    check = check_pdf(pdf, decision, settings)
    required = {"reasons", "ecoa_notice", "fcra_block", "evidence_sha256", "document_id", "action", "dates"}
    assert not required & check.failures().keys(), check.failures()


# ------------------------------------------------------------------------------- specimen until configured

LENDER = PROJECT_ROOT / "data" / "examples" / "lender.toml"


def lender() -> NoticeSettings:
    return NoticeSettings.from_file(LENDER)


def marks(pdf: bytes) -> list[bool]:
    """Per page, whether the diagonal SPECIMEN mark is drawn (text only the diagonal extraction has)."""
    return [wanted <= found for found in diagonal_text(pdf_text(pdf, diagonal=False), pdf_text(pdf))
            for wanted in [Counter("SPECIMEN")]]


def test_the_example_lender_settings_are_complete_and_real():
    settings = lender()
    assert not settings.is_specimen and settings.placeholders == ()
    assert settings.agencies() == (AGENCIES["occ"],) and settings.consumer_report_used
    assert is_toll_free(settings.cra_phone) and settings.incomplete_days == 30
    assert NoticeSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


@pytest.mark.parametrize("n_reasons, long_text", [(1, False), (4, True)])
def test_without_settings_every_page_is_stamped_specimen(n_reasons, long_text):
    decision = make_decision(n_reasons, explanation=("Your debts are high. " * 80) if long_text else None)
    settings = NoticeSettings(creditor_address="\n".join(["A long address line"] * 5)) if long_text else None
    pdf = rendered(decision, settings)
    check = assert_complete(pdf, decision, settings)
    assert check.specimen and check.to_dict()["specimen"] is True
    assert all(marks(pdf)) and len(marks(pdf)) == (2 if long_text else 1)
    assert load_wording()["text"]["specimen_header"] in normalize(check.text)


def test_with_the_lenders_settings_nothing_is_stamped(tmp_path):
    decision = make_decision(4)
    pdf = rendered(decision, lender())
    check = assert_complete(pdf, decision, lender())
    assert not check.specimen and check.to_dict()["specimen"] is False and not any(marks(pdf))
    assert "SPECIMEN" not in check.text and "Cascade Valley Bank" in check.text and qpdf_ok(pdf, tmp_path)


def test_one_demo_value_left_or_the_specimen_flag_stamps_the_notice():
    assert NoticeSettings.from_dict({**lender().to_dict(), "cra_phone": "1-800-555-0199"}).placeholders == ("cra_phone",)
    forced = replace(lender(), specimen=True)
    decision = make_decision()
    assert forced.is_specimen and assert_complete(rendered(decision, forced), decision, forced).specimen


def test_check_fails_when_the_specimen_marking_is_wrong_either_way():
    decision, real = make_decision(), lender()
    unmarked = render_pdf(replace(build_notice(decision, NoticeSettings(), notice_date=NOTICE_DATE), specimen=False))
    assert check_pdf(unmarked, decision).failures().keys() == {"specimen_marking"}
    marked = render_pdf(replace(build_notice(decision, real, notice_date=NOTICE_DATE), specimen=True))
    assert check_pdf(marked, decision, real).failures().keys() == {"specimen_marking"}


@pytest.mark.parametrize("changes, fragment", [
    ({"agency": "fed"}, "agency must be one of"),
    ({"agency": ["occ", "bank"]}, "agency must be one of"),
    ({"creditor_phone": "call us"}, "creditor_phone must be a telephone number"),
    ({"creditor_phone": "555-0100"}, "creditor_phone must be a telephone number"),
    ({"cra_phone": "(503) 555-0100"}, "cra_phone must be a toll-free number"),
    ({"creditor_name": ""}, "creditor_name must be a non-empty text"),
    ({"incomplete_days": 3}, "incomplete_days must be between"),
])
def test_lender_settings_are_validated_with_the_field_named(changes, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        NoticeSettings.from_dict({**lender().to_dict(), **changes})


def test_phone_numbers():
    assert all(is_phone(p) for p in ("1-800-555-0100", "(503) 555-0142", "+44 20 7946 0000", "800.555.0100 ext. 12"))
    assert not any(is_phone(p) for p in ("555-0100", "call us", "1-800-LENDSAFE", "12", "+1"))
    assert is_toll_free("1 (888) 397-3742") and not is_toll_free("(503) 555-0142")


# ------------------------------------------------------------------------------- information sources (615(a), 615(b)(1))

MI_REASON = Reason("MORTGAGE_INSURANCE_DENIED", "Private mortgage insurance was denied for this loan",
                   "mortgage_insurance_denied", True, "yes", 0.95, "12 CFR 1002, Supp. I, comment 9(b)(2)-4")


def test_every_catalog_code_names_its_information_source():
    assert {entry.source for entry in load_catalog().values()} <= {"application", "consumer_report", "third_party"}
    assert load_catalog()["MORTGAGE_INSURANCE_DENIED"].source == "third_party"


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
    dropped = check_pdf(render_pdf(replace(notice, third_party=False)), decision, lender())
    assert dropped.failures().keys() == {"third_party_block"}


def test_no_615b_block_without_an_outside_source():
    decision = make_decision(3)
    check = assert_complete(rendered(decision), decision)
    assert not build_notice(decision, NoticeSettings(), notice_date=NOTICE_DATE).third_party
    assert load_wording()["headings"]["third_party"] not in check.text
    added = render_pdf(replace(build_notice(decision, NoticeSettings(), notice_date=NOTICE_DATE), third_party=True))
    assert "third_party_block" in check_pdf(added, decision).failures()


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


def test_a_report_based_reason_needs_the_agency_named():
    settings = NoticeSettings(consumer_report_used=False, cra_name="")
    with pytest.raises(ConfigurationError, match="cra_name"):
        build_notice(make_decision(2, dataset="own"), settings, notice_date=NOTICE_DATE)


# ------------------------------------------------------------------------------- one list of forbidden content

@pytest.mark.parametrize("explanation", [
    "You can apply again next month.", "Your application will be reconsidered if you call.",
    "You will be approved next time.", "Our model found your debts too high.",
    "The granite LoRA adapter wrote this letter.", "Your probability of default was high.",
    "We promise a quick answer.", "Your debts are high compared with your income.",
])
def test_the_notice_check_and_the_verifier_share_one_list(explanation):
    decision = make_decision(explanation=explanation)
    failures = check_pdf(rendered(decision, lender()), decision, lender()).failures()
    verifier_finds = any(re.search(p, explanation, re.IGNORECASE) for p in FORBIDDEN_PATTERNS + INTERNAL_PATTERNS)
    assert bool({"forbidden_phrases", "internal_terms"} & failures.keys()) == verifier_finds, failures


def test_the_issue_examples_are_caught():
    for explanation in ("Please apply again in 90 days.", "Your file will be reconsidered.", "Our model decided."):
        decision = make_decision(explanation=explanation)
        assert {"forbidden_phrases", "internal_terms"} & check_pdf(rendered(decision), decision).failures().keys()


def test_notice_wording_and_catalog_statements_pass_the_shared_list():
    import lendsafe.notice.document as notice_module

    assert not hasattr(notice_module, "FORBIDDEN_PHRASES")
    reasons = tuple(Reason(code, entry.statement, "f", 1, "1", 0.5, entry.citation)
                    for code, entry in list(load_catalog().items())[:4])
    decision = make_decision(reasons=reasons, explanation=None)
    settings = NoticeSettings(**SCORE_SETTINGS | {"reasons_mode": "specific"})
    check = check_pdf(rendered(decision, settings), decision, settings)
    assert check.checks["forbidden_phrases"].passed and check.checks["internal_terms"].passed, check.failures()


# -------------------------------------------------------------- settings: every value's type checked

@pytest.mark.parametrize("data, words", [
    ({"score_factors": "abc"}, "score_factors must be a list of texts; got 'abc' (str)"),
    ({"credit_score": 700.5}, "credit_score must be a whole number (or nothing); got 700.5"),
    ({"credit_score": True}, "credit_score must be a whole number"),
    ({"consumer_report_used": "maybe"}, "consumer_report_used must be true or false"),
    ({"consumer_report_used": 0}, "consumer_report_used must be true or false"),
    ({"creditor_name": ["a"]}, "creditor_name must be text"),
    ({"score_range": [300]}, "score_range must be a list of two whole numbers"),
    ({"incomplete_days": "30"}, "incomplete_days must be a whole number"),
    ({"template_path": "/etc/passwd"}, "template_path must name a notice wording TOML file"),
    ({"template_path": 5}, "template_path must be a file path"),
])
def test_settings_of_the_wrong_type_are_refused_with_the_field_named(data, words):
    from lendsafe.errors import LendSafeError

    with pytest.raises(LendSafeError) as caught:
        NoticeSettings.from_dict(data)
    assert words in str(caught.value)


@pytest.mark.parametrize("word, value", [("no", False), ("No", False), ("false", False), ("yes", True), (True, True)])
def test_yes_and_no_are_read_as_booleans(word, value):
    assert NoticeSettings.from_dict({"consumer_report_used": word, "specimen": word}).consumer_report_used is value


@pytest.mark.parametrize("name, data, words", [
    ("a.json", b"{bad", "is not valid JSON"), ("a.json", b'{"specimen": true, "specimen": false}', "more than once"),
    ("a.json", b'{"credit_score": NaN}', "contains NaN"), ("a.json", b"[" * 100_000, "is not valid JSON"),
    ("a.json", b"[1]", "must be a table"), ("a.toml", b"x = = 1", "is not valid TOML"),
    ("a.toml", b"\xff\xfe", "is not UTF-8 text"), ("a.toml", b"#" * 300_000, "larger than 256,000 bytes"),
])
def test_unreadable_settings_files_are_refused(name, data, words):
    from lendsafe.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=re.escape(words)):
        NoticeSettings.from_bytes(name, data)


@pytest.mark.parametrize("old, new, words", [
    ("Page {page}", "Page {page} {secret}", "[text] footer_page uses unknown placeholder(s) ['secret']"),
    ("Page {page}", "Page {page.__class__}", "unknown placeholder(s) ['page.__class__']"),
    ("Page {page}", "Page {page", "[text] footer_page has malformed braces"),
    ('title = "Notice of Action', 'title = 5\nx = "', "[headings] title must be text"),
])
def test_a_wording_template_with_unknown_placeholders_is_refused(old, new, words, tmp_path):
    from lendsafe.errors import ConfigurationError
    from lendsafe.notice.document import DEFAULT_TEMPLATE

    wording = tmp_path / "wording.toml"
    wording.write_text(DEFAULT_TEMPLATE.read_text().replace(old, new, 1))
    with pytest.raises(ConfigurationError, match=re.escape(words)):
        NoticeSettings(template_path=wording)


def test_invisible_format_characters_are_cleaned_and_unprintable_names_refused():
    from lendsafe.errors import InvalidApplicationError
    from lendsafe.notice.document import applicant_text, clean_text

    assert clean_text("Jor\u00addan\u200b Avery\ufeff", 100) == "Jordan Avery"
    assert clean_text("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", 100).count("\u200c") == 1, "ZWNJ kept"
    with pytest.raises(InvalidApplicationError, match=r"applicant.name must be text the notice fonts can print.*U\+13000"):
        applicant_text("name", "Ann \U00013000")
