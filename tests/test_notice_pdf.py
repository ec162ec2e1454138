"""The notice PDF: identical bytes for an identical notice, every script, bounded length, SPECIMEN until
configured; each PDF read back with pdftotext and checked against the notice as issued."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from lendsafe.decide.decision import Decision
from lendsafe.notice import Notice, NoticeSettings, build_notice, render_pdf
from lendsafe.notice.pdftext import pdf_text
from lendsafe.notice.text import clean_text, normalize
from lendsafe.notice.wording import load_wording

from notice_helpers import (NOTICE_DATE, SCORE_SETTINGS, assert_complete, checked, lender, make_decision, marks,
                            needs_poppler, qpdf_ok, rendered)

pytestmark = needs_poppler


def test_same_notice_gives_identical_bytes_also_after_a_round_trip():
    notice = build_notice(make_decision(), NoticeSettings(), notice_date=NOTICE_DATE)
    pdf = render_pdf(notice)
    assert pdf.startswith(b"%PDF") and render_pdf(notice) == pdf
    assert render_pdf(Notice.from_dict(json.loads(json.dumps(notice.to_dict())))) == pdf


def test_kept_line_breaks_give_the_bytes_reportlab_lays_out_afresh():
    from reportlab.platypus import Paragraph

    from lendsafe.notice import pdf

    notices = [build_notice(make_decision(n), NoticeSettings(), notice_date=NOTICE_DATE) for n in (1, 4)]
    kept = [render_pdf(n) for n in notices + notices]          # the second round reuses every line break
    pdf._cached_para.cache_clear()
    pdf._paragraph_class.cache_clear()
    original = pdf._paragraph_class
    try:
        pdf._paragraph_class = lambda: Paragraph               # plain reportlab, nothing kept
        fresh = [render_pdf(n) for n in notices]
    finally:
        pdf._paragraph_class = original
        pdf._cached_para.cache_clear()
    assert kept == fresh + fresh


def _kept_together_render(notice: Notice) -> tuple[bytes, int]:
    """The notice laid out the way it always was: every section a KeepTogether."""
    from lendsafe.notice import pdf

    story = pdf._header_story(notice) + pdf._action_story(notice, notice.max_explanation_chars) + pdf._rights_story(notice)
    return pdf._build_document(notice, pdf._kept_together(story), notice.wording["headings"]["title"])


@hyp_settings(max_examples=30, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
@given(n_reasons=st.integers(1, 4), explanation=st.one_of(st.none(), st.text("abc de.,", max_size=1500)),
       name=st.text("Ab c", min_size=1, max_size=300), address_lines=st.integers(1, 5),
       score=st.booleans(), counteroffer=st.one_of(st.none(), st.text("xy z", max_size=400)))
def test_laying_out_in_line_gives_the_bytes_of_sections_kept_together(n_reasons, explanation, name, address_lines,
                                                                        score, counteroffer):
    settings = NoticeSettings(creditor_name=name.strip() or "A", creditor_address="\n".join(["1 Main St"] * address_lines),
                              **(SCORE_SETTINGS if score else {}))
    notice = build_notice(make_decision(n_reasons, explanation=explanation), settings, notice_date=NOTICE_DATE,
                          counteroffer=counteroffer)
    kept, _ = _kept_together_render(notice)
    assert render_pdf(notice) == kept


def test_a_notice_that_runs_over_keeps_each_section_on_one_page():
    from lendsafe.notice import pdf

    long = "Lorem ipsum dolor sit amet consectetur " * 40
    notice = build_notice(make_decision(4, explanation=long), NoticeSettings(**SCORE_SETTINGS),
                          notice_date=NOTICE_DATE, counteroffer=long)
    story = pdf._header_story(notice) + pdf._action_story(notice, notice.max_explanation_chars) + pdf._rights_story(notice)
    assert not pdf._fits_one_page(pdf._in_line(story))
    kept, pages = _kept_together_render(notice)
    assert pages == 2 and render_pdf(notice) == kept


def test_a_short_notice_is_laid_out_in_line():
    from lendsafe.notice import pdf

    notice = build_notice(make_decision(2), NoticeSettings(), notice_date=NOTICE_DATE)
    story = pdf._header_story(notice) + pdf._action_story(notice, notice.max_explanation_chars) + pdf._rights_story(notice)
    assert pdf._fits_one_page(pdf._in_line(story))


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
    code = ("import json,sys,hashlib; from lendsafe.notice import Notice, render_pdf; "
            "n = Notice.from_dict(json.load(sys.stdin)); print(hashlib.sha256(render_pdf(n)).hexdigest())")
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(notice.to_dict()), capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == hashlib.sha256(render_pdf(notice)).hexdigest()


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
    check = assert_complete(pdf, decision, settings, counteroffer=long)
    assert len(pdf_text(pdf)) <= 2 and "\u2026" in check.text and qpdf_ok(pdf, tmp_path)


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
    check = checked(pdf, decision, settings)
    required = {"reasons", "ecoa_notice", "fcra_block", "evidence_sha256", "document_id", "action", "dates"}
    assert not required & check.failures().keys(), check.failures()


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
